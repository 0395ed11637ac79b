#!/bin/bash
# Container health check of the router (no curl in the image): GET /ready on
# the stats listener (envoy/bootstrap.yaml), 200 once the router holds its
# configuration and 503 from the moment it drains.
exec 3<>"/dev/tcp/127.0.0.1/${ROUTER_STATS_PORT:-8404}" || exit 1
printf 'GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 3 status <&3 || exit 1
case "$status" in "HTTP/1.1 200"*) exit 0 ;; *) exit 1 ;; esac
