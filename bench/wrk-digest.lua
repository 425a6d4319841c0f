-- wrk script for bench/redis-load.sh: Digest requests through a forward proxy, each with the
-- next of a file of precomputed Proxy-Authorization values (nc = 1, 2, 3, ... on one nonce),
-- so that every request is a fresh count the replay store checks. Past the last line the last
-- is sent again (a replay: 407, counted as non-2xx).
-- Environment:
--   BENCH_TARGET  absolute URL to request through the proxy (absolute-form request line)
--   BENCH_CREDS   the file of Proxy-Authorization values, one a line
-- done() prints one BENCH_RESULT line, as ../shared/bench/wrk-proxy.lua does.
local target = os.getenv("BENCH_TARGET")
local host = target:match("^%a+://([^/]+)")
local lines = {}
for line in io.lines(os.getenv("BENCH_CREDS")) do
  lines[#lines + 1] = line
end
local next_line = 0

function request()
  next_line = math.min(next_line + 1, #lines)
  return wrk.format("GET", target, { Host = host, ["Proxy-Authorization"] = lines[next_line] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d non2xx=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
