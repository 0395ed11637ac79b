#!/bin/bash
# The router's entrypoint: renders the bootstrap from the environment
# (render-bootstrap.sh, the script `make run` uses), runs Envoy with
# CONCURRENCY workers and drains it on SIGTERM. TRAILING_ARGS are passed on,
# as in Choreo Connect (e.g. "-l debug").
#
# On SIGTERM (a rolling update, `docker compose stop`):
#  1. POST /healthcheck/fail: /ready on the stats listener answers 503, so the
#     orchestrator stops sending new connections; responses on open
#     connections carry `Connection: close` (HTTP/1) or GOAWAY (HTTP/2).
#  2. POST /drain_listeners?graceful: listeners drain for DRAIN_TIME_S.
#  3. Wait at least DRAIN_MIN_S (for load balancers to see /ready fail), then
#     until no request is in flight on the traffic listeners (two polls half
#     a second apart), or DRAIN_TIME_S at most; then stop Envoy. In-flight
#     requests complete; idle keep-alive connections (which HTTP/1 clients
#     may hold for an hour) are closed with Envoy instead of holding the
#     drain to its end.
# Set terminationGracePeriodSeconds (Kubernetes) / stop_grace_period
# (Compose) above DRAIN_TIME_S.
#
# ROUTER_HOME (/home/wso2) and ENVOY_BIN (envoy) locate the files and Envoy,
# so the same script runs outside the image (integration/tests/drain.rs).
set -euo pipefail
home=${ROUTER_HOME:-/home/wso2}
out=${BOOTSTRAP_OUT:-/tmp/envoy.yaml}
drain_time=${DRAIN_TIME_S:-20}
drain_min=${DRAIN_MIN_S:-5}
admin_host=${ROUTER_ADMIN_HOST:-127.0.0.1}
[ "$admin_host" = 0.0.0.0 ] && admin_host=127.0.0.1
admin_port=${ROUTER_ADMIN_PORT:-9000}
"$home/render-bootstrap.sh" "$home/envoy.yaml.template" >"$out"

# One request to the admin API (no curl in the image); prints the body.
admin() {
  local fd
  exec {fd}<>"/dev/tcp/$admin_host/$admin_port" || return 1
  printf '%s %s HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&"$fd"
  sed '1,/^\r$/d' <&"$fd"
  exec {fd}<&-
}

# Requests in flight on the traffic listeners' connection managers (not the
# stats listener's, not the admin's).
active_requests() {
  admin GET '/stats?filter=^http\..*downstream_rq_active$' |
    awk -F': ' '!/^http\.(stats|admin)\./ { n += $2 } END { print n + 0 }'
}

envoy_pid=
drain() {
  trap - TERM INT
  echo "router: SIGTERM: failing /ready, draining listeners for up to ${drain_time}s" >&2
  admin POST /healthcheck/fail >/dev/null || true
  admin POST '/drain_listeners?graceful&skip_exit' >/dev/null || true
  local start=$SECONDS active quiet=0
  while kill -0 "$envoy_pid" 2>/dev/null && ((SECONDS - start < drain_time)); do
    if ((SECONDS - start >= drain_min)); then
      active=$(active_requests 2>/dev/null || echo 1)
      if [ "$active" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
      if ((quiet >= 2)); then break; fi
    fi
    read -r -t 0.5 <> <(:) || true
  done
  echo "router: drained after $((SECONDS - start))s; stopping Envoy" >&2
  kill -TERM "$envoy_pid" 2>/dev/null || true
}
trap drain TERM INT

# shellcheck disable=SC2086
"${ENVOY_BIN:-envoy}" -c "$out" --concurrency "${CONCURRENCY:-2}" --drain-time-s "$drain_time" \
  --drain-strategy immediate ${BASE_ID:+--base-id "$BASE_ID"} ${TRAILING_ARGS:-} &
envoy_pid=$!
# `wait` returns when a trapped signal arrives; wait again for Envoy's exit.
status=0
wait "$envoy_pid" || status=$?
while kill -0 "$envoy_pid" 2>/dev/null; do
  status=0
  wait "$envoy_pid" || status=$?
done
exit "$status"
