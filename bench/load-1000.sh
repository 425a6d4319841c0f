#!/usr/bin/env bash
# bench/load-1000.sh - 1,000 concurrent keep-alive clients through the forward proxy,
# with the proxy's resident memory and open descriptors before, during and after.
#
# Everything runs on 127.0.0.1. The script:
#   1. raises the open-file limit (ulimit -n) for itself and every child;
#   2. starts a private nginx origin (own config and pid file under a fresh /tmp directory,
#      `return 200` with a 100-byte body, port ORIGIN_PORT) and the release build of
#      the proxy (target/release/forward-proxy) with --user bench:bench-pass on PROXY_PORT;
#   3. RUNS times: wrk -t THREADS -c CONNS -d DURATION with ../shared/bench/wrk-proxy.lua
#      (absolute-form GET, Proxy-Authorization for bench/bench-pass), sampling the proxy's VmRSS,
#      descriptor and thread counts every SAMPLE seconds; then, with no clients, waits until
#      the proxy is back to its idle descriptor count (the pooled origin connections have
#      timed out; at most RELEASE_MAX seconds), SETTLE seconds more for the allocator to hand
#      freed pages back, and samples again;
#   4. prints one result line per run and a verdict, and stops both processes by PID (also on
#      Ctrl-C, SIGTERM or an error).
#
# Usage: bench/load-1000.sh            (build first: cargo build --release -p tower-proxy-auth-proxy)
# Environment (defaults): CONNS=1000 THREADS=2 DURATION=30 SETTLE=15 RUNS=2 SAMPLE=0.5
#   RELEASE_MAX=150 (seconds to wait for the descriptors to return to idle)
#   WARM=1 (0: the idle level is sampled right after one request; 1: also after a warm-up load,
#     wrk -t1 -c16 for 5 s like ../shared/bench, once its connections are released; both are
#     reported, the verdict uses the warm level)
#   WRK_TIMEOUT=5s PROXY_PORT=3903 ORIGIN_PORT=18090 NOFILE=65536 (capped at the hard limit) RUST_LOG=warn
#   PROXY_BIN=target/release/forward-proxy PROXY_ARGS="" (extra proxy flags)
#   WRK_LUA=../shared/bench/wrk-proxy.lua  KEEP_DIR=0 (1: keep the /tmp run directory)
#   DRAIN=0 (seconds: after the last run, wait this much longer and sample once more)
#   TRIM_PROBE=0 (1: at the end, run GDB_CALL in the proxy through gdb and sample again; the
#     default GDB_CALL='call (int) malloc_trim(0)' hands glibc's free pages back, so what comes
#     back then was free but retained by the allocator, not live memory. With a jemalloc
#     PROXY_PRELOAD, GDB_CALL='call (void) malloc_stats_print(0, 0, "gmdablxeh")' writes its
#     allocated/active/resident totals to the proxy's log, kept with KEEP_DIR=1)
#   PROXY_PRELOAD= (a library to LD_PRELOAD into the proxy only, e.g. an alternative malloc)
#   SMAPS=0 (1: copy /proc/<proxy>/smaps to the run directory at the idle level and after each
#     run, and print the anonymous / file-backed split of the resident memory; implies KEEP_DIR=1)
# RUST_LOG=warn matches the peers in ../shared/bench (squid: access_log none); set
# RUST_LOG=info to include the per-request log line (written to a file in the run directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${CONNS:-1000}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30}
SETTLE=${SETTLE:-15}
RELEASE_MAX=${RELEASE_MAX:-150}
WARM=${WARM:-1}
RUNS=${RUNS:-2}
SAMPLE=${SAMPLE:-0.5}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
PROXY_PORT=${PROXY_PORT:-3903}
ORIGIN_PORT=${ORIGIN_PORT:-18090}
NOFILE=${NOFILE:-65536}
PROXY_BIN=${PROXY_BIN:-$ROOT/target/release/forward-proxy}
PROXY_ARGS=${PROXY_ARGS:-}
WRK_LUA=${WRK_LUA:-$ROOT/../shared/bench/wrk-proxy.lua}
KEEP_DIR=${KEEP_DIR:-0}
DRAIN=${DRAIN:-0}
TRIM_PROBE=${TRIM_PROBE:-0}
GDB_CALL=${GDB_CALL:-call (int) malloc_trim(0)}
PROXY_PRELOAD=${PROXY_PRELOAD:-}
SMAPS=${SMAPS:-0}
((SMAPS)) && KEEP_DIR=1
export RUST_LOG=${RUST_LOG:-warn}
BENCH_USER=bench
BENCH_PASS=bench-pass

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for v in CONNS THREADS DURATION SETTLE RUNS PROXY_PORT ORIGIN_PORT NOFILE DRAIN RELEASE_MAX WARM; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((THREADS >= 1 && CONNS >= THREADS && DURATION >= 1 && DURATION <= 600 && RUNS >= 1 && RUNS <= 10 \
  && SETTLE <= 600 && DRAIN <= 600 && RELEASE_MAX <= 600)) \
  || die "need CONNS>=THREADS>=1, 1<=DURATION<=600, 1<=RUNS<=10, SETTLE, DRAIN, RELEASE_MAX <= 600"
