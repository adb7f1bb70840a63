# Multi-stage build of strata-server (and strata-check-log, its log checker).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin strata-server --bin strata-check-log

FROM debian:bookworm-slim
RUN useradd --system --home /data --shell /usr/sbin/nologin strata \
    && mkdir -p /data && chown strata:strata /data
COPY --from=build /src/target/release/strata-server /src/target/release/strata-check-log /usr/local/bin/
VOLUME /data
EXPOSE 6379
USER strata
ENTRYPOINT ["strata-server"]
CMD ["--dir", "/data", "--bind", "0.0.0.0", "--protected-mode", "no"]
