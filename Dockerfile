# One image with every Flotilla binary and the cloud simulator; compose picks the binary per container.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/flotilla target/release/flotilla-provisioner target/release/flotilla-dns \
       target/release/flotilla-firewall target/release/flotilla-sync target/release/flotilla-autoscaler \
       target/release/flotilla-cloudsim /out/

FROM debian:bookworm-slim
# curl: the compose health check asks each service's /ready.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/flotilla --create-home flotilla
COPY --from=build /out/ /usr/local/bin/
USER flotilla
WORKDIR /var/lib/flotilla
ENV FLOTILLA__DATA_DIR=/var/lib/flotilla
