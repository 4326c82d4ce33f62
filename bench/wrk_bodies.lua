-- wrk script: POST one JSON body per request from a file (one body per line), starting at an
-- offset, so every request of a run carries a different text. Prints a JSON summary line at the end.
-- usage: wrk -s bench/wrk_bodies.lua URL -- BODIES_FILE OFFSET PATH
local bodies = {}
local counter = 0

function init(args)
  local file, offset = args[1], tonumber(args[2] or "0")
  for line in io.lines(file) do bodies[#bodies + 1] = line end
  counter = offset
  wrk.method = "POST"
  wrk.path = args[3] or "/predict"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
