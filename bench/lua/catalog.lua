-- catalog.lua - GET /catalog?limit=LIMIT&cursor=<random cursor of CURSORS_FILE>; the first
-- page (no cursor) is one of the choices. Cursors are the ones the Link headers handed out.
--   wrk -s catalog.lua URL -- CURSORS_FILE LIMIT
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local paths, n
function init(args)
  local base = "/catalog?limit=" .. (args[2] or "100")
  paths, n = read_lines(args[1], base .. "&cursor=")
  n = n + 1
  paths[n] = base
  seed_random()
end

function request()
  return wrk.format("GET", paths[math.random(n)])
end
