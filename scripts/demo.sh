#!/usr/bin/env bash
# Builds nono and runs the main job: a command confined by the kernel under a network
# profile, whose only way out is the in-process filtering proxy. It shows what the child sees,
# an allowed request (or, offline, says that nothing could answer it) and what is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p nono-cli
./target/release/nono run --allow-cwd --network-profile claude-code -- sh -c '
  echo "--- proxy environment the child sees:"; env | grep -E "^(HTTPS?_PROXY|NO_PROXY)=" | sed "s/nono:[0-9a-f]*@/nono:<token>@/"
  echo "--- an allowed host (api.github.com is in the claude-code profile):"
  r=$(curl -sS -o /dev/null -w "%{http_connect} %{http_code}" --max-time 10 https://api.github.com/ 2>/dev/null || true)
  case "$r" in
    "200 "[1-5]*) echo "allowed: https://api.github.com/ answered ${r#* } through the proxy" ;;
    502*|504*) echo "allowed by the policy, but this machine is offline: the proxy could not resolve or reach api.github.com (${r%% *})" ;;
    *) echo "unexpected: CONNECT/HTTP status $r" ;;
  esac
  echo "--- CONNECT to a host outside the profile (expect 403):"
  curl -sS -o /dev/null -w "%{http_code}\n" --max-time 5 https://example.com 2>&1 || true
  echo "--- direct connection around the proxy (expect refusal):"
  curl -sS --noproxy "*" --max-time 5 http://127.0.0.1:9 2>&1 | head -1 || true
  echo "--- reading a file outside the granted paths (expect Permission denied):"
  ls "$HOME" 2>&1 | head -1 || true
'
