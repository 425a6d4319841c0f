#!/usr/bin/env bash
# bench/squid-helper.sh - the forward proxy with Squid's basic_ncsa_auth behind --squid-helper,
# in one run (issue 14's figures):
#
# 1. cached: `--squid-helper` (4 children of basic_ncsa_auth over an apr1 file made by
#    `htpasswd -m`, the user accepted once and then answered from the credentials cache)
#    against `--user` (StaticUsers), RUNS times alternating (static, helper, static, ...);
#    each run: `wrk -t1 -cCONNS -dDURATION` with one user's Proxy-Authorization
#    (../shared/bench/wrk-proxy.lua), the proxy's utime+stime from /proc/<pid>/stat. Prints
#    req/s and µs CPU per request per run, their medians and the helper's ratios to static
#    (target: req/s ≥ 0.9×, CPU per request ≤ 1.11×).
# 2. uncached: the same helper with `--credentials-ttl 0` and USERS distinct users taken in
#    turn (bench/wrk-users.lua), so that every request is a check by a child: checks per
#    second with 4 children, RUNS runs.
#
# Origin: a private nginx on 127.0.0.1:ORIGIN_PORT (`return 200`, 100-byte body). Every run
# must answer 2xx only.
#
# Usage: cargo build --release -p tower-proxy-auth-proxy && bench/squid-helper.sh
# Environment (defaults): PROXY=target/release/forward-proxy RUNS=3 DURATION=8 CONNS=16
#   USERS=2000 CHILDREN=4 PROXY_PORT=3905 ORIGIN_PORT=18092
#   PROXY_ARGS="--worker-threads 1 --max-auth-failures 0 --allow-private-targets --access-log none"
#   WRK_LUA=../shared/bench/wrk-proxy.lua RUST_LOG=warn
# Needs: nginx, wrk (../shared/bench/install-deps.sh), htpasswd (apache2-utils), squid's
# basic_ncsa_auth (found in `dpkg-query -L squid`, else /usr/lib/squid).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROXY=${PROXY:-$ROOT/target/release/forward-proxy}
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
USERS=${USERS:-2000}
CHILDREN=${CHILDREN:-4}
PROXY_PORT=${PROXY_PORT:-3905}
ORIGIN_PORT=${ORIGIN_PORT:-18092}
PROXY_ARGS=${PROXY_ARGS:---worker-threads 1 --max-auth-failures 0 --allow-private-targets --access-log none}
WRK_LUA=${WRK_LUA:-$ROOT/../shared/bench/wrk-proxy.lua}
export RUST_LOG=${RUST_LOG:-warn}

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for v in RUNS DURATION CONNS USERS CHILDREN PROXY_PORT ORIGIN_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((RUNS >= 1 && RUNS <= 20 && DURATION >= 1 && DURATION <= 120 && CONNS >= 1 && CONNS <= 1000)) \
  || die "need 1<=RUNS<=20, 1<=DURATION<=120, 1<=CONNS<=1000"
((USERS >= 1 && USERS <= 100000 && CHILDREN >= 1 && CHILDREN <= 64)) \
  || die "need 1<=USERS<=100000, 1<=CHILDREN<=64"
for c in nginx wrk ss awk htpasswd base64; do
  command -v "$c" >/dev/null || die "missing '$c' (../shared/bench/install-deps.sh; htpasswd: apache2-utils)"
done
[[ -x $PROXY ]] || die "$PROXY is not an executable (cargo build --release -p tower-proxy-auth-proxy)"
NCSA=$(dpkg-query -L squid 2>/dev/null | grep -m1 '/basic_ncsa_auth$') || NCSA=/usr/lib/squid/basic_ncsa_auth
[[ -x $NCSA ]] || die "basic_ncsa_auth not found: apt-get install -y squid"
for p in "$PROXY_PORT" "$ORIGIN_PORT"; do
  ss -Hltn "sport = :$p" | grep -q . && die "127.0.0.1:$p is already in use"
done

