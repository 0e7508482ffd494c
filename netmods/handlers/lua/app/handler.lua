-- A CGI handler in Lua, run by lua.wasm (Lua 5.4 built for wasm32-wasi):
--   [[route]]  path = "/lua/..."  module = "lua.wasm"  argv = ["lua", "/app/handler.lua"]
--              dirs = [ { host = "app", guest = "/app", readonly = true } ]
-- Answers with what it was asked: the method, the path, the query decoded
-- into sorted key=value pairs, the body's length and its words counted.
-- PATH_INFO /error raises an error (the host answers 500 and logs it);
-- /caught raises one inside pcall and answers 200 with its message.

local function decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function query_pairs(query)
  local pairs_ = {}
  for key, value in query:gmatch("([^&=]+)=?([^&]*)") do
    pairs_[#pairs_ + 1] = decode(key) .. "=" .. decode(value)
  end
  table.sort(pairs_)
  return pairs_
end

local method = os.getenv("REQUEST_METHOD") or "?"
local path = (os.getenv("SCRIPT_NAME") or "") .. (os.getenv("PATH_INFO") or "")
if os.getenv("PATH_INFO") == "/error" then
  error("asked to fail")
end
local caught
if os.getenv("PATH_INFO") == "/caught" then
  local ok, message = pcall(function() local missing = nil; return missing.field end)
  caught = tostring(ok) .. " " .. message
end

-- Read inside pcall: a read that waits for the client suspends the guest
-- inside a Wasm try block (Lua's setjmp).
local ok, body = pcall(io.read, "a")
body = ok and body or ""
local words = 0
for _ in body:gmatch("%S+") do words = words + 1 end

local lines = {
  "lua " .. _VERSION .. " " .. method .. " " .. path,
  "query " .. table.concat(query_pairs(os.getenv("QUERY_STRING") or ""), " "),
  "body " .. #body .. " bytes, " .. words .. " words",
}
if caught then lines[#lines + 1] = "caught " .. caught end
local text = table.concat(lines, "\n") .. "\n"
io.write("Content-Type: text/plain\r\n",
         "Content-Length: ", #text, "\r\n",
         "X-Handler: lua\r\n\r\n", text)
