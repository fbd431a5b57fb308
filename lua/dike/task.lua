--- dike.gather and dike.wrap: waiting on several tasks, and on luv-style callbacks.
local rt = require("dike.runtime")
local options = require("dike.options")

local type, select, setmetatable, error = type, select, setmetatable, error
local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}

-- One per gather item: records the item's outcome in the shared gather state.
local Item = {}
Item.__index = Item

function Item:notify(t)
    local g = self.g
    if g.finished then return end
    local ok, value = rt.outcome(t) -- its first value, or its error
    if not ok and not g.return_errors then
        g.finished, g.failed, g.err = true, true, value
        rt.wake(g.waiter, false, value)
        return
    end
    g.results[self.i] = value
    g.remaining = g.remaining - 1
    if g.remaining == 0 then
        g.finished = true
        rt.wake(g.waiter, true, g.results)
    end
end

local function gather_cancel(_, g)
    g.finished = true
    local tasks = g.tasks
    for i = 1, g.n do tasks[i]:cancel() end
end

local GATHER_OPTS = { return_errors = true }

local function bad_item(i, it)
    error("dike.gather: item " .. i .. " must be a task or a function, got " .. options.show(it), 3)
end

--- Run items (tasks or functions) concurrently; results[i] is item i's first value.
---@param items (table|function)[]
---@param opts? {return_errors: boolean}
---@return table results with results.n == #items
function M.gather(items, opts)
    if type(items) ~= "table" then
        error("dike.gather: items must be a list of tasks or functions, got " .. options.show(items), 2)
    end
    opts = options.table("dike.gather", opts, GATHER_OPTS, true)
    local return_errors = options.boolean("dike.gather", opts, "return_errors", false)
    local n = #items
    for i = 1, n do
        local it = items[i]
        if type(it) ~= "function" and getmetatable(it) ~= rt.Task then bad_item(i, it) end
    end
    -- Items past a hole that # did not show would never run.
    if options.hole_above(items, n) then bad_item(n + 1, nil) end
    local t = rt.waiter("dike.gather")
    for i = 1, n do
        if items[i] == t then
            error("dike.gather: item " .. i .. " is the task that gathers (it would wait for itself)", 2)
        end
    end
    local results = { n = n }
    local g = { waiter = t, results = results, remaining = n, n = n, tasks = {},
                return_errors = return_errors, finished = n == 0 }
    for i = 1, n do
        local it = items[i]
        if type(it) == "function" then it = rt.spawn(it) end
        rt.observe(it) -- its error is the gather's to deliver
        g.tasks[i] = it
    end
    for i = 1, n do
        local it = g.tasks[i]
        local item = setmetatable({ g = g, i = i }, Item)
        if it:done() then item:notify(it) else rt.watch(it, item) end
    end
    if g.finished then -- decided without waiting: items that ended at once
        if g.failed then error(g.err, 0) end
        return results
    end
    return rt.suspend(t, gather_cancel, g)
end

local function wrap_cancel(_, box)
    box.done = true
end

--- Adapt fn(..., callback) into a function that waits for the callback's values.
---@param fn function
---@return function
function M.wrap(fn)
    options.callable("dike.wrap", fn)
    return function(...)
        local t = rt.waiter("dike.wrap")
        local box = { done = false, waiting = false }
        local n = select("#", ...)
        local args = { ... }
        args[n + 1] = function(...)
            if box.done then return end
            box.done = true
            box.values = { n = select("#", ...), ... }
            if box.waiting then rt.wake(t, true, box) end
        end
        fn(unpack(args, 1, n + 1))
        if not box.done then
            box.waiting = true
            rt.suspend(t, wrap_cancel, box)
        end
        local values = box.values
        return unpack(values, 1, values.n)
    end
end

return M