for c in nginx wrk curl awk ss timeout; do
  command -v "$c" >/dev/null || die "missing '$c' (../shared/bench/install-deps.sh installs it)"
done
[[ -x $PROXY_BIN ]] || die "no $PROXY_BIN; run: cargo build --release -p tower-proxy-auth-proxy"
[[ -r $WRK_LUA ]] || die "no wrk script at $WRK_LUA (set WRK_LUA)"
for p in "$PROXY_PORT" "$ORIGIN_PORT"; do
  ss -Hltn "sport = :$p" | grep -q . && die "127.0.0.1:$p is already in use"
done

# Every client, the proxy and the origin inherit this limit: 1,000 client connections plus up
# to 1,000 pooled origin connections do not fit in the usual 1,024.
HARD=$(ulimit -Hn)
if [[ $HARD != unlimited ]] && ((NOFILE > HARD)); then NOFILE=$HARD; fi
((NOFILE >= 2 * CONNS + 256)) || die "the open-file hard limit ($HARD) is too low for CONNS=$CONNS"
ulimit -n "$NOFILE" || die "cannot raise the open-file limit to $NOFILE (ulimit -Hn: $(ulimit -Hn))"

RUN_DIR=$(mktemp -d /tmp/load-1000.XXXXXX)
chmod 755 "$RUN_DIR"

# ---------------------------------------------------------------- processes --
# name -> pid of what this script started; stopped by PID only (stop_pid in lib.sh).
declare -A STARTED=()
cleanup() {
  set +e
  local name
  for name in proxy origin; do
    [[ -n ${STARTED[$name]:-} ]] && stop_pid "$name" "${STARTED[$name]}"
  done
  STARTED=()
  if ((KEEP_DIR)); then log "run directory kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_origin() {
  origin_conf "$RUN_DIR" "$ORIGIN_PORT" "$NOFILE"
  nginx -c "$RUN_DIR/origin-nginx.conf" -e "$RUN_DIR/origin-error.log" &
  STARTED[origin]=$!
  wait_port "$ORIGIN_PORT" "${STARTED[origin]}" origin-nginx
}

start_proxy() {
  # shellcheck disable=SC2086  # PROXY_ARGS is a list of flags
  LD_PRELOAD=$PROXY_PRELOAD "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --allow-private-targets --user "$BENCH_USER:$BENCH_PASS" $PROXY_ARGS \
    >"$RUN_DIR/proxy.out" 2>"$RUN_DIR/proxy.log" &
  STARTED[proxy]=$!
  wait_port "$PROXY_PORT" "${STARTED[proxy]}" forward_proxy
}

