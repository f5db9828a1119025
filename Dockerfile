# syntax=docker/dockerfile:1
# The sfpg image. It runs `sfpg run` (sync and proxy in one process) unless given another
# subcommand: `docker run --rm IMAGE status`, `docker run --rm IMAGE org add …`.
#   docker build -t sfpg .
# docker-compose.yml builds it too, and runs it next to PostgreSQL.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target directories are cache mounts, so a rebuild after a small change
# compiles only what changed. Cache mounts stay out of the image, so the binary is copied
# out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sfpg \
    && cp target/release/sfpg /usr/local/bin/sfpg

FROM debian:bookworm-slim
# ca-certificates: sfpg trusts the system's roots when it calls Salesforce over HTTPS.
# Unpinned on purpose: bookworm's security updates replace the pinned version, which would
# break the build rather than patch it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# /var/lib/sfpg keeps the master key file when SFPG_MASTER_KEY is not set; mount a volume
# there (docker-compose.yml does), or the key, and with it every stored credential, goes
# with the container.
RUN useradd --system --no-log-init --uid 10001 --user-group \
        --home-dir /home/sfpg --create-home --shell /usr/sbin/nologin sfpg \
    && install -d -o sfpg -g sfpg -m 0700 /var/lib/sfpg
COPY --from=builder /usr/local/bin/sfpg /usr/local/bin/sfpg
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/sfpg
ENV SFPG_MASTER_KEY_FILE=/var/lib/sfpg/master.key
EXPOSE 6543
# Every long-running sfpg command stops cleanly on SIGINT; the emulator only on SIGINT.
STOPSIGNAL SIGINT
ENTRYPOINT ["sfpg"]
# Inside a container the proxy must listen on every interface to be reachable at all.
CMD ["run", "--listen", "0.0.0.0:6543"]
