-- GET PREFIX..id cycling over the ids in a file (one per line), with a bearer token.
-- Usage: wrk -s get_ids.lua URL -- IDS_FILE TOKEN PREFIX
-- Each thread starts at a different offset so that threads do not ask for the same id.

local ids = {}
local index = 0
local prefix = "/"
local headers = {}

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if line ~= "" then
      ids[#ids + 1] = line
    end
  end
  file:close()
  if #ids == 0 then
    error("get_ids.lua: no ids in " .. args[1])
  end
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  prefix = args[3] or prefix
  index = math.random(#ids) - 1
end

function request()
  index = (index % #ids) + 1
  return wrk.format("GET", prefix .. ids[index], headers)
end
