#!/usr/bin/env bash
# The README's test command: set everything up, run the static checks (ruff, mypy), start the
# real local stack (Kafka, OpenSearch with k-NN, Redis, milvus-lite), run the whole test suite
# against it, always stop the stack, and print the log of any service that failed. Extra
# arguments go to pytest.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bin="$(bash ops/scripts/bootstrap.sh | tail -n 1)" || { echo "bootstrap failed" >&2; exit 1; }
vs="$bin/vidsearch"

show_failed_logs() {
  for svc in kafka opensearch redis milvus; do
    if ! "$vs" stack status -s "$svc" >/dev/null 2>&1; then
      echo "===== $svc is not healthy: last log lines =====" >&2
      "$vs" stack logs "$svc" -n 80 >&2 || true
    fi
  done
}
cleanup() { "$vs" stack down >&2 || true; }
trap cleanup EXIT

# Static checks first: a lint or type error fails CI before minutes of services and tests.
if ! bash ops/scripts/lint.sh "$bin"; then
  echo "static checks failed (ruff / mypy): see above" >&2
  exit 1
fi

if ! "$vs" stack up; then
  show_failed_logs
  exit 1
fi

"$bin/pytest" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  # pytest's exit 5: no test was collected. A test run that tests nothing is a failure, never a
  # pass (a broken conftest or a wrong -k/-m would otherwise turn CI green).
  echo "pytest collected no tests (exit 5) for arguments: ${*:-<none>}; failing" >&2
fi
if [ "$rc" -ne 0 ]; then
  "$vs" stack status >&2 || show_failed_logs
fi
exit "$rc"
