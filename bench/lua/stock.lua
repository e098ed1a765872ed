-- stock.lua - POST /products/<id>/stock {"delta": -1 or +1} on the few hot ids of HOT_IDS_FILE
-- (contention), -1 with DOWN_PCT % odds: above 50 the stock hovers near 0, so the "never
-- below zero" rule is exercised all along. A -1 on a product at 0 must be refused (catalogd:
-- 409); those show up in the RESULT line's "statuses": they are the point, not errors.
--   wrk -s stock.lua URL -- HOT_IDS_FILE DOWN_PCT
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local paths, n, down_pct
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  paths, n = read_lines(args[1], "/products/")
  for i = 1, n do paths[i] = paths[i] .. "/stock" end
  down_pct = tonumber(args[2] or "50")
  seed_random()
end

function request()
  local body = (math.random() * 100 < down_pct) and '{"delta":-1}' or '{"delta":1}'
  return wrk.format("POST", paths[math.random(n)], headers, body)
end

function response(status, hdrs, body) count_status(status) end
