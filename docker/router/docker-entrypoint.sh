#!/bin/sh
# The router's entrypoint: renders the bootstrap from the environment
# (render-bootstrap.sh, the script `make run` uses), then runs Envoy with
# CONCURRENCY workers. On SIGTERM Envoy drains its listeners for DRAIN_TIME_S
# seconds (immediately refusing new connections is not what a rolling update
# wants: `--drain-strategy gradual`). TRAILING_ARGS are passed on, as in Choreo
# Connect (e.g. "-l debug").
set -eu
out=${BOOTSTRAP_OUT:-/tmp/envoy.yaml}
/home/wso2/render-bootstrap.sh /home/wso2/envoy.yaml.template >"$out"
# shellcheck disable=SC2086
exec envoy -c "$out" --concurrency "${CONCURRENCY:-2}" --drain-time-s "${DRAIN_TIME_S:-20}" \
  --drain-strategy gradual --base-id "${BASE_ID:-0}" ${TRAILING_ARGS:-}
