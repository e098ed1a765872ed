-- get_id.lua - GET /products/<id>, a uniformly random id of IDS_FILE per request.
--   wrk -s get_id.lua URL -- IDS_FILE
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local paths, n
function init(args)
  paths, n = read_lines(args[1], "/products/")
  seed_random()
end

function request()
  return wrk.format("GET", paths[math.random(n)])
end
