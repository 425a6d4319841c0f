#!/usr/bin/env bash
# bench/redis-load.sh - the forward proxy with its state on Redis (--redis-url) against the
# same proxy with its state in memory, under wrk, in one run (issue 13's performance figures).
#
# Everything runs on 127.0.0.1. The script:
#   1. starts a private nginx origin (bench/lib.sh origin_conf: `return 200`, 100-byte body) on
#      ORIGIN_PORT and a redis-server of its own on REDIS_PORT (persistence off, in a fresh
#      /tmp directory); writes a key file (64 hex digits);
#   2. ROUNDS times, alternating, each on a freshly started proxy (release build,
#      --worker-threads 1 unless PROXY_ARGS says otherwise, --access-log none):
#        memory: --auth digest,basic --user bench:bench-pass (throttle and replay store in memory)
#        redis:  the same with --digest-key-file KEY --redis-url redis://127.0.0.1:REDIS_PORT/
#      and for each: wrk -t1 -c CONNS -d DURATION
#        Basic accept (../shared/bench/wrk-proxy.lua, the right password: after the first
#          request the throttle's fast path, no Redis round trip), then
#        Digest SHA-256 accept (bench/wrk-digest.lua: one nonce from that proxy, the
#          Proxy-Authorization of nc = 1, 2, 3, ... precomputed by python3 into a file; a count
#          is accepted once, so every request checks the replay store);
#   3. prints one line per run, the medians, and the median of the rounds' ratios redis /
#      memory (each redis run right after its memory run), and stops every
#      process it started by PID (also on Ctrl-C, SIGTERM or an error).
#
# Usage: bench/redis-load.sh
#   (build first: cargo build --release -p tower-proxy-auth-proxy --features redis)
# Environment (defaults): ROUNDS=3 DURATION=5 CONNS=16 PROXY_PORT=3904 ORIGIN_PORT=18091
#   REDIS_PORT=16391 DIGEST_LINES=400000 (precomputed counts per Digest run: more than the
#   requests wrk can send in DURATION; past them wrk repeats the last, which counts as non-2xx)
#   PROXY_BIN=target/release/forward-proxy PROXY_ARGS="--worker-threads 1" RUST_LOG=warn
#   WRK_LUA=../shared/bench/wrk-proxy.lua KEEP_DIR=0
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-16}
PROXY_PORT=${PROXY_PORT:-3904}
ORIGIN_PORT=${ORIGIN_PORT:-18091}
REDIS_PORT=${REDIS_PORT:-16391}
DIGEST_LINES=${DIGEST_LINES:-400000}
PROXY_BIN=${PROXY_BIN:-$ROOT/target/release/forward-proxy}
read -r -a PROXY_ARGS <<<"${PROXY_ARGS:---worker-threads 1}"
WRK_LUA=${WRK_LUA:-$ROOT/../shared/bench/wrk-proxy.lua}
export RUST_LOG=${RUST_LOG:-warn}

for c in nginx wrk curl redis-server redis-cli python3 ss base64; do
  command -v "$c" >/dev/null || die "$c is not installed"
done
[[ -x $PROXY_BIN ]] || die "no $PROXY_BIN; run: cargo build --release -p tower-proxy-auth-proxy --features redis"
"$PROXY_BIN" --help | grep -q -- --redis-url \
  || die "$PROXY_BIN has no --redis-url; build it with --features redis"
[[ -r $WRK_LUA ]] || die "no wrk script $WRK_LUA"

