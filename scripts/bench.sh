#!/usr/bin/env bash
# `make bench`: installs wrk if needed, then runs the release benchmark binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq wrk >/dev/null || { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk; }
fi
export ADAPTER_LOG=${ADAPTER_LOG:-warn}
export ENVOY_LOG_LEVEL=${ENVOY_LOG_LEVEL:-warn}
export ENFORCER_LOG=${ENFORCER_LOG:-warn}
exec target/release/bench "$@"
