#!/usr/bin/env bash
# The Helm chart's tests, without a cluster or a helm CLI:
#   1. integration/chart/validate.py: helm lint --strict, renders of the default
#      values and examples/production-values.yaml, the chart's guards and
#      values.schema.json, kubernetes-validate --strict of every object,
#      golden files (UPDATE_GOLDEN=1 rewrites them), `adapter --validate` of
#      the rendered config.toml;
#   2. integration/chart/wiring.py: the rendered pods run on the Docker engine
#      and serve a public, a secured and a /testkey request (skipped, saying
#      so, when no Docker engine answers).
# Python packages (PyPI) go to .tools/pip-chart, reinstalled when the pins
# below change. Exits non-zero when anything fails.
#
#   bash scripts/chart-test.sh
#   UPDATE_GOLDEN=1 bash scripts/chart-test.sh      # after a deliberate chart change
#   CC_IMAGE_TAG=test bash scripts/chart-test.sh    # the wiring test on other image tags
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TARGET=.tools/pip-chart
PINS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4)

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "chart-test: needs Python 3.11 or later ($PYTHON)" >&2
  exit 1
fi
if [ "$(cat "$TARGET/.pins" 2>/dev/null)" != "${PINS[*]}" ]; then
  echo "chart-test: installing ${PINS[*]} into $TARGET"
  rm -rf "$TARGET"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$TARGET" "${PINS[@]}"
  echo "${PINS[*]}" >"$TARGET/.pins"
fi
export PYTHONPATH="$PWD/$TARGET:$PWD/integration/chart" PYTHONDONTWRITEBYTECODE=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
validate=ok wiring=ok
echo "== chart: lint, render, kubernetes-validate, goldens, adapter --validate"
"$PYTHON" integration/chart/validate.py || validate=FAILED
echo
echo "== chart: wiring on the Docker engine"
"$PYTHON" integration/chart/wiring.py 2>&1 | tee "$log" || wiring=FAILED
if [ "$wiring" = ok ] && grep -q '^SKIPPED:' "$log"; then wiring="skipped ($(grep -m1 '^SKIPPED:' "$log" | sed 's/^SKIPPED: //'))"; fi

echo
echo "== chart-test summary"
echo "  validation (lint, render, schemas, goldens, config): $validate"
echo "  wiring (rendered pods on Docker):                    $wiring"
[ "$validate" = ok ] && [ "$wiring" != FAILED ]
