-- wrk script for the load example's --external mode: durable fire on the
-- 64 counter instances in turn. TOKEN comes from the environment.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/instances/c-" .. (n % 64) .. "/events", nil, '{"event": "tick"}')
end
