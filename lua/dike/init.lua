--- dike: retry, limit_jobs and batch for coroutines on an event loop (luv, Neovim, OpenResty).
-- This module assembles the public API; README.md and docs/ document it.
local rt = require("dike.runtime")
local errors = require("dike.errors")
local log = require("dike.log")
local stats = require("dike.stats")
local task = require("dike.task")
local retry = require("dike.retry")
local limit_jobs = require("dike.limit_jobs")
local batch = require("dike.batch")
local array = require("dike.array")
local circuit_breaker = require("dike.circuit_breaker")
local events = require("dike.events")
local timeout = require("dike.timeout")
local rate_limit = require("dike.rate_limit")
local retry_budget = require("dike.retry_budget")

local dike = {
    _VERSION = "dike scm",
    retry = retry.retry,
    limit_jobs = limit_jobs.limit_jobs,
    batch = batch.batch,
    fail = batch.fail,
    flush = batch.flush,
    array = array.array,
    gather = task.gather,
    wrap = task.wrap,
    set_logger = log.set_logger,
    stats = stats.stats,
    store = require("dike.store"),
    TooManyCalls = errors.TooManyCalls,
    TimeoutError = errors.TimeoutError,
    CancelledError = errors.CancelledError,
    circuit_breaker = circuit_breaker.circuit_breaker,
    CircuitOpen = errors.CircuitOpen,
    on_event = events.on_event,
    timeout = timeout.timeout,
    rate_limit = rate_limit.rate_limit,
    RateLimited = errors.RateLimited,
    retry_budget = retry_budget.retry_budget,
}

-- spawn, run, sleep and now are the runtime's own functions, bound again by every
-- set_runtime (types/dike.lua documents them).
rt.bind(dike, { spawn = "spawn", run = "run", sleep = "sleep", now = "now" })

--- Choose the runtime: nil for the default of this place (nginx, Neovim's main loop, or
--- luv), a name ("luv", "nvim", "ngx"), or a host table (see dike.runtime).
---@param host nil|string|table
function dike.set_runtime(host)
    rt.install(host)
end

return dike
