#!/usr/bin/env bash
# Runs every check and test of nono on a fresh Debian machine (as root, or with sudo).
# Installs what the tests need, then: format check, clippy, the full test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tinyproxy >/dev/null 2>&1 || need+=(tinyproxy)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v keyctl >/dev/null 2>&1 || need+=(keyutils)
# TLS interception tests: git over HTTPS to a local git http-backend, Python requests.
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
/usr/bin/python3 -c 'import requests' >/dev/null 2>&1 || need+=(python3-requests)
# pip and npm against a local index under the agent profiles.
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The Python bindings' suite builds in a virtualenv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
# tinyproxy's package starts a system service we do not use; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop tinyproxy >/dev/null 2>&1 || true; fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The Python bindings (nono_py): built with maturin into a fresh virtualenv, then pytest.
bash crates/nono-py/test.sh
