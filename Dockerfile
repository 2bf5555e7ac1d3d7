# Multi-stage build: the release build (production profile, fat LTO, profile-guided, laid out
# by BOLT: see scripts/release-build.sh), run as a non-root user.
# Config: /etc/imgproxy-gateway/gateway.yaml plus GATEWAY__SECTION__KEY environment overrides
# (see conf/docker-compose.yml). Reload: `docker kill -s HUP <container>`.
FROM rust:1.95-bookworm AS build
# cmake for zlib-ng inside Pingora; nginx-light, wrk, curl and python3 for the training run
# (two nginx backends on the builder's loopback, wrk driving the instrumented gateway);
# llvm-tools for llvm-profdata; bolt-22 (bookworm-security) for llvm-bolt.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake nginx-light wrk curl python3 bolt-22 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup component add llvm-tools
WORKDIR /src
COPY . .
RUN bash scripts/release-build.sh \
 && cp target/dist/imgproxy-gateway /imgproxy-gateway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/imgproxy-gateway --create-home gateway
COPY --from=build /imgproxy-gateway /usr/local/bin/imgproxy-gateway
COPY conf/gateway.yaml /etc/imgproxy-gateway/gateway.yaml
USER gateway
WORKDIR /var/lib/imgproxy-gateway
# The admin listener stays on the container's loopback (the image's default). To reach it
# from outside, set GATEWAY__ADMIN__LISTEN=0.0.0.0:9090 and publish it on a private network
# only, with the legacy key changed or disabled (the gateway warns at start otherwise).
ENV GATEWAY__SERVER__PID_FILE=/var/lib/imgproxy-gateway/gateway.pid \
    GATEWAY__SERVER__UPGRADE_SOCK=/var/lib/imgproxy-gateway/upgrade.sock
EXPOSE 8080
# Readiness on the admin listener (plain HTTP unless tls.admin): the database answers and a
# backend is healthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9090/api/v1/ready || exit 1
ENTRYPOINT ["imgproxy-gateway"]
CMD ["run", "--config", "/etc/imgproxy-gateway/gateway.yaml"]
