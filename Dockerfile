# syntax=docker/dockerfile:1
#
# strait container image: the Rust binary on distroless (glibc, no shell), running as
# the distroless `nonroot` user (uid/gid 65532).
#
#   docker build -t ghcr.io/strait/strait:0.1.0 .
#   docker run --rm -p 4567:4567 -p 9092:9092 -p 9180:9180 ghcr.io/strait/strait:0.1.0
#
# The Helm chart (helm/strait) mounts its own strait.yaml over /etc/strait/strait.yaml and a
# volume at /var/lib/strait.
#
# Rust version: Cargo.toml says rust-version 1.85, but Cargo.lock pins aws-sigv4 1.6.4 and the
# aws-smithy-* crates, which need rustc >= 1.94.1, so `cargo build --locked` fails on
# rust:1.85. Build with the toolchain the project is developed on.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Manifests and the vendored patch first, so dependency downloads are cached across source edits.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
COPY config ./config
# The binary, and the shipped config with listeners on every interface and data under
# /var/lib/strait (checked by the binary itself).
RUN cargo build --release --locked --bin strait \
    && install -D -m 0755 target/release/strait /out/usr/local/bin/strait \
    && mkdir -p /out/etc/strait /out/var/lib/strait/data \
    && sed -e 's#^\(  listen: \)127\.0\.0\.1:#\10.0.0.0:#' \
           -e 's#^data_dir: .*#data_dir: /var/lib/strait/data#' \
           config/strait.yaml > /out/etc/strait/strait.yaml \
    && /out/usr/local/bin/strait check-config --config /out/etc/strait/strait.yaml > /dev/null

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="strait" \
      org.opencontainers.image.description="Kinesis Data Streams API and Kafka wire protocol gateway" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/strait/strait"
COPY --from=builder /out/usr/local/bin/strait /usr/local/bin/strait
COPY --from=builder /out/etc/strait/strait.yaml /etc/strait/strait.yaml
COPY --from=builder --chown=65532:65532 /out/var/lib/strait /var/lib/strait
USER 65532:65532
WORKDIR /var/lib/strait
VOLUME ["/var/lib/strait"]
# Kinesis API, Kafka protocol, admin (/metrics, /healthz, /readyz).
EXPOSE 4567 9092 9180
# SIGTERM starts the graceful shutdown (docs/operations.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/strait", "serve", "--config", "/etc/strait/strait.yaml"]
