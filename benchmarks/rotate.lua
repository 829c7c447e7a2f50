-- wrk script: pre-builds one request per line of a paths file and rotates over them, so consecutive
-- requests address different rows; done() prints the figures as one machine-readable line.
-- Arguments (after "--"): paths_file method body_file authorization host
local reqs = {}
local n = 0
local i = 0

function init(args)
  local paths_file, method, body_file, auth, host = args[1], args[2], args[3], args[4], args[5]
  local body = nil
  if body_file ~= nil and body_file ~= "" then
    local f = assert(io.open(body_file, "rb"))
    body = f:read("*a")
    f:close()
  end
  local headers = { ["Host"] = host }
  if auth ~= nil and auth ~= "" then headers["Authorization"] = auth end
  if body ~= nil then headers["Content-Type"] = "application/json" end
  for line in io.lines(paths_file) do
    if line ~= "" then
      n = n + 1
      reqs[n] = wrk.format(method, line, headers, body)
    end
  end
  -- start each thread at a different place in the list
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
