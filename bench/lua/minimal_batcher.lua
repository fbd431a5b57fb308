--- The floor for workload 1: a hand-written batcher in plain Lua on luv, with no library.
--
-- It does the job dike.batch does in the benchmark, written for speed and nothing else:
-- `load(key)` parks the calling coroutine; when `target` keys are queued (or `max_wait`
-- seconds after the batch's first key) the batch is closed, and from the loop (one idle
-- handle, never re-entrantly) the batch function is called once with the keys and each
-- caller is resumed with its own result. One timer per batcher. No error handling, no
-- cancellation, no statistics, no per-call tables: keys in, values out.
local uv = require("luv")

local co_running, co_yield, co_resume = coroutine.running, coroutine.yield, coroutine.resume
local error = error

local M = {}

---@param fn fun(keys: table, n: integer): table  returns one value per key
---@param target integer
---@param max_wait number seconds
---@return fun(key: any): any load
function M.new(fn, target, max_wait)
    local wait_ms = math.ceil(max_wait * 1000)
    local keys, waiters, n = {}, {}, 0
    -- Closed batches waiting for the idle handle: flat triples (keys, waiters, count).
    local ready, nready = {}, 0
    local timer, idle = uv.new_timer(), uv.new_idle()
    local idle_on = false

    local function run_ready()
        local r, c = ready, nready
        ready, nready = {}, 0
        for b = 1, c, 3 do
            local ks, ws, count = r[b], r[b + 1], r[b + 2]
            local out = fn(ks, count)
            for i = 1, count do
                local ok, err = co_resume(ws[i], out[i])
                if not ok then error(err, 0) end
            end
        end
        if nready == 0 then
            idle:stop()
            idle_on = false
        end
    end

    local function close_batch()
        if n == 0 then return end
        timer:stop()
        ready[nready + 1], ready[nready + 2], ready[nready + 3] = keys, waiters, n
        nready = nready + 3
        keys, waiters, n = {}, {}, 0
        if not idle_on then
            idle:start(run_ready)
            idle_on = true
        end
    end

    local function load(key)
        local i = n + 1
        n = i
        keys[i], waiters[i] = key, co_running()
        if i == 1 then
            uv.update_time()
            timer:start(wait_ms, 0, close_batch)
        end
        if i >= target then close_batch() end
        return co_yield()
    end

    local function close()
        timer:close()
        idle:close()
    end

    return load, close
end

return M
