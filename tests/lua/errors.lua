-- Lua's error machinery (setjmp/longjmp, i.e. Wasm exceptions in lua.wasm):
-- run by tests/test_lua_errors.py under asyncwasm and natively; the two
-- outputs must match errors.out byte for byte. No addresses are printed.

local function show(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
  print(table.concat(out, " | "))
end

print("-- error and pcall")
show(pcall(error, "boom"))
show(pcall(error, "no position", 0))
show(pcall(error))
show(pcall(error, nil))
show(pcall(error, 42))
local ok, obj = pcall(error, {code = 7})
show(ok, type(obj), obj.code)
local function raise(level) error("level " .. level, level) end
local function caller(level) raise(level) end  -- line 20
show(pcall(caller, 1))
show(pcall(caller, 2))
show(pcall(function() caller(3) end))
show(pcall(function() return "no error", 2, nil end))
show(select("#", pcall(function() return 1, nil, nil end)))

print("-- runtime errors")
local up = nil
local t = {}
show(pcall(function() local l = nil; return l.x end))
show(pcall(function() return up.field end))
show(pcall(function() return t.a.b end))
show(pcall(function() return undefined_global.x end))
show(pcall(function() return 1 + nil end))
show(pcall(function() local n; return n * 2 end))
show(pcall(function() return "abc" + 1 end))
show(pcall(function() return "10" + 1 end))
show(pcall(function() return {} .. "x" end))
show(pcall(function() return 1 < "2" end))
show(pcall(function() return {} < {} end))
show(pcall(function() return #nil end))
show(pcall(function() return -{} end))
show(pcall(function() return 1 // 0 end))
show(pcall(function() return 1 % 0 end))
show(pcall(function() return 1.5 | 0 end))
show(pcall(function() t.f() end))
show(pcall(function() local s = "x"; s:nomethod() end))
show(pcall(function() for i = 1, "x" do end end))
show(pcall(string.rep))
show(pcall(string.format, "%d", 1.5))
show(pcall(string.char, 256))
show(pcall(setmetatable, 1, {}))
show(pcall(("x").rep, "x", -1))
show(pcall(table.insert, {}, 1, 2, 3))
show(pcall(table.concat, {1, {}, 3}))
show(pcall(math.floor, "a"))
show(pcall(tostring))
show(pcall(ipairs))
show(pcall(utf8.codepoint, "\xff"))
show(pcall(string.gsub, "abc", "(", ""))
show(pcall(string.gsub, "abc", "%w", function(c) if c == "b" then error("in gsub " .. c) end end))
show(pcall(tostring, setmetatable({}, {__tostring = function() error("bad tostring") end})))
show(pcall(tostring, setmetatable({}, {__tostring = function() return 1 end})))
show(pcall(function() return setmetatable({}, {__index = function(_, k) error("no key " .. k, 2) end}).missing end))
show(pcall(function() setmetatable({}, {__newindex = function() error("read only") end}).x = 1 end))
show(pcall(function() local a <const> = 1; local x <close> = 42 end))
show(pcall(next, {}, "nokey"))
show(pcall(rawset, {}, nil, 1))
show(pcall(rawset, {}, 0/0, 1))
show(pcall(select, 0))
show(pcall(string.pack, "i17", 1))
show(pcall(assert, false))
show(pcall(assert, nil, "assertion message"))
show(pcall(assert, false, {1}) == false)
show(pcall(assert, 1, 2, 3))

print("-- load and syntax errors")
show(load("x = = 1", "=chunk"))
show(load("return 1 +", "=chunk"))
show(load("goto nowhere", "=chunk"))
show(load(string.rep("(", 300) .. "1" .. string.rep(")", 300), "=deep"))
show(pcall(load("error('from loaded chunk')", "=loaded")))
show(load(function() error("reader fails") end))

print("-- xpcall")
show(xpcall(function() error("x") end, function(m) return "handled: " .. m end))
show(xpcall(function(a, b) return a + b end, print, 2, 3))
show(xpcall(function() local x = nil; return x() end, function(m) return "handler got " .. m end))
show(xpcall(error, function(m) error("handler fails") end, "first"))
show(xpcall(function() error("traced") end, debug.traceback))
show(xpcall(function() error({}) end, function(e) return type(e) end))
show(pcall(xpcall))

print("-- nesting")
show(pcall(pcall, error, "inner"))
show(pcall(function()
  local ok, err = pcall(error, "first")
  error("rethrown: " .. err, 0)
end))
local depth = 0
local function nest(n)
  if n == 0 then error("bottom", 0) end
  local ok, err = pcall(nest, n - 1)
  depth = depth + 1
  error(err .. "<" .. n, 0)
end
show(pcall(nest, 50), depth)

print("-- stack overflows")
local function recurse(n) return 1 + recurse(n + 1) end
local ok, err = pcall(recurse, 1)
show(ok, err:match("stack overflow") ~= nil)
local function cnest() return pcall(cnest) end
show(select("#", cnest()) > 0)
local function cstack(n) local ok, e = pcall(string.gsub, "x", "x", function() return cstack(n + 1) end)
  if not ok then error(e, 0) end return ok end
ok, err = pcall(cstack, 1)
show(ok, tostring(err):match("C stack overflow") ~= nil or tostring(err):match("stack overflow") ~= nil)
ok, err = pcall(function() return setmetatable({}, {__index = function(t, k) return t[k] end}).x end)
show(ok, tostring(err):match("stack overflow") ~= nil)

print("-- to-be-closed variables")
show(pcall(function()
  local x <close> = setmetatable({}, {__close = function(_, e) print("closing with", e) end})
  error("in tbc", 0)
end))
show(pcall(function()
  local x <close> = setmetatable({}, {__close = function() error("close fails", 0) end})
  return "body ok"
end))
show(pcall(function()
  local a <close> = setmetatable({}, {__close = function(_, e) print("a sees", e); error("a fails", 0) end})
  local b <close> = setmetatable({}, {__close = function(_, e) print("b sees", e); error("b fails", 0) end})
  error("body fails", 0)
end))

print("-- coroutines")
local co = coroutine.create(function(a)
  local b = coroutine.yield(a + 1)
  error("in co " .. b)
end)
show(coroutine.resume(co, 1))
show(coroutine.resume(co, "two"))
show(coroutine.status(co))
show(coroutine.resume(co))
show(pcall(coroutine.wrap(function() error("wrapped") end)))
show(pcall(coroutine.wrap(function() error({}) end)) == false)
show(pcall(coroutine.wrap(function() local x = nil; return x.y end)))
local gen = coroutine.wrap(function()
  for i = 1, 3 do
    local ok, err = pcall(function()
      coroutine.yield("yield inside pcall " .. i)
      if i == 2 then error("after yield " .. i, 0) end
    end)
    coroutine.yield(tostring(ok) .. " " .. tostring(err))
  end
  return "done"
end)
for _ = 1, 7 do show(gen()) end
show(pcall(gen))
show(coroutine.resume(coroutine.create(function()
  table.sort({3, 2, 1}, function(a, b) coroutine.yield() return a < b end)
end)))
show(coroutine.resume(coroutine.create(function()
  local v = setmetatable({}, {__index = function(_, k) return coroutine.yield(k) end}).key
  return "got " .. v
end)))
local meta = coroutine.create(function()
  local v = setmetatable({}, {__index = function(_, k) return coroutine.yield(k) end}).key
  error("after metamethod yield: " .. v, 0)
end)
show(coroutine.resume(meta))
show(coroutine.resume(meta, "value"))
show(coroutine.isyieldable())
show(pcall(coroutine.yield, 1))
local closing = coroutine.create(function()
  local x <close> = setmetatable({}, {__close = function() print("closed by coroutine.close") end})
  coroutine.yield()
end)
coroutine.resume(closing)
show(coroutine.close(closing), coroutine.status(closing))
local failing = coroutine.create(function() error("dead with error", 0) end)
coroutine.resume(failing)
show(coroutine.close(failing))
show(pcall(coroutine.resume, coroutine.running()))
show(coroutine.resume(coroutine.create(function() return coroutine.resume(coroutine.running()) end)))
local nested = coroutine.wrap(function()
  local inner = coroutine.wrap(function() error("inner coroutine fails", 0) end)
  local ok, err = pcall(inner)
  coroutine.yield("outer caught: " .. err)
  inner()
end)
show(nested())
show(pcall(nested))

print("-- many errors")
local caught = 0
for i = 1, 20000 do
  if not pcall(error, i) then caught = caught + 1 end
end
local threads = 0
for i = 1, 2000 do
  local c = coroutine.create(function() coroutine.yield(); error("x") end)
  coroutine.resume(c)
  if not coroutine.resume(c) then threads = threads + 1 end
end
collectgarbage()
show(caught, threads, collectgarbage("count") < 1024)

print("-- uncaught")
io.stdout:flush()
local function fail() error("the end") end
fail()
print("not reached")
