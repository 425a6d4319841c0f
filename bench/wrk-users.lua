-- wrk script for bench/squid-helper.sh: like ../shared/bench/wrk-proxy.lua, but each request
-- carries the next user's Basic credentials from a file, so that no two requests in flight
-- ask the same question (a cache or the sharing of identical checks would answer them).
-- Environment:
--   BENCH_TARGET     absolute URL to request through the proxy (absolute-form request line)
--   BENCH_AUTH_FILE  one base64("user:password") per line, used in turn
-- done() prints one machine-readable BENCH_RESULT line.
local target = os.getenv("BENCH_TARGET")
local tokens = {}
for line in io.lines(os.getenv("BENCH_AUTH_FILE")) do
  tokens[#tokens + 1] = "Basic " .. line
end
assert(#tokens > 0, "BENCH_AUTH_FILE is empty")
local next_token = 1

wrk.path = target
wrk.headers["Host"] = target:match("^%a+://([^/]+)")

function request()
  wrk.headers["Proxy-Authorization"] = tokens[next_token]
  next_token = next_token % #tokens + 1
  return wrk.format()
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
