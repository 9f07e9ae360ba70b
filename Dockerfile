# sio-server: multi-stage build, small non-root runtime image.
# Build context: the repository root (docker-compose.yml sets it).

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The stock socket.io-client bundle is embedded by build.rs from public/node_modules.
RUN npm ci --prefix public --no-audit --no-fund \
 && cargo build --release --locked --bin sio-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home sio
COPY --from=build /src/target/release/sio-server /usr/local/bin/sio-server
USER sio
ENV PORT=3000 HOST=0.0.0.0 LOG_FORMAT=json
EXPOSE 3000 4000
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1
CMD ["sio-server"]
