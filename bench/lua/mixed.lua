-- mixed.lua - WRITE_PCT % POST /products (unique SKUs), the rest GET /products/<random id>.
--   wrk -s mixed.lua URL -- IDS_FILE PREFIX WRITE_PCT
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local paths, n, prefix, write_pct, seq = nil, 0, "MIX", 5, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  paths, n = read_lines(args[1], "/products/")
  prefix = (args[2] or "MIX") .. "-" .. tostring(tid or 0)
  write_pct = tonumber(args[3] or "5")
  seed_random()
end

function request()
  if math.random() * 100 < write_pct then
    seq = seq + 1
    return wrk.format("POST", "/products", headers, string.format(
      '{"sku":"%s-%d","name":"Mixed product %d","price":%d.%02d,"stock":%d}',
      prefix, seq, seq, 10 + seq % 990, seq % 100, seq % 50))
  end
  return wrk.format("GET", paths[math.random(n)])
end

function response(status, hdrs, body) count_status(status) end
