--- dike.rate_limit: at most `rate` cost units per `per` seconds on average, and up to
-- `burst` units at once after an idle period (GCRA, the generic cell rate algorithm: a
-- token bucket kept as one theoretical arrival time). The timing arithmetic is the C core's
-- (dike.core.gcra); this file keeps the callers.
--
-- A call asks the core for its turn at the runtime's clock. Admitted at once (and nobody
-- waiting), it runs straight away: nothing is held while fn runs (a rate limit spends its
-- budget on entry), so fn is tail-called, with no pcall and no closure or table per call.
-- Otherwise, when its turn is at most max_wait away, it reserves that turn and waits; turns
-- are handed out in call order and never move earlier from one caller to the next, so the
-- waiters form a FIFO queue whose head is always due first, served by one timer per limiter
-- (armed for the head) that wakes every waiter whose turn has come. Else it raises
-- dike.RateLimited and changes nothing. A newcomer whose turn is free while others still
-- wait (their turns came a moment ago; the timer or the scheduler has not run them yet)
-- queues behind them, so callers run in the order they called.
--
-- A waiter that is cancelled leaves the queue (a hole that the timer skips; the timer is
-- stopped when nobody is left) and does not run; its reservation is not given back, as in
-- GCRA: other callers' turns were computed after it, and moving them earlier would let a
-- burst through. The counters: calls, admitted (ran fn, or acquire/try returned), delayed
-- (admitted after waiting), rejected (raised RateLimited, or try returned false), waiting
-- (queued, or woken and not yet resumed).
--
-- With a `store` the limiter is rate_limit_shared.lua's, chosen once when it is made: nothing
-- of it runs on this file's paths.
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local options = require("dike.options")
local stats = require("dike.stats")

local type, error, format, setmetatable, getmetatable, rawget, max, floor, huge =
    type, error, string.format, setmetatable, getmetatable, rawget, math.max, math.floor, math.huge
local debug_getinfo = debug.getinfo
local gcra, c_reserve = core.gcra, core.gcra_reserve
local RateLimited = errors.RateLimited
local show = options.show
local emit = events.emit

local M = {}

---------------------------------------------------------------- the core, from Lua

-- reserve(G, now, cost, max_wait) -> wait | false, retry_after: the core's dike_gcra_reserve
-- for the limiter's core object G. Through the Lua C API that call costs more than all the
-- rest of an admitted call (clock reading aside); on LuaJIT the FFI calls the same C
-- function as compiled code. The binding hands out its address (core.gcra_ffi: the module
-- exports no other symbol); G is then a table holding the Gcra userdata (kept alive there),
-- a pointer to it and an out-parameter (read before anything can yield, so one per limiter
-- is enough). Elsewhere G is the userdata itself and reserve the binding's function.
local ffi_api
do
    local ok, ffi = pcall(require, "ffi")
    if ok and type(ffi) == "table" and core.gcra_ffi then
        local api = ffi.cast(ffi.typeof([[const struct {
            uint32_t magic, version;
            int (*reserve)(void *g, double now, double cost, double max_wait, double *wait);
        } *]]), core.gcra_ffi())
        if api.magic == 0x61726367 and api.version == 1 then
            local api_reserve, ELIMITED = api.reserve, core.ELIMITED
            local void_ptr, out_type = ffi.typeof("void *"), ffi.typeof("double[1]")
            ffi_api = {
                new = function(ud) return { ud = ud, ptr = ffi.cast(void_ptr, ud), out = out_type() } end,
                reserve = function(G, t, c, max_wait)
                    local out = G.out
                    local rc = api_reserve(G.ptr, t, c, max_wait, out)
                    if rc == 0 then return out[0] end
                    if rc == ELIMITED then return false, out[0] end
                    return c_reserve(G.ud, t, c, max_wait) -- raises the binding's argument error
                end,
            }
        end
    end
end

-- Whether new limiters use the FFI (LuaJIT): true where it is available. The specs turn it
-- off to run the same checks through the Lua C API.
M.ffi = ffi_api ~= nil

local function core_of(ud)
    if M.ffi and ffi_api then return ffi_api.new(ud), ffi_api.reserve end
    return ud, c_reserve
end

local FNAME = "dike.rate_limit"
local OPTIONS = { rate = true, per = true, burst = true, max_wait = true, cost = true, name = true, store = true }

---------------------------------------------------------------- the waiting queue

