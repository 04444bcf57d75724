#!/usr/bin/env bash
# Static checks CI runs before the tests: ruff (lint + import order) and mypy (types).
#
# mypy resolves modules from folders, but our import names (`vidsearch.core`, ...) exist only
# through setup.py's package_dir mapping of the user's top-level folders. So mypy is pointed at a
# tree of symlinks, vidsearch/<folder> -> <repo>/<folder>, built outside the repository; this is
# the one hand-rolled piece here, and it changes nothing in the layout the user sees.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$HOME/.cache/vidsearch/venv/bin}"
cd "$repo"

status=0
echo "[lint] ruff check" >&2
"$bin/ruff" check core connector encoders plugins ops tests || status=1

tree="${XDG_CACHE_HOME:-$HOME/.cache}/vidsearch/mypy-src"
rm -rf "$tree/vidsearch"
mkdir -p "$tree/vidsearch"
for folder in core connector encoders plugins ops; do
  ln -s "$repo/$folder" "$tree/vidsearch/$folder"
done
echo "[lint] mypy" >&2
cd "$tree"
"$bin/mypy" --config-file "$repo/pyproject.toml" --cache-dir "$tree/.mypy_cache" -p vidsearch || status=1
exit "$status"
