#!/usr/bin/env bash
# The README's first command: set up and run vidsearch on embedded defaults (milvus-lite in a
# local file, no servers). Until the streaming indexer lands (issue #5) this sets everything up
# and checks the embedded store; `vidsearch demo` will then build and search a real catalogue.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(bash "$repo/ops/scripts/bootstrap.sh" | tail -n 1)"
data="${VIDSEARCH_DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vidsearch/demo}"
mkdir -p "$data"
export VIDSEARCH_MILVUS__URI="${VIDSEARCH_MILVUS__URI:-$data/vidsearch.db}"
if "$bin/vidsearch" demo --help >/dev/null 2>&1; then
  exec "$bin/vidsearch" demo "$@"
fi
echo "vidsearch is installed in $bin. The demo catalogue arrives with the streaming indexer;" >&2
echo "for now, the embedded store (milvus-lite at $VIDSEARCH_MILVUS__URI):" >&2
exec "$bin/vidsearch" stack status -s milvus