-- The state R of one limiter: its counters, its core object G (with its reserve function),
-- and the queue: q[i] the waiting caller and due[i] its turn (the runtime's clock), for i in
-- head..tail; holes are callers that left. One timer, armed for the head's turn.
local State = {}
State.__index = State

function State:snapshot()
    return { calls = self.calls, admitted = self.admitted, delayed = self.delayed,
             rejected = self.rejected, waiting = self.waiting }
end

local fire

local function arm(R, at)
    local delay = at - rt.now()
    R.timer = rt.timer(delay > 0 and delay or 0, fire, R)
    R.armed_at = at
end

-- The timer: wake, in queue order, every waiter whose turn has come. The one it was armed
-- for counts as due even if the clock reads a hair earlier (the timer's own rounding). A
-- woken waiter still counts as waiting until it resumes (the wake holds its hook): until
-- then a newcomer must not overtake it.
function fire(R)
    R.timer = nil
    local t = rt.now()
    if t < R.armed_at then t = R.armed_at end
    local q, due = R.q, R.due
    local h, tail = R.head, R.tail
    while h <= tail do
        local w = q[h]
        if w then
            if due[h] > t then break end
            q[h], due[h] = nil, nil
            rt.wake(w, true, nil, true)
        end
        h = h + 1
    end
    if h > tail then
        R.head, R.tail = 1, 0 -- empty: start again at 1, keeping the tables small
    else
        R.head = h
        arm(R, due[h])
    end
end

-- A waiting caller is cancelled (or its wait otherwise ended by the runtime), in the queue or
-- woken but not yet resumed: it leaves. The timer stays armed while anyone is queued (it
-- skips the hole); it stops with the last waiter.
local function leave(w, R, i)
    if R.q[i] == w then R.q[i], R.due[i] = nil, nil end
    R.waiting = R.waiting - 1
    if R.waiting == 0 then
        if R.timer then
            rt.cancel_timer(R.timer)
            R.timer = nil
        end
        R.head, R.tail = 1, 0
    end
end

-- Wait in the queue for turn `at` (the runtime's clock, `wait` seconds away); returns once
-- woken and resumed.
local function enqueue(R, w, at, wait, label)
    emit("rate_limit", label, "delayed", "wait", wait)
    local i = R.tail + 1
    R.tail = i
    R.q[i], R.due[i] = w, at
    R.waiting = R.waiting + 1
    if not R.timer then arm(R, at) end
    rt.suspend(w, leave, R, i)
    R.waiting = R.waiting - 1
    R.admitted = R.admitted + 1
    R.delayed = R.delayed + 1
end

local function reject(R, message, retry_after, label)
    R.rejected = R.rejected + 1
    emit("rate_limit", label, "rejected", "retry_after", retry_after)
    error(RateLimited.new(message, retry_after), 0)
end

-- The call (its clock reading t, cost c) was not simply admitted: reserve(G, t, c, 0) gave
-- `wait`, `retry_after`. Return once it may run, or raise RateLimited.
--  - wait == 0: its turn is free, but earlier callers still wait (their turns have come and
--    the timer has not woken them, or they have not resumed yet): it goes after them, so
--    that callers run in the order they called. (Where nothing can wait it runs at once.)
--  - else its turn is `retry_after` seconds away: it reserves it and waits when max_wait
--    allows, else it is refused.
local function admit_slow(R, message, label, fname, t, c, wait, retry_after)
    if wait == 0 then
        local w = rt.current_waiter(fname)
        if w == nil then
            R.admitted = R.admitted + 1
            return
        end
        return enqueue(R, w, t, 0, label)
    end
    local max_wait = R.max_wait
    local w = rt.current_waiter(fname)
    if w == nil then
        -- Nothing can wait here (outside a coroutine, or an nginx phase that cannot yield): a
        -- call that would wait is the caller's mistake, and rt.waiter raises it as such.
        if retry_after <= max_wait then rt.waiter(fname) end
        return reject(R, message, retry_after, label)
    end
    local turn, again = R.reserve(R.G, t, c, max_wait)
    if not turn then return reject(R, message, again, label) end
    return enqueue(R, w, t + turn, turn, label)
end

---------------------------------------------------------------- costs

local function cost_error(fname, what, v, level)
    error(fname .. ": " .. what .. " must be a finite number > 0, got " .. show(v), level)
end

local function over_burst(fname, c, burst, level)
    error(format("%s: cost %s exceeds burst %s: such a call could never run", fname, show(c), show(burst)),
          level)
end

-- The cost a cost function returned for this call, or the cost argument of acquire and try
-- (nil: 1). Errors blame the caller of the wrapped function (or of acquire, try): level 4
-- counts this function's caller and the error helper.
local function checked_cost(R, fname, what, c)
    if type(c) ~= "number" or c ~= c or c <= 0 or c == huge then cost_error(fname, what, c, 4) end
    if c > R.burst then over_burst(fname, c, R.burst, 4) end
    return c
end

---------------------------------------------------------------- the limiter

local Limiter = { __name = "dike.rate_limit" }
Limiter.__index = Limiter

local function state_of(self, fname)
    local R = type(self) == "table" and getmetatable(self) == Limiter and self._state
    if not R then
        error(fname .. ": expected a rate limiter (call it with a colon), got " .. show(self), 3)
    end
    return R
end

--- Wait for a turn of `cost` units (default 1), or raise dike.RateLimited, exactly as a
--- wrapped call would; for code that is not a function.
---@param cost? number
function Limiter:acquire(cost)
    local R = state_of(self, "limiter:acquire")
    cost = checked_cost(R, "limiter:acquire", "cost", cost == nil and 1 or cost)
    R.calls = R.calls + 1
    local t = rt.now()
    local wait, retry_after = R.reserve(R.G, t, cost, 0)
    if wait == 0 and R.waiting == 0 then
        R.admitted = R.admitted + 1
        return
    end
    admit_slow(R, R.message, R.site, "limiter:acquire", t, cost, wait, retry_after)
end

--- Take a turn of `cost` units (default 1) if it is free now; never waits.
---@param cost? number
---@return boolean ok, number retry_after 0 when ok, else the seconds until such a call would pass
function Limiter:try(cost)
    local R = state_of(self, "limiter:try")
    cost = checked_cost(R, "limiter:try", "cost", cost == nil and 1 or cost)
    R.calls = R.calls + 1
    local wait, retry_after = R.reserve(R.G, rt.now(), cost, 0)
    if wait == 0 then
        R.admitted = R.admitted + 1
        return true, 0
    end
    R.rejected = R.rejected + 1
    emit("rate_limit", R.site, "rejected", "retry_after", retry_after)
    return false, retry_after
end

-- limiter(fn): the wrapped function.
function Limiter.__call(self, fn)
    local R = state_of(self, FNAME)
    options.callable(FNAME, fn)
    local label = R.name or options.name_of(fn)
    local message = "Rate limit exceeded for function " .. label .. R.suffix
    local G, reserve, cost, cost_fn = R.G, R.reserve, R.cost, R.cost_fn

    local function wrapped(...)
        R.calls = R.calls + 1
        local c = cost
        if cost_fn then c = checked_cost(R, FNAME, "the cost function's result", (cost_fn(...))) end
        local t = rt.now()
        local wait, retry_after = reserve(G, t, c, 0)
        if wait == 0 and R.waiting == 0 then
            R.admitted = R.admitted + 1
            return fn(...)
        end
        admit_slow(R, message, label, FNAME, t, c, wait, retry_after)
        return fn(...)
    end
    stats.register(wrapped, R)
    options.set_name(wrapped, label)
    return wrapped
end

function Limiter:__tostring()
    local R = rawget(self, "_state")
    return format("dike.rate_limit(rate=%g/%gs, burst=%g)", R.rate, R.per, R.burst)
end

---------------------------------------------------------------- options

-- A finite number >= 1 (burst). Blames the caller of dike.rate_limit.
local function burst_of(opts, default)
    local v = opts.burst
    if v == nil then return default end
    if type(v) == "number" and v >= 1 and v < huge then return v end
    error(FNAME .. ": burst must be a finite number >= 1, got " .. show(v), 3)
end

--- Make a rate limiter: a decorator whose wrapped functions share one budget of `rate`
--- cost units per `per` seconds, `burst` at once.
---@param opts {rate: number, per?: number, burst?: number, max_wait?: number, cost?: number|fun(...): number, name?: string, store?: table}
---@return table limiter callable: limiter(fn) -> wrapped fn; limiter:acquire(cost), limiter:try(cost)
function M.rate_limit(opts)
    opts = options.table(FNAME, opts, OPTIONS)
    local rate = options.number(FNAME, opts, "rate", true, false, nil)
    if rate == nil then error(FNAME .. ": rate must be a finite number > 0, got nil", 2) end
    local per = options.number(FNAME, opts, "per", true, false, 1)
    local burst = burst_of(opts, max(1, floor(rate)))
    local max_wait = options.number(FNAME, opts, "max_wait", false, true, 0)
    local name = options.string(FNAME, opts, "name")
    local cost, cost_fn = opts.cost, nil
    if cost == nil then
        cost = 1
    elseif type(cost) == "function" then
        cost, cost_fn = 1, cost
    elseif type(cost) ~= "number" or cost ~= cost or cost <= 0 or cost == huge then
        error(FNAME .. ": cost must be a finite number > 0 or a function, got " .. show(cost), 2)
    end
    if cost > burst then
        error(format("%s: cost %s exceeds burst %s: such a call could never run", FNAME, show(cost), show(burst)), 2)
    end
    if opts.store ~= nil then -- shared: rate_limit_shared.lua (nothing below runs)
        local shared = require("dike.rate_limit_shared").new{ store = opts.store, name = name, rate = rate,
            per = per, burst = burst, max_wait = max_wait, cost = cost, cost_fn = cost_fn }
        return shared -- not a tail call: its errors blame the caller of dike.rate_limit (level 3)
    end
    -- acquire and try have no function to name: without a name they use where the limiter
    -- was made.
    local site = name
    if not site then
        local info = debug_getinfo(2, "Sl")
        site = info.short_src .. ":" .. info.currentline
    end
    local R = setmetatable({
        rate = rate, per = per, burst = burst, max_wait = max_wait, cost = cost, cost_fn = cost_fn,
        name = name, suffix = format("! rate=%g/%gs", rate, per),
        G = false, reserve = false,
        calls = 0, admitted = 0, delayed = 0, rejected = 0, waiting = 0,
        q = {}, due = {}, head = 1, tail = 0, timer = nil, armed_at = 0, site = false,
    }, State)
    R.G, R.reserve = core_of(gcra(rate, per, burst))
    R.site = site
    R.message = "Rate limit exceeded for function " .. site .. R.suffix
    local limiter = setmetatable({ _state = R }, Limiter)
    stats.register(limiter, R)
    return limiter
end

return M
