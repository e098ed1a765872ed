-- post.lua - POST /products with a unique SKU per request: PREFIX-<thread>-<seq>.
--   wrk -s post.lua URL -- PREFIX      (PREFIX must differ between wrk runs on one server)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local prefix, seq = "BENCH", 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "BENCH") .. "-" .. tostring(tid or 0)
end

function create_body()
  seq = seq + 1
  return string.format('{"sku":"%s-%d","name":"Bench product %d","price":%d.%02d,"stock":%d}',
    prefix, seq, seq, 10 + seq % 990, seq % 100, seq % 50)
end

function request()
  return wrk.format("POST", "/products", headers, create_body())
end

function response(status, hdrs, body) count_status(status) end