# ----------------------------------------------------------------- sampling --
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }   # pid field
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
snapshot() {   # pid -> "rss_kb fds threads"
  echo "$(status_kb "$1" VmRSS) $(fds "$1") $(status_kb "$1" Threads)"
}
save_smaps() {   # pid name: copy smaps, log the anonymous / file-backed resident split
  ((SMAPS)) || return 0
  cp "/proc/$1/smaps" "$RUN_DIR/smaps-$2.txt" 2>/dev/null || return 0
  awk -v n="$2" '$1 == "Anonymous:" {a += $2} /^Rss:/ {r += $2}
    END {printf "smaps %s: Rss %.1f MiB = anonymous %.1f + file-backed %.1f\n", n, r/1024, a/1024, (r-a)/1024}' \
    "$RUN_DIR/smaps-$2.txt" >&2
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
ms() { awk -v v="$1" 'BEGIN{printf "%.2f", v / 1000}'; }

released() {   # pid idle_fds -> seconds until the descriptor count is back to idle (or "-")
  local t0=$SECONDS
  while (($(fds "$1") > $2)); do
    ((SECONDS - t0 >= RELEASE_MAX)) && { echo -; return; }
    sleep 1
  done
  echo $((SECONDS - t0))
}

probe() {   # one request through the proxy with the right credentials -> status code
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --noproxy '' \
    -x "http://127.0.0.1:$PROXY_PORT" --proxy-user "$BENCH_USER:$BENCH_PASS" \
    "http://127.0.0.1:$ORIGIN_PORT/" || true
}

# --------------------------------------------------------------------- main --
log "run directory $RUN_DIR; ulimit -n $(ulimit -n); RUST_LOG=$RUST_LOG${PROXY_PRELOAD:+; proxy LD_PRELOAD=$PROXY_PRELOAD}"
start_origin
start_proxy
PID=${STARTED[proxy]}
code=$(probe)
[[ $code == 200 ]] || die "probe through the proxy answered '$code', not 200 (see $RUN_DIR/proxy.log)"
sleep 1
read -r IDLE_RSS IDLE_FDS IDLE_THREADS <<<"$(snapshot "$PID")"
COLD_RSS=$IDLE_RSS
log "proxy pid $PID idle: VmRSS $(mib "$IDLE_RSS") MiB, $IDLE_FDS fds, $IDLE_THREADS threads"

B64=$(printf '%s:%s' "$BENCH_USER" "$BENCH_PASS" | base64 -w0)
if ((WARM)); then
  BENCH_TARGET="http://127.0.0.1:$ORIGIN_PORT/" BENCH_AUTH=$B64 \
    timeout 40 wrk -t1 -c16 -d5s -s "$WRK_LUA" "http://127.0.0.1:$PROXY_PORT/" >"$RUN_DIR/wrk-warm.txt" 2>&1 \
    || die "warm-up wrk failed (see $RUN_DIR/wrk-warm.txt)"
  took=$(released "$PID" "$IDLE_FDS")
  sleep "$SETTLE"
  read -r IDLE_RSS IDLE_FDS IDLE_THREADS <<<"$(snapshot "$PID")"
  save_smaps "$PID" idle
  log "after a warm-up (wrk -t1 -c16 -d5s; connections released after ${took}s, + ${SETTLE}s): VmRSS $(mib "$IDLE_RSS") MiB, $IDLE_FDS fds, $IDLE_THREADS threads; the verdict compares with this level"
fi
VERDICT=0
printf '| run | requests | non-2xx | socket errors | req/s | p50 ms | p99 ms | max ms | RSS cold / idle MiB | RSS peak MiB | released after s | RSS after MiB | vs cold / idle | fds idle/peak/after | threads idle/peak/after |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n'
for ((run = 1; run <= RUNS; run++)); do
  read -r before_rss before_fds before_threads <<<"$(snapshot "$PID")"
  # Reset VmHWM (the kernel's peak RSS) so it measures this run only (Linux >= 4.0).
  echo 5 >"/proc/$PID/clear_refs" 2>/dev/null || true
  out=$RUN_DIR/wrk-$run.txt
  BENCH_TARGET="http://127.0.0.1:$ORIGIN_PORT/" BENCH_AUTH=$B64 \
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" \
    --latency -s "$WRK_LUA" "http://127.0.0.1:$PROXY_PORT/" >"$out" 2>&1 &
  wrk_pid=$!
  peak_rss=$before_rss; peak_fds=$before_fds; peak_threads=$before_threads
  # Bounded: wrk stops after DURATION (timeout kills it 30 s later at the latest).
  while kill -0 "$wrk_pid" 2>/dev/null; do
    read -r r f t <<<"$(snapshot "$PID")"
    ((r > peak_rss)) && peak_rss=$r
    ((f > peak_fds)) && peak_fds=$f
    ((t > peak_threads)) && peak_threads=$t
    sleep "$SAMPLE"
  done
  wait "$wrk_pid" || log "wrk exited non-zero (see $out)"
  hwm=$(status_kb "$PID" VmHWM)
  ((hwm > peak_rss)) && peak_rss=$hwm
  took=$(released "$PID" "$IDLE_FDS")
  sleep "$SETTLE"
  kill -0 "$PID" 2>/dev/null || die "the proxy died (see $RUN_DIR/proxy.log)"
  read -r after_rss after_fds after_threads <<<"$(snapshot "$PID")"
  save_smaps "$PID" "after-$run"

  line=$(grep '^BENCH_RESULT ' "$out" | tail -1 || true)
  [[ -n $line ]] || { cat "$out" >&2; die "no BENCH_RESULT from wrk (run $run)"; }
  declare -A R=()
  for kv in $line; do [[ $kv == *=* ]] && R[${kv%%=*}]=${kv#*=}; done
  errs=$((R[err_connect] + R[err_read] + R[err_write] + R[err_timeout]))
  rps=$(awk -v r="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN{printf "%.0f", r / (d / 1e6)}')
  vs=$(awk -v a="$after_rss" -v c="$COLD_RSS" -v i="$IDLE_RSS" \
    'BEGIN{printf "%+.0f%% / %+.0f%%", (a - c) / c * 100, (a - i) / i * 100}')
  printf '| %d | %d | %d | %d (c%d r%d w%d t%d) | %s | %s | %s | %s | %s / %s | %s | %s + %s | %s | %s | %d/%d/%d | %d/%d/%d |\n' \
    "$run" "${R[requests]}" "${R[non2xx]}" "$errs" "${R[err_connect]}" "${R[err_read]}" \
    "${R[err_write]}" "${R[err_timeout]}" "$rps" "$(ms "${R[p50_us]}")" "$(ms "${R[p99_us]}")" \
    "$(ms "${R[max_us]}")" "$(mib "$COLD_RSS")" "$(mib "$IDLE_RSS")" "$(mib "$peak_rss")" "$took" "$SETTLE" \
    "$(mib "$after_rss")" "$vs" \
    "$IDLE_FDS" "$peak_fds" "$after_fds" "$IDLE_THREADS" "$peak_threads" "$after_threads"
  if ((errs > 0 || R[non2xx] > 0 || R[requests] == 0)); then
    log "run $run: FAIL: $errs socket errors, ${R[non2xx]} non-2xx"; VERDICT=1
  fi
  if awk -v a="$after_rss" -v i="$IDLE_RSS" 'BEGIN{exit !(a > i * 1.10)}'; then
    log "run $run: RSS after the clients left is $(mib "$after_rss") MiB, more than idle + 10% ($(mib "$IDLE_RSS") MiB)"
    VERDICT=1
  fi
  unset R
done
if ((DRAIN > 0)); then
  log "waiting $DRAIN s more"
  sleep "$DRAIN"
  read -r d_rss d_fds d_threads <<<"$(snapshot "$PID")"
  log "after the last run, its release, + $SETTLE s + $DRAIN s: VmRSS $(mib "$d_rss") MiB ($(awk -v a="$d_rss" -v i="$IDLE_RSS" 'BEGIN{printf "%+.0f%%", (a - i) / i * 100}') vs idle), $d_fds fds, $d_threads threads"
fi
if ((TRIM_PROBE)); then
  command -v gdb >/dev/null || die "TRIM_PROBE=1 needs gdb"
  read -r t_rss _ _ <<<"$(snapshot "$PID")"
  timeout 60 gdb -p "$PID" -batch -nx -ex "$GDB_CALL" >"$RUN_DIR/gdb.log" 2>&1 \
    || log "gdb failed (see $RUN_DIR/gdb.log)"
  read -r u_rss u_fds _ <<<"$(snapshot "$PID")"
  log "gdb '$GDB_CALL': VmRSS $(mib "$t_rss") -> $(mib "$u_rss") MiB (idle $(mib "$IDLE_RSS") MiB), $u_fds fds"
fi
log "wrk: -t$THREADS -c$CONNS -d${DURATION}s --timeout $WRK_TIMEOUT; proxy: $PROXY_BIN --user $BENCH_USER:*** $PROXY_ARGS"
grep -i -E 'panicked|error' "$RUN_DIR/proxy.log" >&2 && { log "the proxy logged errors above"; VERDICT=1; }
((VERDICT == 0)) && log "verdict: ok" || log "verdict: FAIL (see above)"
exit "$VERDICT"
