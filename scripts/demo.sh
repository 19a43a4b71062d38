#!/usr/bin/env bash
# Builds nono and runs the main job: a command confined by the kernel under a network
# profile, whose only way out is the in-process filtering proxy. Offline-safe: it shows what
# the child sees and what the sandbox refuses.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p nono-cli
./target/release/nono run --allow-cwd --network-profile claude-code -- sh -c '
  echo "--- proxy environment the child sees:"; env | grep -E "^(HTTPS?_PROXY|NO_PROXY)=" | sed "s/nono:[0-9a-f]*@/nono:<token>@/"
  echo "--- CONNECT to a host outside the profile (expect 403):"
  curl -sS -o /dev/null -w "%{http_code}\n" --max-time 5 https://example.com 2>&1 || true
  echo "--- direct connection around the proxy (expect refusal):"
  curl -sS --noproxy "*" --max-time 5 http://127.0.0.1:9 2>&1 | head -1 || true
  echo "--- reading a file outside the granted paths (expect Permission denied):"
  ls "$HOME" 2>&1 | head -1 || true
'
