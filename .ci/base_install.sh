#!/usr/bin/env bash
# The reader installs alone: a fresh venv with only the base install (no extras) imports serving.reader
# and answers `semrec query --help`, and has neither a web framework nor torch nor Dask.
#   .ci/base_install.sh [PYTHON]      # default python3.11; CI runs it before the test suite
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3.11}
VENV=$(mktemp -d /tmp/semrec-base-XXXXXX)
trap 'rm -rf "$VENV"' EXIT
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet -c constraints.txt .
cd "$VENV"  # not the checkout: import the installed package
"$VENV/bin/python" -c "import serving.reader, serving.cli"
"$VENV/bin/semrec" query --help > /dev/null
for heavy in fastapi uvicorn torch dask distributed; do
    if "$VENV/bin/python" -c "import $heavy" 2> /dev/null; then
        echo "base install pulled in $heavy" >&2
        exit 1
    fi
done
echo "base install on $("$VENV/bin/python" --version): serving.reader imports"
