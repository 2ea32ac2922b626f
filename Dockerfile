# One image with both binaries: `bichito` (api, sse, migrate, …) and `bichito-operator`.
# The runtime is distroless (glibc and CA certificates, no shell, no package manager) and runs
# as the nonroot user 65532, as the Helm chart's security contexts require.
#
#   docker build -t bichito:0.1.0 .
#   docker run --rm -p 8080:8080 bichito:0.1.0 dev --listen 0.0.0.0:8080

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bichito -p bichito-operator \
 && install -D -m 0755 -t /out target/release/bichito target/release/bichito-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/bichito /out/bichito-operator /usr/local/bin/
# `bichito dev` keeps its data in the working directory: the nonroot user's home.
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/bichito"]
CMD ["--help"]
