# Multi-stage build of strata-server.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin strata-server

FROM debian:bookworm-slim
RUN useradd --system --home /data --shell /usr/sbin/nologin strata \
    && mkdir -p /data && chown strata:strata /data
COPY --from=build /src/target/release/strata-server /usr/local/bin/strata-server
VOLUME /data
EXPOSE 6379
USER strata
ENTRYPOINT ["strata-server"]
CMD ["--dir", "/data", "--bind", "0.0.0.0", "--protected-mode", "no"]
