#!/usr/bin/env bash
# Long fuzzing run of the HTTP API from its OpenAPI spec (schemathesis), the same test
# as CI's short one with many more generated requests per operation.
# Needs PostgreSQL on 127.0.0.1:5432 (`make services`). Prints the request count and
# the number of 5xx answers; exits non-zero if any check failed.
#   bench/fuzz.sh [EXAMPLES_PER_OPERATION]   (default 150: >= 2000 requests)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-150}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
export PYANNOTE_METRICS_ENABLED=0 DIARQ_FUZZ_EXAMPLES="$examples" DIARQ_FUZZ_REPORT="$report"
start=$(date +%s)
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz/test_schemathesis.py || status=$?
elapsed=$(( $(date +%s) - start ))
.venv/bin/python - "$report" "$elapsed" "$status" <<'PY'
import json, sys
report, elapsed, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    r = json.load(open(report))
except (OSError, ValueError):
    sys.exit("no report written: the run did not get to the end")
print(f"fuzz: requests={r['requests']} 5xx={r['server_errors_5xx']} "
      f"examples_per_operation={r['examples_per_operation']} seconds={elapsed} "
      f"checks={'passed' if status == 0 else 'FAILED'}")
print("fuzz: by status " + " ".join(f"{k}={v}" for k, v in r["by_status"].items()))
PY
exit "$status"
