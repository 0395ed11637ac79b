# A local stand-in for the official redis image (no registry is reachable on
# the build machines): Debian's redis-server on the Debian base. Built by
# `make images` only when the tag (REDIS_IMAGE) is missing; everywhere else
# docker-compose.yaml pulls the real one.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.description="Local stand-in for redis: Debian bookworm's redis-server, made by make images"
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && redis-server --version
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]
