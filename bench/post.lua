-- wrk script of the load run (bench/run.sh): POST the devices query with a
-- Bearer key, and print one machine-readable summary line at the end.
--
-- Environment:
--   KEY    the kp_ key (required)
--   AFTER  optional cursor: ask for the page after that row
--   BODY   optional: POST this body instead (PostGraphile's own query; the
--          Bearer header is sent all the same, and ignored there)
--
-- The summary line, read by run.sh:
--   RESULT requests=<n> seconds=<s> rps=<r> p50_ms=<ms> p99_ms=<ms> max_ms=<ms> non2xx=<n> errors=<n>

local key = os.getenv("KEY")
if key == nil or key == "" then
  error("post.lua: set KEY to a kp_ key")
end
local after = os.getenv("AFTER")

local args = "first: 20"
if after ~= nil and after ~= "" then
  args = args .. ', after: \\"' .. after .. '\\"'
end

wrk.method = "POST"
wrk.body = '{"query":"query { team { devices(' .. args .. ') { nodes { id name } } } }"}'
local body = os.getenv("BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
