-- wrk script of the service benchmark: POST one fixed body on every request and print a JSON
-- summary at the end. Arguments (after `--`): BODY_FILE CONTENT_TYPE [INFERENCE_HEADER_LENGTH].
-- The body is read from a file so binary tensor bodies need no escaping.
local request_text

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open body file " .. tostring(args[1]))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = args[2] }
  if args[3] ~= nil and args[3] ~= "" then
    headers["Inference-Header-Content-Length"] = args[3]
  end
  request_text = wrk.format("POST", nil, headers, body)
end

function request()
  return request_text
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
