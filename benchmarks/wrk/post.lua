-- POST a fixed JSON body read from a file, optionally with a bearer token.
-- Usage: wrk -s post.lua URL -- BODY_FILE [TOKEN]
-- The request is built once per thread (wrk.init formats it after init runs).

function init(args)
  local path = args[1]
  if path == nil then
    error("post.lua: pass the body file after --")
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end
