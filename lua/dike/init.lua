--- dike: retry, limit_jobs and batch for coroutines on an event loop (luv, Neovim, OpenResty).
-- This module assembles the public API of ../shared/API.md; see README.md.
local rt = require("dike.runtime")
local core = require("dike.core")
local errors = require("dike.errors")
local log = require("dike.log")
local stats = require("dike.stats")
local task = require("dike.task")
local retry = require("dike.retry")
local limit_jobs = require("dike.limit_jobs")
local batch = require("dike.batch")

local dike = {
    _VERSION = "dike scm",
    retry = retry.retry,
    limit_jobs = limit_jobs.limit_jobs,
    batch = batch.batch,
    fail = batch.fail,
    array = core.array,
    gather = task.gather,
    wrap = task.wrap,
    set_logger = log.set_logger,
    stats = stats.stats,
    store = require("dike.store"),
    TooManyCalls = errors.TooManyCalls,
    TimeoutError = errors.TimeoutError,
    CancelledError = errors.CancelledError,
}

-- The runtime table is replaced in place by set_runtime, so look its functions up per call.

--- Start fn(...) in a new task now; it runs until its first wait.
---@param fn function
---@return table task with :join(), :cancel(), :done()
function dike.spawn(fn, ...)
    return rt.spawn(fn, ...)
end

--- From outside any task: run fn(...) in a task, driving the loop until it ends.
---@param fn function
function dike.run(fn, ...)
    return rt.run(fn, ...)
end

--- Suspend the running task for `seconds` (0 yields to the loop once).
---@param seconds number
function dike.sleep(seconds)
    return rt.sleep(seconds, "dike.sleep")
end

--- The monotonic clock dike uses, in seconds.
---@return number
function dike.now()
    return rt.now()
end

--- Replace the runtime (nil restores the default one dike picks).
---@param impl table|nil
function dike.set_runtime(impl)
    rt.install(impl)
end

return dike
