#!/usr/bin/env bash
# Benchmarks nono against direct paths in the same run (the machine is shared and noisy: read
# the ratios, not the absolute numbers).
#   1. nono-bench: the proxy (pinned to CPU 0) vs direct connections (bench on CPU 1).
#   2. nono-bench --intercept: TLS interception vs a CONNECT tunnel vs direct HTTPS.
#   3. hyperfine: start-up cost of `nono run -- /bin/true` vs bare /bin/true and bwrap.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v bwrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine bubblewrap
}
cargo build --release -p nono-cli -p nono-bench
./target/release/nono-bench --nono target/release/nono "$@"
./target/release/nono-bench --nono target/release/nono --intercept --rounds 5 "$@"
nono=$PWD/target/release/nono
cd /tmp
hyperfine -N --warmup 20 --runs 300 \
  '/bin/true' \
  "$nono run -q --allow-domain example.com -- /bin/true" \
  "$nono run -q --block-net -- /bin/true" \
  'bwrap --ro-bind / / /bin/true' \
  'bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true'
