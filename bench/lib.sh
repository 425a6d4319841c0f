# bench/lib.sh - shell functions shared by the scripts in bench/ (sourced, not run).
# Everything here works on 127.0.0.1 only and stops what it started by PID.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# stop_pid NAME PID: SIGTERM, up to 10 s for it to exit, then SIGKILL.
stop_pid() {
  local i
  kill -0 "$2" 2>/dev/null || return 0
  kill -TERM "$2" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$2" 2>/dev/null; then
    log "$1 (pid $2) still alive after SIGTERM; sending SIGKILL"
    kill -KILL "$2" 2>/dev/null || true
  fi
  wait "$2" 2>/dev/null || true
}

# wait_port PORT PID NAME: until something listens on 127.0.0.1:PORT (10 s at most), dying if
# the process PID exits first.
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
    sleep 0.1
  done
  die "$3 did not listen on 127.0.0.1:$1 within 10 s"
}

# origin_conf DIR PORT NOFILE: writes DIR/origin-nginx.conf, a private nginx origin (own pid
# file and temp paths under DIR, never the system nginx) answering every request with
# `return 200` and a fixed 100-byte body, like ../shared/bench's origin.
origin_conf() {
  mkdir -p "$1/origin-tmp"
  cat >"$1/origin-nginx.conf" <<CONF
daemon off;
worker_processes 1;
worker_rlimit_nofile $3;
pid $1/origin-nginx.pid;
error_log $1/origin-error.log error;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    default_type text/plain;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path $1/origin-tmp/body;
    proxy_temp_path       $1/origin-tmp/proxy;
    fastcgi_temp_path     $1/origin-tmp/fastcgi;
    uwsgi_temp_path       $1/origin-tmp/uwsgi;
    scgi_temp_path        $1/origin-tmp/scgi;
    server {
        listen 127.0.0.1:$2;
        location / {
            return 200 "proxybench origin: fixed 100-byte body for forward-proxy benchmarks; served by nginx return 200 ok.\n";
        }
    }
}
CONF
}
