--- Shared pieces of the stress runs (spec/stress/run.lua): a reproducible random source,
-- tallies of per-call mismatches, and what must hold once every call of a round has ended
-- (no dike timer, task or luv handle left behind; memory as it was).
local uv = require("luv")

local floor, format = math.floor, string.format

local M = {}

--- Park-Miller "minimal standard" generator: exact in doubles (LuaJIT) and in integers (Lua
--- 5.4), so a seed gives the same run on both. rand(n): an integer in [0, n).
function M.rng(seed)
    local s = floor(seed) % 2147483646 + 1
    return function(n)
        s = s * 16807 % 2147483647
        return s % n
    end
end

---------------------------------------------------------------- tallies

local Tally = {}
Tally.__index = Tally

--- Counts the calls checked and the ones that went wrong, keeping the first few messages.
function M.tally()
    return setmetatable({ checked = 0, wrong = 0, first = {} }, Tally)
end

function Tally:ok()
    self.checked = self.checked + 1
end

function Tally:bad(fmt, ...)
    self.checked = self.checked + 1
    self.wrong = self.wrong + 1
    if #self.first < 5 then self.first[#self.first + 1] = format(fmt, ...) end
end

--- ok() when cond holds, else bad(fmt, ...).
function Tally:expect(cond, fmt, ...)
    if cond then self.checked = self.checked + 1 else self:bad(fmt, ...) end
end

---------------------------------------------------------------- report

local Report = {}
Report.__index = Report

--- The checks of a whole run; prints each failure at once and "N passed, N failed" at the end.
function M.report()
    return setmetatable({ passed = 0, failed = 0 }, Report)
end

function Report:check(ok, what, details)
    if ok then
        self.passed = self.passed + 1
    else
        self.failed = self.failed + 1
        print("FAIL " .. what)
        for _, line in ipairs(details or {}) do print("     " .. line) end
    end
    return ok
end

--- A tally is one check: every call it saw got the outcome it must have.
function Report:check_tally(t, what)
    return self:check(t.wrong == 0 and t.checked > 0,
                      format("%s: %d of %d checks wrong", what, t.wrong, t.checked), t.first)
end

function Report:summary()
    print(format("%d passed, %d failed", self.passed, self.failed))
    return self.failed == 0
end

---------------------------------------------------------------- callers

--- One round of calls: p.tasks tasks at once, each making p.calls calls one after the other.
--- For each call, scenario.prepare(rec) fills in the call's record (rec.cid is its number),
--- scenario.call(rec) makes it (pcall'ed) and scenario.verify(rec, ok, value) checks what it
--- returned or raised; scenario.pause(rec), if given, may return seconds the caller then waits
--- before its next call (a client backing off). With probability p.cancel_pct % a call gets a canceller, a task that
--- cancels the caller 0 s (likely still queued) to 4 ms later if that call is still going on:
--- rec.cancelled says it did. `live` maps cid -> rec while a call is going on (scenarios read it).
--- The round ends when every caller and every canceller has ended. Then `tally` records as
--- bad every caller task that raised and, in fig.stray_wakes, the sleeps between calls that
--- returned a value (a caller resumed twice).
function M.callers(p, rand, scenario, fig, live, tally)
    local dike = require("dike")
    local tasks, cancellers, cid = {}, {}, 0
    local function canceller(t, rec, delay)
        dike.sleep(delay)
        if live[rec.cid] == rec then
            rec.cancelled = true
            fig.cancelled = fig.cancelled + 1
            t:cancel()
        end
    end
    local function body(k)
        dike.sleep(0) -- lets spawn return first, so tasks[k] is this task
        local t = tasks[k]
        for _ = 1, p.calls do
            cid = cid + 1
            local rec = { cid = cid }
            scenario.prepare(rec)
            if rand(100) < p.cancel_pct then
                cancellers[#cancellers + 1] = dike.spawn(canceller, t, rec, rand(2) == 0 and 0 or rand(4000) * 1e-6)
            end
            fig.calls = fig.calls + 1
            live[rec.cid] = rec
            local ok, value = pcall(scenario.call, rec)
            live[rec.cid] = nil
            scenario.verify(rec, ok, value)
            -- Between calls the caller sleeps at times. A call's caller resumed a second time
            -- would be woken in its next wait: here (sleep returns nothing, or raises) or in its
            -- next call (a wrong outcome there).
            local pause = scenario.pause and scenario.pause(rec)
            if pause or rand(4) == 0 then -- a back-off, or some interleaving between calls
                local woke = dike.sleep(pause or 0)
                if woke ~= nil then fig.stray_wakes = (fig.stray_wakes or 0) + 1 end
            end
        end
    end
    local results = dike.run(function()
        for k = 1, p.tasks do tasks[k] = dike.spawn(body, k) end
        local results = dike.gather(tasks, { return_errors = true })
        dike.gather(cancellers) -- the last ones may still be asleep
        return results
    end)
    for k = 1, p.tasks do
        if results[k] ~= nil then tally:bad("caller task %d raised %s", k, tostring(results[k])) end
    end
    if fig.stray_wakes then tally:bad("%d sleeps between calls were woken with a value", fig.stray_wakes) end
end

---------------------------------------------------------------- after a round

--- What dike and luv still hold: a list of problems (empty when nothing is left behind).
function M.leftovers()
    return require("spec.leftovers")(uv)
end

--- Resident set size of this process in KB (Linux), or nil.
function M.rss_kb()
    local f = io.open("/proc/self/status", "r")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return tonumber(text:match("VmRSS:%s*(%d+) kB"))
end

--- Collect everything unreachable. LuaJIT's compiled traces hold the objects they were
--- specialised on (closures called in a hot loop, and so everything those reach) until the
--- trace is flushed: without jit.flush() a round's wrappers and tasks stay alive there, through
--- no reference of dike's (with the JIT off they are collected at once).
function M.collect()
    if jit then jit.flush() end
    collectgarbage("collect")
    collectgarbage("collect")
end

-- The C heap in use (malloc'd and not freed: the C core's buffers, luv, libuv), through
-- glibc's mallinfo2 where LuaJIT's FFI can call it. LuaJIT's own GC heap is not in it (it
-- maps its memory itself); Lua 5.4's whole heap would be, and is measured as the Lua heap.
local mallinfo
if jit then
    local ok, ffi = pcall(require, "ffi")
    if ok and pcall(ffi.cdef, [[
        struct dike_stress_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
                                       uordblks, fordblks, keepcost; };
        struct dike_stress_mallinfo2 mallinfo2(void);]]) and pcall(function() return ffi.C.mallinfo2 end) then
        mallinfo = function()
            local m = ffi.C.mallinfo2()
            return (tonumber(m.uordblks) + tonumber(m.hblkhd)) / 1024
        end
    end
end

--- Lua heap (KB, after M.collect()), RSS (KB) and the C heap in use (KB, LuaJIT only, else nil).
function M.memory()
    M.collect()
    return collectgarbage("count"), M.rss_kb(), mallinfo and mallinfo() or nil
end

return M
