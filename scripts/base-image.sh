#!/usr/bin/env bash
# Makes the local stand-in for the base image the Dockerfiles name
# (debian:bookworm-slim): no image registry is reachable on the build
# machines, so the image is made from Debian's packages (debootstrap of
# bookworm, minimal variant, plus ca-certificates) and `docker import`ed under
# that tag, with a label that says what it is. A machine that can pull the
# real image does not need this (the Makefile skips it when the tag exists).
#   scripts/base-image.sh [tag]
set -euo pipefail
tag=${1:-debian:bookworm-slim}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag: present"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap (Debian package)"
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base image $tag: debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" >"$root.log" 2>&1 ||
  { tail -n 30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'LABEL org.opencontainers.image.description="Local stand-in for debian:bookworm-slim, made by scripts/base-image.sh (debootstrap)"' \
  --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "base image $tag: imported ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
