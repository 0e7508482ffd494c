-- A CPU-bound Lua script for the interpreter's dispatch counts and timings
-- (benchmarks/README.md): loops, table access, string operations and
-- function calls, with a checksum that any difference in the result shows.
local n = tonumber(arg and arg[1]) or 30000

local function fib(k) if k < 2 then return k end return fib(k - 1) + fib(k - 2) end

local t = {}
for i = 1, n do t[i] = (i * 7919) % 1000 end
table.sort(t)
local sum = 0
for i = 1, #t do sum = sum + t[i] end

local words, parts = {}, {}
for i = 1, n // 10 do parts[#parts + 1] = string.format("w%d", i % 97) end
local text = table.concat(parts, " ")
for w in text:gmatch("%a%d+") do words[w] = (words[w] or 0) + 1 end
local distinct = 0
for _, c in pairs(words) do distinct = distinct + c end

local s = 0
for i = 1, n do s = s + #(tostring(i) .. "x"):upper() end

local point = {x = 0, y = 0}
for i = 1, n do point.x = point.x + i; point.y = point.y - point.x % 13 end

print(fib(20), sum, distinct, s, point.x, point.y)
