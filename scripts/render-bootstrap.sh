#!/usr/bin/env bash
# Renders envoy/bootstrap.yaml: fills ${NAME} from the environment, with the
# defaults documented at the top of the file. Usage: render-bootstrap.sh [template] > out.yaml
set -euo pipefail
template=${1:-$(dirname "$0")/../envoy/bootstrap.yaml}
export ROUTER_LABEL=${ROUTER_LABEL:-Default}
export ROUTER_CLUSTER=${ROUTER_CLUSTER:-default_cluster}
export ROUTER_ADMIN_HOST=${ROUTER_ADMIN_HOST:-127.0.0.1}
export ROUTER_ADMIN_PORT=${ROUTER_ADMIN_PORT:-9000}
export ROUTER_STATS_HOST=${ROUTER_STATS_HOST:-0.0.0.0}
export ROUTER_STATS_PORT=${ROUTER_STATS_PORT:-8404}
export ADAPTER_HOST=${ADAPTER_HOST:-127.0.0.1}
export ADAPTER_PORT=${ADAPTER_PORT:-18000}
export XDS_API_TYPE=${XDS_API_TYPE:-DELTA_GRPC}
export ENFORCER_HOST=${ENFORCER_HOST:-127.0.0.1}
export ENFORCER_PORT=${ENFORCER_PORT:-8081}
export ENFORCER_ANALYTICS_RECEIVER_PORT=${ENFORCER_ANALYTICS_RECEIVER_PORT:-18090}
export ENFORCER_HTTPS_PORT=${ENFORCER_HTTPS_PORT:-9001}
export ENFORCER_CA_CERT_PATH=${ENFORCER_CA_CERT_PATH:-/home/wso2/security/truststore/mg.pem}
export HOSTNAME=${HOSTNAME:-$(hostname 2>/dev/null || echo router)}
export COMPONENT_TLS=${COMPONENT_TLS:-true}
export ROUTER_PUBLIC_CERT_PATH=${ROUTER_PUBLIC_CERT_PATH:-/home/wso2/security/keystore/mg.pem}
export ROUTER_PRIVATE_KEY_PATH=${ROUTER_PRIVATE_KEY_PATH:-/home/wso2/security/keystore/mg.key}
export ADAPTER_CA_CERT_PATH=${ADAPTER_CA_CERT_PATH:-/home/wso2/security/truststore/mg.pem}
# Drop the TLS blocks when COMPONENT_TLS=false; substitute only ${UPPER_CASE}
# names outside comments; fail on one that is not set.
perl -ne '
  if (/^\s*# tls:begin/) { $in = 1; next }
  if (/^\s*# tls:end/) { $in = 0; next }
  next if $in && $ENV{COMPONENT_TLS} eq "false";
  s/\$\{([A-Z_][A-Z0-9_]*)\}/exists $ENV{$1} ? $ENV{$1} : die("render-bootstrap: $1 is not set\n")/ge unless /^\s*#/;
  print' "$template"
