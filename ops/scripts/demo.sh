#!/usr/bin/env bash
# The README's first command: set up and run vidsearch on embedded defaults (milvus-lite in a
# local file, no servers): build a small catalogue from real packaged media, index it through
# the same pipeline as production, answer a few example queries. Extra arguments go to
# `vidsearch demo` (e.g. --stamps 48, --json).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(bash "$repo/ops/scripts/bootstrap.sh" | tail -n 1)"
exec "$bin/vidsearch" demo "$@"
