-- mix.lua - wrk script of the benchmark: POSTs the bodies listed in a
-- manifest ("provider path" per line, given as the first script argument),
-- cycling through them so that the three providers are mixed, and prints one
-- "WBRESULT {json}" line at the end with the rate, the latency percentiles and
-- the answers.
--
-- Answers: by default wrk's own counters are used (summary.errors.status
-- counts answers with a status >= 400; the bridge never answers 1xx or 3xx,
-- so every other complete answer is a 2xx). With WB_WRK_COUNT=1 in the
-- environment a response() hook counts every status exactly; the hook makes
-- wrk parse every header into Lua and costs load-generator CPU, so the
-- benchmark uses it only to show both ways agree.
--
-- Requests are formatted once in init() and request() only returns the next
-- one, so that Lua costs as little as possible per request.

local requests = {}
local n = 0
local i = 0
local counting = os.getenv("WB_WRK_COUNT") == "1"
local threads = {}

statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  local manifest = args[1]
  local f = assert(io.open(manifest, "r"))
  for line in f:lines() do
    local provider, path = line:match("^(%S+)%s+(%S+)$")
    if provider then
      local b = assert(io.open(path, "rb"))
      local body = b:read("*a")
      b:close()
      n = n + 1
      requests[n] = wrk.format("POST", "/webhooks/" .. provider,
        { ["Content-Type"] = "application/json" }, body)
    end
  end
  f:close()
  assert(n > 0, "no bodies in " .. manifest)
  -- threads start at different places of the cycle
  i = ((thread_index or 1) * 7) % n
end

function request()
  i = i + 1
  if i > n then
    i = 1
  end
  return requests[i]
end

if counting then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

local function json_statuses()
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do
        total[k] = (total[k] or 0) + v
      end
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%d":%d', k, v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WBRESULT {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"counted":%s,"statuses":%s}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    counting and "true" or "false", counting and json_statuses() or "{}"))
end
