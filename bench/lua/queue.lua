--- Workload 5, queue growth: limit_jobs{limit = 1, queue = N} and N + 1 callers, so N wait
-- while the first holds the slot. Each call holds its slot across one loop iteration
-- (dike.sleep(0)), so the slot is handed down the queue one caller at a time.
--   IMPL dike     the callers are dike tasks calling the limited function
--   IMPL minimal  the same job by hand on luv: a FIFO of parked coroutines, one slot,
--                 one idle handle resuming whoever's turn it is
-- Reported per call: the time from spawning the first caller until the last one is done,
-- over N + 1 calls. The minimal run shows how much of any growth is the machine's (more
-- live coroutines, fewer cache hits) rather than the queue's.
local common = require("lua.common")

local impl, n, mem = common.args("queue.lua dike|minimal N [mem]")
local uv = common.uv

local done = 0
local spawn_all, close
if impl == "dike" then
    local dike = require("dike")
    local sleep = dike.sleep
    local limited = dike.limit_jobs{ limit = 1, queue = n }(function(x)
        sleep(0)
        return x
    end)
    local function caller(i)
        local r = limited(i)
        done = done + (r == i and 1 or 0)
    end
    spawn_all = function()
        local spawn = dike.spawn
        for i = 1, n + 1 do spawn(caller, i) end
    end
else
    local co_running, co_yield, co_resume = coroutine.running, coroutine.yield, coroutine.resume
    local queue, head, tail, busy = {}, 1, 0, false
    local ready, nready = {}, 0
    local idle, idle_on = uv.new_idle(), false
    local function on_idle()
        local r, c = ready, nready
        ready, nready = {}, 0
        for i = 1, c do assert(co_resume(r[i])) end
        if nready == 0 then
            idle:stop()
            idle_on = false
        end
    end
    local function park_ready(co)
        nready = nready + 1
        ready[nready] = co
        if not idle_on then
            idle:start(on_idle)
            idle_on = true
        end
    end
    local function limited(x)
        if busy then
            tail = tail + 1
            queue[tail] = co_running()
            co_yield() -- resumed holding the slot
        end
        busy = true
        park_ready(co_running()) -- sleep(0): one loop iteration
        co_yield()
        if head <= tail then
            local co = queue[head]
            queue[head] = nil
            head = head + 1
            park_ready(co) -- the slot passes straight to the next caller
        else
            busy = false
        end
        return x
    end
    local function caller(i)
        local r = limited(i)
        done = done + (r == i and 1 or 0)
    end
    spawn_all = function()
        local create, resume = coroutine.create, coroutine.resume
        for i = 1, n + 1 do assert(resume(create(caller), i)) end
    end
    close = function() idle:close() end
end

local before = mem and common.heap_bytes()
local t0 = common.now()
spawn_all()
local per_caller = mem and (common.heap_bytes() - before) / (n + 1)
uv.run()
local seconds = common.now() - t0
common.check("callers done", done, n + 1)
if close then close(); uv.run() end
common.report{ ops = n + 1, seconds = seconds, bytes_per_caller = per_caller }