RUN_DIR=$(mktemp -d /tmp/redis-load.XXXXXX)
declare -A STARTED=()
cleanup() {
  local name
  for name in "${!STARTED[@]}"; do stop_pid "$name" "${STARTED[$name]}"; done
  [[ ${KEEP_DIR:-0} == 1 ]] && log "kept $RUN_DIR" || rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

origin_conf "$RUN_DIR" "$ORIGIN_PORT" 4096
nginx -c "$RUN_DIR/origin-nginx.conf" -e "$RUN_DIR/origin-error.log" &
STARTED[origin]=$!
wait_port "$ORIGIN_PORT" "${STARTED[origin]}" origin-nginx
mkdir -p "$RUN_DIR/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$RUN_DIR/redis" >"$RUN_DIR/redis.log" 2>&1 &
STARTED[redis]=$!
wait_port "$REDIS_PORT" "${STARTED[redis]}" redis-server
REDIS_VERSION=$(redis-cli -p "$REDIS_PORT" INFO server | sed -n 's/^redis_version:\([0-9.]*\).*/\1/p')
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$RUN_DIR/digest.key"

URL="http://127.0.0.1:$ORIGIN_PORT/"
PROXY="http://127.0.0.1:$PROXY_PORT"

start_proxy() { # MODE
  local extra=()
  [[ $1 == redis ]] && extra=(--digest-key-file "$RUN_DIR/digest.key"
    --redis-url "redis://127.0.0.1:$REDIS_PORT/" --redis-prefix "bench-$RANDOM")
  "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --allow-private-targets --access-log none \
    --auth digest,basic --digest-algorithms SHA-256 --user bench:bench-pass \
    "${extra[@]}" "${PROXY_ARGS[@]}" >"$RUN_DIR/proxy.out" 2>"$RUN_DIR/proxy-$1.log" &
  STARTED[proxy]=$!
  wait_port "$PROXY_PORT" "${STARTED[proxy]}" "forward-proxy ($1; see $RUN_DIR/proxy-$1.log)"
}

stop_proxy() {
  stop_pid forward-proxy "${STARTED[proxy]}"
  unset 'STARTED[proxy]'
}

# digest_lines FILE: Proxy-Authorization values for nc = 1..DIGEST_LINES on a fresh nonce.
digest_lines() {
  local challenge
  challenge=$(curl -s -o /dev/null -D - -x "$PROXY" "$URL" | tr -d '\r' \
    | sed -n 's/^[Pp]roxy-[Aa]uthenticate: \(Digest .*\)$/\1/p' | head -n 1)
  [[ -n $challenge ]] || die "no Digest challenge from the proxy"
  CHALLENGE=$challenge URI=$URL N=$DIGEST_LINES python3 - >"$1" <<'PY'
import hashlib, os, re
params = dict(re.findall(r'(\w+)="?([^",]*)"?', os.environ["CHALLENGE"][len("Digest "):]))
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
uri, realm, nonce = os.environ["URI"], params["realm"], params["nonce"]
ha1, ha2, cnonce = h(f"bench:{realm}:bench-pass"), h(f"GET:{uri}"), "0a4f113b"
opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
out = []
for nc in range(1, int(os.environ["N"]) + 1):
    nc = f"{nc:08x}"
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    out.append(f'Digest username="bench", realm="{realm}", uri="{uri}", algorithm=SHA-256, '
               f'nonce="{nonce}", nc={nc}, cnonce="{cnonce}", qop=auth, response="{response}"{opaque}')
print("\n".join(out))
PY
}

# run_wrk LUA [ENV...]: prints "requests_per_s p50_us p99_us non2xx"
run_wrk() {
  local lua=$1 out
  shift
  out=$(env BENCH_TARGET="$URL" "$@" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -s "$lua" "$PROXY" 2>&1) || die "wrk failed: $out"
  awk '/^BENCH_RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%.0f %d %d %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"], v["p99_us"], v["non2xx"]
  }' <<<"$out"
}

RESULTS=$RUN_DIR/results
: >"$RESULTS"
AUTH=$(printf 'bench:bench-pass' | base64)
log "origin $URL, redis-server $REDIS_VERSION on $REDIS_PORT, $ROUNDS rounds, wrk -t1 -c$CONNS -d${DURATION}s, proxy ${PROXY_ARGS[*]}"
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in memory redis; do
    start_proxy "$mode"
    curl -s -o /dev/null -x "http://bench:bench-pass@127.0.0.1:$PROXY_PORT" "$URL"
    read -r rps p50 p99 bad < <(run_wrk "$WRK_LUA" BENCH_AUTH="$AUTH")
    echo "basic $mode $rps $p50 $p99 $bad" >>"$RESULTS"
    log "round $round basic  $mode: $rps req/s, p50 $p50 us, p99 $p99 us, non-2xx $bad"
    digest_lines "$RUN_DIR/digest.lines"
    read -r rps p50 p99 bad < <(run_wrk "$ROOT/bench/wrk-digest.lua" BENCH_CREDS="$RUN_DIR/digest.lines")
    echo "digest $mode $rps $p50 $p99 $bad" >>"$RESULTS"
    log "round $round digest $mode: $rps req/s, p50 $p50 us, p99 $p99 us, non-2xx $bad"
    stop_proxy
  done
done

echo
echo "median of $ROUNDS rounds (wrk -t1 -c$CONNS -d${DURATION}s; redis-server $REDIS_VERSION)"
# Each round's redis run follows its memory run at once: the ratio of the pair, then the median
# of the rounds' ratios (robust to load that changes between rounds).
awk -v rounds="$ROUNDS" '
  function median(list, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (list[j] < list[i]) { t = list[i]; list[i] = list[j]; list[j] = t }
    return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
  }
  { n[$1 " " $2]++; k = n[$1 " " $2]; rps[$1, $2, k] = $3; p50[$1, $2, k] = $4; p99[$1, $2, k] = $5 }
  END {
    printf "%-7s %-7s %10s %8s %8s\n", "row", "store", "req/s", "p50 us", "p99 us"
    split("basic digest", rows, " "); split("memory redis", modes, " ")
    for (r = 1; r <= 2; r++) {
      row = rows[r]
      for (m = 1; m <= 2; m++) {
        mode = modes[m]
        for (k = 1; k <= rounds; k++) { a[k] = rps[row, mode, k]; b[k] = p50[row, mode, k]; c[k] = p99[row, mode, k] }
        med_rps[mode] = median(a, rounds); med_p50[mode] = median(b, rounds); med_p99[mode] = median(c, rounds)
        printf "%-7s %-7s %10d %8d %8d\n", row, mode, med_rps[mode], med_p50[mode], med_p99[mode]
      }
      list = ""
      for (k = 1; k <= rounds; k++) { q[k] = rps[row, "redis", k] / rps[row, "memory", k]; list = list sprintf(" %.2f", q[k]) }
      printf "%-7s redis/memory throughput: median %.2fx (rounds:%s); p50 %+d us, p99 %+d us (medians)\n",
        row, median(q, rounds), list, med_p50["redis"] - med_p50["memory"], med_p99["redis"] - med_p99["memory"]
    }
  }' "$RESULTS"
