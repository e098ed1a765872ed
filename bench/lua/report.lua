-- report.lua - shared by every wrk script here (loaded with dofile).
-- setup() numbers the threads and keeps them, so done() can sum what each thread counted
-- in its global "statuses" table (only the scripts that define response() count statuses;
-- a response() hook makes wrk hand every body to Lua, which costs wrk CPU, so the plain
-- GET scripts leave it out and rely on wrk's own non-2xx count).
-- done() prints one line: RESULT {json}.
-- With BENCH_ADDRS="host:port host:port ..." in the environment, thread i connects to the
-- i-th address (round robin; run wrk with as many threads as addresses): one wrk run spread
-- over several catalogd instances. The requests still name the URL's Host.
local threads = {}
local addrs = {}
for a in (os.getenv("BENCH_ADDRS") or ""):gmatch("%S+") do addrs[#addrs + 1] = a end

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
  if #addrs > 0 then
    local a = addrs[(#threads - 1) % #addrs + 1]
    local host, port = a:match("^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
end

statuses = {}
function count_status(status)
  statuses[status] = (statuses[status] or 0) + 1
end

-- a seed per thread, so two threads never draw the same sequence
function seed_random()
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + math.floor((os.clock() * 1e6) % 1000))
end

function read_lines(file, prefix)
  local out, n = {}, 0
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      out[n] = (prefix or "") .. line
    end
  end
  if n == 0 then error("no lines in " .. tostring(file)) end
  return out, n
end

function done(summary, latency, requests)
  local merged, parts = {}, {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if type(s) == "table" then
      for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    end
  end
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
