-- preload.lua - create exactly COUNT products as fast as the server takes them, write the ids
-- of the 2xx answers to IDS_FILE (one per line, from the body's "id"), then exit wrk at once.
--   wrk -t1 -cC -dDEADLINE -s preload.lua URL -- COUNT PREFIX IDS_FILE
-- A POST that fails (e.g. the seed's "database is locked" under contention) is replaced by a
-- new one with the next SKU, up to COUNT/10 + 10 times. When no more POSTs are needed a free
-- connection sends "DELETE /products" instead (the seed and catalogd both answer 405, a
-- status no POST gets), so every response that is not a 405 is one of our POSTs.
-- -d is only the deadline: normally this script ends wrk itself.
-- Use one thread (-t1): the counters are per thread. wrk calls request() once more on thread 1
-- before any connection exists (to check the request parses) and never sends that one: it
-- gets the filler, so it does not use up a POST.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local count, prefix, out, max_failed = 0, "PRE", nil, 0
local sent, ok, failed = 0, 0, 0
local headers = { ["Content-Type"] = "application/json" }
local dry_run_pending = false

function init(args)
  count = tonumber(args[1])
  prefix = args[2] or "PRE"
  out = assert(io.open(args[3], "w"))
  max_failed = math.floor(count / 10) + 10
  dry_run_pending = (tid == 1)
end

local function finish()
  out:close()
  local parts = {}
  for k, v in pairs(statuses) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
  io.write(string.format('PRELOAD {"requested":%d,"sent":%d,"ids":%d,"failed":%d,"statuses":{%s}}\n',
    count, sent, ok, failed, table.concat(parts, ",")))
  io.stdout:flush()
  os.exit(0)
end

function request()
  if dry_run_pending or sent >= count + math.min(failed, max_failed) then
    dry_run_pending = false
    return wrk.format("DELETE", "/products")
  end
  sent = sent + 1
  return wrk.format("POST", "/products", headers, string.format(
    '{"sku":"%s-%d","name":"Bench product %d","price":%d.%02d,"stock":%d}',
    prefix, sent, sent, 10 + sent % 990, sent % 100, sent % 50))
end

function response(status, hdrs, body)
  if status == 405 then return end
  count_status(status)
  local id = status >= 200 and status < 300 and body:match('"id"%s*:%s*"([^"]+)"')
  if id then
    ok = ok + 1
    out:write(id, "\n")
  else
    failed = failed + 1
  end
  if ok >= count or ok + failed >= count + max_failed then finish() end
end
