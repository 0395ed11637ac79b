#!/usr/bin/env bash
# Property-based tests of a running adapter's management API against its
# OpenAPI document (adapter/resources/management-api.yaml), with Schemathesis:
# no 5xx, every status, content type, header and body as documented, invalid
# input refused, valid input accepted, unsupported methods answered 405,
# operations refusing requests without credentials.
#
#   scripts/schemathesis.sh BASE_URL (CA_CERT | --insecure) USER:PASSWORD
#   scripts/schemathesis.sh https://127.0.0.1:9843 /path/to/mg.pem admin:admin
#
# BASE_URL is the adapter's management address; /api/mgw/adapter/0.1 is
# appended unless present. Exits non-zero on any failure.
#
# Three passes: HTTP Basic with every check, a Bearer token from
# POST /oauth2/token, and no credentials (the 401s). Offline once
# Schemathesis is installed (pinned, into .tools/schemathesis) and
# reproducible: fixed seed, one worker, no example database; Hypothesis and
# Schemathesis caches go to a temporary folder.
#
# It changes the adapter's state: it deploys ST_PROJECT first (so that the
# list, status and undeploy operations see a deployed API; the examples phase
# undeploys it again), and leaves many random revoked tokens behind. Run it
# against a test adapter only.
#
# Environment:
#   MAX_EXAMPLES   test cases per operation and phase (default 30)
#   ST_SEED        random seed (default 1)
#   ST_PROJECT     apictl project folder deployed first (default
#                  samples/apis/petstore; empty: none)
#   REPORT_DIR     write JUnit XML and HAR reports there (default: none)
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools/schemathesis"
spec="$root/adapter/resources/management-api.yaml"
base_path=/api/mgw/adapter/0.1

usage() {
  echo "usage: $0 BASE_URL (CA_CERT | --insecure) USER:PASSWORD" >&2
  exit 64
}
[[ $# -eq 3 ]] || usage
url=${1%/}
[[ $url == *"$base_path" ]] || url="$url$base_path"
credentials=$3
[[ $credentials == *:* ]] || usage
if [[ $2 == --insecure ]]; then
  tls_verify=false
  curl_tls=(-k)
else
  [[ -r $2 ]] || { echo "$0: cannot read the CA certificate $2" >&2; exit 64; }
  tls_verify=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
  curl_tls=(--cacert "$tls_verify")
fi
max_examples=${MAX_EXAMPLES:-30}
seed=${ST_SEED:-1}
project=${ST_PROJECT-$root/samples/apis/petstore}
if [[ -n $project ]]; then
  [[ -d $project ]] || { echo "$0: ST_PROJECT $project is not a folder" >&2; exit 64; }
  project=$(cd "$project" && pwd)
fi
if [[ -n ${REPORT_DIR:-} ]]; then
  mkdir -p "$REPORT_DIR"
  REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
fi

if ! compgen -G "$tools/schemathesis-$SCHEMATHESIS_VERSION.dist-info" >/dev/null; then
  echo "installing Schemathesis $SCHEMATHESIS_VERSION into .tools/schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$tools" \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi
st() { PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}" python3 "$tools/bin/st" "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Hypothesis and Schemathesis write caches under the working directory.
cd "$work"
export HYPOTHESIS_STORAGE_DIRECTORY="$work/.hypothesis"

# Refusals the document cannot rule out from the schema alone: whether a zip
# is a valid project, and whether a JWT's payload is base64url JSON.
cat >schemathesis.toml <<'EOF'
[[operations]]
include-operation-id = ["deployApi", "revokeToken", "unrevokeToken"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]
EOF

# What every pass shares.
common=(
  --config-file schemathesis.toml run "$spec"
  --url "$url" --tls-verify "$tls_verify"
  --seed "$seed" --generation-database none --workers 1
  --generation-with-security-parameters false
  --request-timeout 30 --no-color
)
# Report options for pass $1 (none without REPORT_DIR).
report() {
  reports=()
  [[ -z ${REPORT_DIR:-} ]] || reports=(--report junit,har --report-dir "$REPORT_DIR/$1")
}

code=$(curl -sS "${curl_tls[@]}" -u "$credentials" -o /dev/null -w '%{http_code}' "$url/xds" || true)
if [[ $code != 200 ]]; then
  echo "$0: GET $url/xds with these credentials answered ${code:-nothing}, not 200: is the adapter up?" >&2
  exit 1
fi

if [[ -n $project ]]; then
  echo "deploying $project"
  python3 - "$project" project.zip <<'EOF'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk(src):
        for f in sorted(files):
            p = os.path.join(d, f)
            z.write(p, os.path.relpath(p, src))
EOF
  curl -sS --fail-with-body "${curl_tls[@]}" -u "$credentials" -X POST "$url/apis?override=true" \
    -F file=@project.zip -o /dev/null
fi

status=0
started=$SECONDS
echo "== HTTP Basic: every check, $max_examples examples per operation and phase (seed $seed)"
report basic
st "${common[@]}" -a "$credentials" --checks all --max-examples "$max_examples" "${reports[@]}" || status=1

echo "== Bearer token from POST /oauth2/token"
if token=$(python3 -c 'import json, sys; u, _, p = sys.argv[1].partition(":"); print(json.dumps({"username": u, "password": p}))' \
  "$credentials" | curl -sS --fail "${curl_tls[@]}" -X POST "$url/oauth2/token" --data-binary @- |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])'); then
  report bearer
  st "${common[@]}" -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
    --phases examples,fuzzing --max-examples "$(((max_examples + 2) / 3))" "${reports[@]}" || status=1
else
  echo "POST /oauth2/token gave no token for these credentials" >&2
  status=1
fi

echo "== No credentials: every operation but POST /oauth2/token answers the documented 401"
report anonymous
st "${common[@]}" --exclude-operation-id getToken \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,fuzzing --max-examples 3 "${reports[@]}" || status=1

echo "schemathesis: $((SECONDS - started))s, $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
exit "$status"
