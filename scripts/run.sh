#!/usr/bin/env bash
# `make run`: the whole gateway on this machine, with the sample API and
# backend. Ctrl-C stops every process started here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run=.run
bin=target/debug
envoy=${ENVOY_BIN:-$root/.tools/pip/envoy/_bin/envoy}

for p in 9090 9095 9000 9843 18000 8081 18090 9001 2383 2384 2385; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use: stop what listens there (an earlier make run?) and try again" >&2
    exit 1
  fi
done

mkdir -p "$run/certs" "$run/artifacts/apis" "$run/logs" "$run/data"
if [ ! -f "$run/certs/ca.pem" ]; then
  echo "Creating a development CA and a certificate for localhost in $run/certs"
  (
    cd "$run/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=Gateway development CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout mg.key -out mg.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' > mg.ext
    openssl x509 -req -in mg.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile mg.ext -out mg.pem 2>/dev/null
    rm -f mg.csr mg.ext ca.srl
  )
fi
# The sample projects (changes to .run/artifacts/apis are picked up live).
cp -R samples/apis/. "$run/artifacts/apis/"

pids=()
stopping=
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "Stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap cleanup INT TERM EXIT

export adapter_admin_pwd=${adapter_admin_pwd:-admin}
export enforcer_admin_pwd=${enforcer_admin_pwd:-admin}
"$bin/test-backend" --listen 127.0.0.1:2383 --name sample-backend >"$run/logs/backend.log" 2>&1 &
pids+=($!)
# The WebSocket and GraphQL samples' backends (tools/protocols).
"$bin/test-protocols" --websocket-port 2384 --graphql-port 2385 >"$run/logs/protocols.log" 2>&1 &
pids+=($!)
"$bin/adapter" --config samples/config.toml --xds-address 127.0.0.1:18000 >"$run/logs/adapter.log" 2>&1 &
pids+=($!)
ENFORCER_LABEL=Default ADAPTER_HOST=127.0.0.1 ADAPTER_XDS_PORT=18000 \
  ENFORCER_AUTHZ_ADDRESS=127.0.0.1:8081 ENFORCER_ALS_ADDRESS=127.0.0.1:18090 ENFORCER_ADMIN_ADDRESS=127.0.0.1:9001 \
  ENFORCER_PUBLIC_CERT_PATH="$run/certs/mg.pem" ENFORCER_PRIVATE_KEY_PATH="$run/certs/mg.key" \
  TRUSTED_CA_CERTS_PATH="$run/certs/ca.pem" \
  "$bin/enforcer" >"$run/logs/enforcer.log" 2>&1 &
pids+=($!)
ROUTER_ADMIN_PORT=9000 XDS_API_TYPE=${XDS_API_TYPE:-DELTA_GRPC} \
  ROUTER_PUBLIC_CERT_PATH="$root/$run/certs/mg.pem" ROUTER_PRIVATE_KEY_PATH="$root/$run/certs/mg.key" \
  ADAPTER_CA_CERT_PATH="$root/$run/certs/ca.pem" ENFORCER_CA_CERT_PATH="$root/$run/certs/ca.pem" \
  ./scripts/render-bootstrap.sh > "$run/envoy.yaml"
"$envoy" -c "$run/envoy.yaml" --base-id 9090 --concurrency 2 --log-level warn >"$run/logs/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fs -o /dev/null http://localhost:9090/ready; then break; fi
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "a process exited early; see $run/logs/" >&2; tail -n 20 "$run"/logs/*.log >&2; exit 1; fi
  done
  sleep 0.1
done
curl -fs -o /dev/null http://localhost:9090/ready || { echo "the gateway did not become ready; see $run/logs/" >&2; exit 1; }

cat <<MSG

The gateway is running (logs in $run/logs/):
  router (Envoy)   http://localhost:9090  https://localhost:9095  admin http://127.0.0.1:9000
  adapter          xDS 127.0.0.1:18000 (mutual TLS), management API https://localhost:9843 (admin/admin)
  enforcer         ext_authz 127.0.0.1:8081 (mutual TLS), admin API https://localhost:9001 (admin/admin)
  certificates     $run/certs (development CA ca.pem; every component uses mg.pem)
  sample backends  http://127.0.0.1:2383 (echo), ws://127.0.0.1:2384 (WebSocket echo), http://127.0.0.1:2385 (GraphQL)
  analytics        $run/logs/analytics.jsonl

Try:
  curl -i http://localhost:9090/petstore/1.0.0/pets                      # public resource -> 200 (backend echo)
  curl -i -X POST http://localhost:9090/petstore/1.0.0/pets              # secured, no token -> 401 / 900901

  # A secured call in two commands: a test token, then the API.
  TOKEN=\$(curl -sk -X POST https://localhost:9095/testkey -H "Authorization: Basic YWRtaW46YWRtaW4=")
  curl -i -X POST http://localhost:9090/petstore/1.0.0/pets -H "Authorization: Bearer \$TOKEN"

  # GraphQL (samples/apis/starwars): hero is open, human needs the token.
  curl -s http://localhost:9090/starwars/1.0.0 -H 'Content-Type: application/json' -d '{"query":"{ hero { name } }"}'
  curl -s http://localhost:9090/starwars/1.0.0 -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \
    -d '{"query":"{ human(id: \\"1000\\") { name homePlanet } }"}'
  # WebSocket (samples/apis/chat; websocat: cargo install websocat): /open is open, /notifications needs the token.
  websocat ws://localhost:9090/chat/1.0.0/open
  websocat -H "Authorization: Bearer \$TOKEN" ws://localhost:9090/chat/1.0.0/notifications

  curl -s http://localhost:9090/.wellknown/jwks                          # keys of the backend JWT (X-JWT-Assertion)
  curl -sk -u admin:admin https://localhost:9001/apis                    # the enforcer's view
  curl -sk -u admin:admin https://localhost:9843/api/mgw/adapter/0.1/xds # what each Envoy and enforcer holds
  curl -s localhost:19085/metrics; curl -s localhost:19086/metrics        # adapter, enforcer (Prometheus)
  curl -s localhost:8404/stats/prometheus                                # Envoy's stats (admin stays on 127.0.0.1:9000)
Edit or add projects under $run/artifacts/apis/ and they are applied without a restart.
Or deploy with apictl (README, "init -> push -> call"):
  alias apictl="\$PWD/target/debug/apictl --ca-cert \$PWD/$run/certs/ca.pem"
  apictl env add local --adapter https://localhost:9843 && echo admin | apictl login local -u admin --password-stdin

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || echo "a process exited; see $run/logs/" >&2