RUN_DIR=$(mktemp -d /tmp/squid-helper-bench.XXXXXX)
ORIGIN_PID= PROXY_PID=
cleanup() {
  set +e
  [[ -n $PROXY_PID ]] && stop_pid proxy "$PROXY_PID"
  [[ -n $ORIGIN_PID ]] && stop_pid origin "$ORIGIN_PID"
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "making $USERS apr1 users with htpasswd -m"
PASSWD=$RUN_DIR/passwd
htpasswd -cbm "$PASSWD" bench bench-pass 2>/dev/null
for ((i = 1; i <= USERS; i++)); do
  htpasswd -bm "$PASSWD" "user$i" "pw$i" 2>/dev/null
  printf 'user%d:pw%d' "$i" "$i" | base64 -w0 >>"$RUN_DIR/tokens"
  echo >>"$RUN_DIR/tokens"
done

origin_conf "$RUN_DIR" "$ORIGIN_PORT" 4096
nginx -c "$RUN_DIR/origin-nginx.conf" -e "$RUN_DIR/origin-error.log" &
ORIGIN_PID=$!
wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin-nginx

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime
HELPER="$NCSA $PASSWD"
export BENCH_TARGET="http://127.0.0.1:$ORIGIN_PORT/"

# run LABEL LUA AUTH_ENV FLAGS...: one load run; sets REQS, RPS, US (µs CPU per request).
run() {
  local label=$1 lua=$2 auth=$3 before after line
  shift 3
  # shellcheck disable=SC2086  # PROXY_ARGS is a list of flags
  "$PROXY" --listen "127.0.0.1:$PROXY_PORT" "$@" $PROXY_ARGS >/dev/null 2>"$RUN_DIR/proxy.log" &
  PROXY_PID=$!
  wait_port "$PROXY_PORT" "$PROXY_PID" "$label"
  before=$(cpu_ticks "$PROXY_PID")
  env "$auth" timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$lua" \
    "http://127.0.0.1:$PROXY_PORT/" >"$RUN_DIR/wrk.txt" 2>&1 || die "wrk failed: $(cat "$RUN_DIR/wrk.txt")"
  after=$(cpu_ticks "$PROXY_PID")
  stop_pid "$label" "$PROXY_PID"
  PROXY_PID=
  line=$(grep '^BENCH_RESULT ' "$RUN_DIR/wrk.txt") || die "no BENCH_RESULT from wrk"
  declare -A R=()
  for kv in $line; do [[ $kv == *=* ]] && R[${kv%%=*}]=${kv#*=}; done
  ((R[non2xx] == 0 && R[requests] > 0)) || die "$label: ${R[non2xx]} non-2xx of ${R[requests]}: $(tail -5 "$RUN_DIR/proxy.log")"
  REQS=${R[requests]}
  RPS=$(awk -v r="$REQS" -v d="${R[duration_us]}" 'BEGIN{printf "%.0f", r / (d / 1e6)}')
  US=$(awk -v t=$((after - before)) -v k="$TICK" -v n="$REQS" 'BEGIN{printf "%.2f", t / k / n * 1e6}')
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

ONE=BENCH_AUTH=$(printf 'bench:bench-pass' | base64 -w0)
declare -A RPS_OF=() US_OF=()
printf '| run | build | requests | req/s | µs CPU per request |\n|---:|---|---:|---:|---:|\n'
for ((r = 1; r <= RUNS; r++)); do
  run static "$WRK_LUA" "$ONE" --user bench:bench-pass
  printf '| %d | --user (StaticUsers) | %d | %s | %s |\n' "$r" "$REQS" "$RPS" "$US"
  RPS_OF[static]+="$RPS " US_OF[static]+="$US "
  run helper "$WRK_LUA" "$ONE" --squid-helper "$HELPER" --squid-helper-children "$CHILDREN"
  printf '| %d | --squid-helper, cached | %d | %s | %s |\n' "$r" "$REQS" "$RPS" "$US"
  RPS_OF[helper]+="$RPS " US_OF[helper]+="$US "
done
s_rps=$(median <<<"${RPS_OF[static]}") h_rps=$(median <<<"${RPS_OF[helper]}")
s_us=$(median <<<"${US_OF[static]}") h_us=$(median <<<"${US_OF[helper]}")
printf '\n| medians of %d | req/s | µs CPU per request |\n|---|---:|---:|\n' "$RUNS"
printf '| --user (StaticUsers) | %s | %s |\n' "$s_rps" "$s_us"
printf '| --squid-helper, cached | %s | %s |\n' "$h_rps" "$h_us"
printf '| helper ÷ static | %.3f× | %.3f× |\n' \
  "$(awk -v a="$h_rps" -v b="$s_rps" 'BEGIN{print a / b}')" "$(awk -v a="$h_us" -v b="$s_us" 'BEGIN{print a / b}')"

printf '\n| run | uncached (--credentials-ttl 0, %d users in turn, %d children) | checks | checks/s | µs proxy CPU per check |\n|---:|---|---:|---:|---:|\n' "$USERS" "$CHILDREN"
for ((r = 1; r <= RUNS; r++)); do
  run uncached "$ROOT/bench/wrk-users.lua" "BENCH_AUTH_FILE=$RUN_DIR/tokens" \
    --squid-helper "$HELPER" --squid-helper-children "$CHILDREN" --credentials-ttl 0
  printf '| %d | basic_ncsa_auth, apr1 | %d | %s | %s |\n' "$r" "$REQS" "$RPS" "$US"
  RPS_OF[uncached]+="$RPS "
done
printf '\nuncached checks per second, median of %d: %s\n' "$RUNS" "$(median <<<"${RPS_OF[uncached]}")"
log "wrk -t1 -c$CONNS -d${DURATION}s; proxy flags: $PROXY_ARGS; helper: $HELPER"
