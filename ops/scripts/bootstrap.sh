#!/usr/bin/env bash
# Install everything vidsearch needs on a fresh Debian machine, idempotently:
#   - Debian packages (redis-server, maven, a JDK 17 for Kafka; OpenSearch 3 needs a JDK 21+)
#   - a Python virtual environment OUTSIDE the repository, with vidsearch installed editable.
# Prints the venv's bin folder on the last line of stdout. Safe to run again: it only does
# what is missing (a stamp keyed on pyproject.toml/setup.py and the repo path skips pip).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${VIDSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidsearch}"
venv="${VIDSEARCH_VENV:-$cache/venv}"
python="${VIDSEARCH_PYTHON:-python3.11}"
log() { echo "[bootstrap] $*" >&2; }

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v mvn >/dev/null || need_apt+=(maven)
ls /usr/lib/jvm/*/release >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
# Real media and speech for tests, benchmarks and the demo (docs/architecture.md, "Data").
[ -d /usr/share/tuxpaint/stamps ] || need_apt+=(tuxpaint-stamps-default)
[ -d /usr/share/doc/opencv-doc/examples/data ] || need_apt+=(opencv-doc)
[ -d /usr/share/pocketsphinx/test/data/librivox ] || need_apt+=(pocketsphinx-testdata)
ldconfig -p | grep -q 'libcairo\.so\.2' || need_apt+=(libcairo2)  # cairosvg draws OpenMoji's SVGs for the pretraining corpus
command -v chromium >/dev/null || need_apt+=(chromium)  # the results-page browser test (Debian's, never a downloaded one)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${need_apt[*]} (run as root or install them)"; exit 1
  fi
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

if ! grep -qsE 'JAVA_VERSION="(2[1-9]|[3-9][0-9])' /usr/lib/jvm/*/release ${OPENSEARCH_JAVA_HOME:+"$OPENSEARCH_JAVA_HOME/release"}; then
  log "warning: no JDK 21+ found for OpenSearch 3; set OPENSEARCH_JAVA_HOME or VIDSEARCH_STACK__OPENSEARCH_JAVA_HOME"
fi

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.vidsearch-stamp"
want="$(cat "$repo/pyproject.toml" "$repo/setup.py" | sha256sum | cut -c1-16) $repo"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -e $repo[dev,encoders]"
  "$venv/bin/pip" install -q -e "$repo[dev,encoders]" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
