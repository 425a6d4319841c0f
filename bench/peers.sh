#!/usr/bin/env bash
# bench/peers.sh - one run of ../shared/bench/run-peers.sh with two fresh instances of the
# forward proxy beside Squid and tinyproxy: 127.0.0.1:3901 with Basic auth (user bench /
# bench-pass) and 127.0.0.1:3902 with --no-auth (the same proxy without the layer). Both get
# --allow-private-targets (the harness's origin is on 127.0.0.1) and keep their default access
# log on, written to stdout, which goes to /dev/null.
#
# Usage: bench/peers.sh TSV_OUT [extra proxy flags...]
#   e.g. bench/peers.sh /tmp/a.tsv --worker-threads 1 --max-auth-failures 0
# The extra flags go to both instances (--max-auth-failures only to the auth one).
# Environment: passed on to run-peers.sh (DURATION, WARMUP, CONNS, ...); OURS_NAME (ours);
#   PEERS=1 (0: --no-peers); RUST_LOG=warn (the peers log no access lines either).
# Both instances are started fresh (no throttle state carries over) and stopped by PID
# (stop_pid in bench/lib.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TSV=${1:?usage: bench/peers.sh TSV_OUT [extra proxy flags...]}
shift
BIN=$ROOT/target/release/forward-proxy
[[ -x $BIN ]] || { echo "no $BIN; run: cargo build --release -p tower-proxy-auth-proxy" >&2; exit 1; }
export RUST_LOG=${RUST_LOG:-warn}

auth_flags=("$@")
noauth_flags=()
skip=0
for a in "$@"; do   # --max-auth-failures N is meaningless without auth
  if ((skip)); then skip=0; continue; fi
  case $a in
    --max-auth-failures) skip=1 ;;
    --max-auth-failures=*) ;;
    *) noauth_flags+=("$a") ;;
  esac
done

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do stop_pid forward_proxy "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" --listen 127.0.0.1:3901 --allow-private-targets --user bench:bench-pass "${auth_flags[@]}" >/dev/null 2>"$TSV.auth.log" &
PIDS+=($!)
wait_port 3901 "$!" "forward_proxy (auth; see $TSV.auth.log)"
"$BIN" --listen 127.0.0.1:3902 --allow-private-targets --no-auth "${noauth_flags[@]}" >/dev/null 2>"$TSV.noauth.log" &
PIDS+=($!)
wait_port 3902 "$!" "forward_proxy (--no-auth; see $TSV.noauth.log)"
peers=()
[[ ${PEERS:-1} == 0 ]] && peers=(--no-peers)
"$ROOT/../shared/bench/run-peers.sh" --ours 127.0.0.1:3901 --ours-noauth 127.0.0.1:3902 \
  --ours-name "${OURS_NAME:-ours}" --tsv "$TSV" "${peers[@]}"
