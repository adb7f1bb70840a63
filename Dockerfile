# Multi-stage build of strata-server (and its tools: strata-check-log, the log
# checker, and strata-backup).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin strata-server --bin strata-check-log --bin strata-backup

FROM debian:bookworm-slim
RUN useradd --system --home /data --shell /usr/sbin/nologin strata \
    && mkdir -p /data && chown strata:strata /data
COPY --from=build /src/target/release/strata-server /src/target/release/strata-check-log /src/target/release/strata-backup /usr/local/bin/
VOLUME /data
EXPOSE 6379
USER strata
ENTRYPOINT ["strata-server"]
# Clients reach a container through Docker's network, never through its
# loopback, so protected mode (on by default: without a password only
# loopback clients are served) would refuse every one of them. A container's
# port is reachable only where `docker run -p` publishes it, so protected
# mode is off here, as in the official redis image. Add
# `--requirepass <password>` before publishing the port beyond the host.
# tests/access.rs runs this command line.
CMD ["--dir", "/data", "--bind", "0.0.0.0", "--protected-mode", "no"]
