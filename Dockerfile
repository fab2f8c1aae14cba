# syntax=docker/dockerfile:1
#
# The distlog broker as a container image: a Rust build stage, then a small Debian runtime
# (glibc, no compiler, no shell tools beyond bash) running as an unprivileged user with its
# data on a volume.
#
#   docker build --build-arg DISTLOG_REVISION=$(git rev-parse --short=12 HEAD) -t distlog .
#   docker run -p 9093:9093 -p 9092:9092 -p 9644:9644 -e DISTLOG_ADMIN_TOKEN=... distlog
#
# Ports: 9093 gRPC (distlog.v1, health, reflection), 9092 Kafka, 9644 Prometheus metrics.
# Every setting can be given as an environment variable (docs/CONFIG.md).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The git revision for distlog_build_info (the build context has no .git).
ARG DISTLOG_REVISION=unknown
ENV DISTLOG_REVISION=${DISTLOG_REVISION} \
    CARGO_TARGET_DIR=/src/target
COPY . .
# The dist profile: release, stripped, thin LTO (Cargo.toml). The caches keep the registry
# and the target directory between builds; the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist --bin distlog \
    && install -D -m 0755 /src/target/dist/distlog /out/distlog

FROM debian:bookworm-slim AS runtime
# ca-certificates: an https:// broker checked against the web PKI by the CLI.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 distlog \
    && useradd --system --uid 10001 --gid distlog --home-dir /var/lib/distlog \
        --shell /usr/sbin/nologin distlog \
    && install -d -o distlog -g distlog -m 0750 /var/lib/distlog
COPY --from=build /out/distlog /usr/local/bin/distlog

# Listen on every interface inside the container. A non-loopback listener needs an admin
# token: pass DISTLOG_ADMIN_TOKEN (or DISTLOG_INSECURE=true for a throwaway setup).
ENV DISTLOG_DATA_DIR=/var/lib/distlog \
    DISTLOG_LISTEN=0.0.0.0:9093 \
    DISTLOG_METRICS_LISTEN=0.0.0.0:9644 \
    DISTLOG_KAFKA_LISTEN=0.0.0.0:9092 \
    DISTLOG_LOG_FORMAT=json
USER distlog:distlog
VOLUME ["/var/lib/distlog"]
EXPOSE 9093 9092 9644

# GET /health on the metrics endpoint: 200 while the broker is open, 503 while it closes.
# Bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9644 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/distlog"]
CMD ["serve"]
