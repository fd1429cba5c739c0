# syntax=docker/dockerfile:1
#
# secretd and secretctl in one small image. Build from the repository root:
#
#   docker build -t secretd:0.1.0 .
#
# The entrypoint is the server; run the CLI with
# `--entrypoint /usr/local/bin/secretctl` (Kubernetes: `command:`).
# See docs/kubernetes.md.

# The toolchain the workspace is built and tested with. The builder and the
# final image are both Debian 12 (bookworm), so the binaries find the same
# glibc they were linked against.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cargo's registry and the target directory are build caches, not layers;
# the binaries are copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin secretd --bin secretctl \
 && install -D -m 0755 -t /out target/release/secretd target/release/secretctl

# distroless/cc: glibc, libgcc and CA certificates; no shell, no package
# manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/secretd /out/secretctl /usr/local/bin/
USER 65532:65532
EXPOSE 8200
ENTRYPOINT ["/usr/local/bin/secretd"]
CMD ["server", "--config", "/etc/secretd/config/secretd.toml"]
