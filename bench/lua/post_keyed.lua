-- post_keyed.lua - post.lua's creates, each with an Idempotency-Key: its own SKU, so unique.
--   wrk -s post_keyed.lua URL -- PREFIX      (PREFIX must differ between wrk runs on one server)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "post.lua")

local keyed_headers = { ["Content-Type"] = "application/json" }

function request()
  local body = create_body()
  keyed_headers["Idempotency-Key"] = body:match('"sku":"([^"]+)"')
  return wrk.format("POST", "/products", keyed_headers, body)
end
