#!/usr/bin/env bash
# Builds nono-py into a fresh virtualenv and runs its pytest suite.
# Usage: crates/nono-py/test.sh [pytest args...]   (works as root, without a terminal)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$(mktemp -d "${TMPDIR:-/tmp}/nono-py-venv.XXXXXX")"
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
"$venv/bin/pip" install -q "maturin>=1.5,<2" pytest requests cryptography
# The same build `pip install ./crates/nono-py` does (release profile), into the venv.
"$venv/bin/pip" install -q "$here"
cd "$here/tests"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
