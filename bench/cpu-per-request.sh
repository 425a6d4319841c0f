#!/usr/bin/env bash
# bench/cpu-per-request.sh - CPU time the forward proxy spends per proxied request, for one or
# more builds side by side (A/B comparisons of code or allocator settings).
#
# Requests per second on this 2-vCPU box move 3-20 % between runs (wrk and nginx share the
# cores); CPU seconds per request of the proxy process move about ±1 µs in ~21. For each build
# given, in turn and RUNS times alternating (A B A B ...), the script starts the build with
# --user bench:bench-pass PROXY_ARGS on 127.0.0.1:PROXY_PORT, loads it with
# `wrk -t1 -cCONNS -dDURATION` through ../shared/bench/wrk-proxy.lua (absolute-form GET with
# Proxy-Authorization) against a private nginx origin (`return 200`, 100-byte body), reads the
# proxy's utime+stime from /proc/<pid>/stat before and after, and stops it by PID. It prints
# one line per run and, per build, the median microseconds per request and its ratio to the
# first build's median.
#
# Usage: bench/cpu-per-request.sh LABEL=BINARY [LABEL=BINARY ...]
#   e.g. cp target/release/forward-proxy /tmp/before   (then change, rebuild)
#        bench/cpu-per-request.sh before=/tmp/before after=target/release/forward-proxy
# Environment (defaults): RUNS=3 DURATION=8 CONNS=16 PROXY_PORT=3904 ORIGIN_PORT=18091
#   PROXY_ARGS="--worker-threads 1 --max-auth-failures 0 --allow-private-targets" (the flags of
#   BENCHMARKS.md's runs; the origin is on 127.0.0.1; builds before the proxy crate split do
#   not know --allow-private-targets: give them PROXY_ARGS without it, in a run of their own)
#   WRK_LUA=../shared/bench/wrk-proxy.lua RUST_LOG=warn
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
PROXY_PORT=${PROXY_PORT:-3904}
ORIGIN_PORT=${ORIGIN_PORT:-18091}
PROXY_ARGS=${PROXY_ARGS:---worker-threads 1 --max-auth-failures 0 --allow-private-targets}
WRK_LUA=${WRK_LUA:-$ROOT/../shared/bench/wrk-proxy.lua}
export RUST_LOG=${RUST_LOG:-warn}

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

(($# >= 1)) || die "usage: bench/cpu-per-request.sh LABEL=BINARY [LABEL=BINARY ...]"
for v in RUNS DURATION CONNS PROXY_PORT ORIGIN_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((RUNS >= 1 && RUNS <= 20 && DURATION >= 1 && DURATION <= 120 && CONNS >= 1 && CONNS <= 1000)) \
  || die "need 1<=RUNS<=20, 1<=DURATION<=120, 1<=CONNS<=1000"
for c in nginx wrk ss awk; do
  command -v "$c" >/dev/null || die "missing '$c' (../shared/bench/install-deps.sh installs it)"
done
LABELS=() BINS=()
for arg in "$@"; do
  [[ $arg == *=* ]] || die "'$arg' is not LABEL=BINARY"
  LABELS+=("${arg%%=*}") BINS+=("${arg#*=}")
  [[ -x ${arg#*=} ]] || die "'${arg#*=}' is not an executable"
done
for p in "$PROXY_PORT" "$ORIGIN_PORT"; do
  ss -Hltn "sport = :$p" | grep -q . && die "127.0.0.1:$p is already in use"
done

RUN_DIR=$(mktemp -d /tmp/cpu-per-request.XXXXXX)
ORIGIN_PID= PROXY_PID=
cleanup() {
  set +e
  [[ -n $PROXY_PID ]] && stop_pid proxy "$PROXY_PID"
  [[ -n $ORIGIN_PID ]] && stop_pid origin "$ORIGIN_PID"
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

origin_conf "$RUN_DIR" "$ORIGIN_PORT" 4096
nginx -c "$RUN_DIR/origin-nginx.conf" -e "$RUN_DIR/origin-error.log" &
ORIGIN_PID=$!
wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin-nginx

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime
B64=$(printf 'bench:bench-pass' | base64 -w0)

printf '| run | build | requests | req/s | proxy CPU s | µs CPU per request |\n|---:|---|---:|---:|---:|---:|\n'
declare -A SAMPLES=()
for ((run = 1; run <= RUNS; run++)); do
  for i in "${!BINS[@]}"; do
    # shellcheck disable=SC2086  # PROXY_ARGS is a list of flags
    "${BINS[$i]}" --listen "127.0.0.1:$PROXY_PORT" --user bench:bench-pass $PROXY_ARGS \
      >/dev/null 2>"$RUN_DIR/proxy-$i.log" &
    PROXY_PID=$!
    wait_port "$PROXY_PORT" "$PROXY_PID" "${LABELS[$i]}"
    before=$(cpu_ticks "$PROXY_PID")
    BENCH_TARGET="http://127.0.0.1:$ORIGIN_PORT/" BENCH_AUTH=$B64 \
      timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WRK_LUA" \
      "http://127.0.0.1:$PROXY_PORT/" >"$RUN_DIR/wrk.txt" 2>&1 || die "wrk failed: $(cat "$RUN_DIR/wrk.txt")"
    after=$(cpu_ticks "$PROXY_PID")
    stop_pid "${LABELS[$i]}" "$PROXY_PID"
    PROXY_PID=
    line=$(grep '^BENCH_RESULT ' "$RUN_DIR/wrk.txt") || die "no BENCH_RESULT from wrk"
    declare -A R=()
    for kv in $line; do [[ $kv == *=* ]] && R[${kv%%=*}]=${kv#*=}; done
    ((R[non2xx] == 0 && R[requests] > 0)) || die "${LABELS[$i]}: ${R[non2xx]} non-2xx of ${R[requests]}"
    us=$(awk -v t=$((after - before)) -v k="$TICK" -v n="${R[requests]}" 'BEGIN{printf "%.2f", t / k / n * 1e6}')
    printf '| %d | %s | %d | %.0f | %.2f | %s |\n' "$run" "${LABELS[$i]}" "${R[requests]}" \
      "$(awk -v r="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN{print r / (d / 1e6)}')" \
      "$(awk -v t=$((after - before)) -v k="$TICK" 'BEGIN{print t / k}')" "$us"
    SAMPLES[$i]+="$us "
    unset R
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
base=$(median <<<"${SAMPLES[0]}")
printf '\n| build | µs CPU per request (median of %d) | ÷ %s |\n|---|---:|---:|\n' "$RUNS" "${LABELS[0]}"
for i in "${!BINS[@]}"; do
  m=$(median <<<"${SAMPLES[$i]}")
  printf '| %s | %.2f | %.3f |\n' "${LABELS[$i]}" "$m" "$(awk -v m="$m" -v b="$base" 'BEGIN{print m / b}')"
done
log "wrk -t1 -c$CONNS -d${DURATION}s; proxy flags: --user bench:*** $PROXY_ARGS"
