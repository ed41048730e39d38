#!/usr/bin/env bash
# Installs moto (the pinned requirements.txt beside this script) once, into a cache outside git
# keyed on the requirements, this script and the Python version — the same scheme as the
# control plane's build. Prints the cache directory (its site-packages/ goes on PYTHONPATH);
# progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../build-cache.sh"

command -v python3 >/dev/null || { echo "moto.sh: python3 is required (run test/system-deps.sh)" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { echo "moto.sh: pip for python3 is required (run test/system-deps.sh)" >&2; exit 1; }

key=$(cd "$here" && { cat moto.sh ../build-cache.sh requirements.txt; python3 --version; } | sha256sum | cut -c1-16)
cached_build_begin moto "$key"

started=$SECONDS
echo "moto.sh: installing $(grep -v '^#' "$here/requirements.txt" | xargs) (about a minute)" >&2
# --target, not a virtualenv: the directory stays usable after cached_build_end moves it.
python3 -m pip install --quiet --disable-pip-version-check --no-input --ignore-installed \
  --target "$staging/site-packages" -r "$here/requirements.txt" >&2
echo "moto.sh: installed in $((SECONDS - started)) s" >&2

cached_build_end "moto $(grep -o 'moto\[server\]==[^ ]*' "$here/requirements.txt")"
