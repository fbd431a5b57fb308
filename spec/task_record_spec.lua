-- dike.task_record: the task record both runtimes keep.
local dike = require("dike")
local rt = require("dike.runtime")
local task_record = require("dike.task_record")

-- A record's fields and their values (a coroutine shown as its type).
local function fields_of(t)
    local fields = {}
    for k, v in pairs(t) do fields[k] = type(v) == "thread" and "thread" or v end
    return fields
end

describe("task_record", function()
    it("the scheduler makes a new task's record with exactly the fields of record(co, NEW)", function()
        -- The scheduler writes the record out on its spawn path (see new_task in scheduler.lua).
        local book = task_record.new{ ready = function() end, park = function() end,
                                      task = function() end, on_unreported = function() end }
        local expected = fields_of(book.record(coroutine.create(function() end), task_record.NEW))
        local made, result = dike.run(function()
            local t = rt.spawn_soon(function(a, b) return a + b end, 2, 3)
            local fields = fields_of(t) -- not started yet: spawn_soon's arguments stand beside
            fields.a1, fields.a2 = nil, nil
            assert.equal(rt.Task, getmetatable(t))
            return fields, t:join()
        end)
        assert.same(expected, made)
        assert.equal(5, result)
        assert.same({ timers = 0, ready = 0, unreported = 0 }, rt.pending())
    end)
end)
