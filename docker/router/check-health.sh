#!/bin/bash
# Container health check of the router (no curl in the image): GET /ready on
# the HTTP listener, which answers 200 once the router holds its configuration.
exec 3<>"/dev/tcp/127.0.0.1/${ROUTER_LISTENER_PORT:-9090}" || exit 1
printf 'GET /ready HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "${ROUTER_SYSTEM_HOST:-localhost}" >&3
IFS= read -r -t 3 status <&3 || exit 1
case "$status" in "HTTP/1.1 200"*) exit 0 ;; *) exit 1 ;; esac
