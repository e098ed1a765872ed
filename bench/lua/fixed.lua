-- fixed.lua - GET one fixed path per request, e.g. catalogd's /health (no Redis, no store).
--   wrk -s fixed.lua URL -- PATH
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local path = "/"
function init(args)
  path = args[1] or "/"
end

function request()
  return wrk.format("GET", path)
end
