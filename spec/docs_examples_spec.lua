-- The runnable examples of docs/circuit_breaker.md, docs/timeout.md and docs/events.md: every
-- ```lua block that starts with `local dike = require("dike")` runs as it is written, and prints
-- what its comments say.
local dike = require("dike")
local support = require("spec.support")

local function blocks_of(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    local out = {}
    for block in text:gmatch("```lua\n(.-)```") do
        if block:find('^local dike = require%("dike"%)') then out[#out + 1] = block end
    end
    return out
end

-- Run one block with print captured: the lines it printed (values joined by tabs).
local function run(block, name)
    local lines = {}
    local env = setmetatable({
        print = function(...)
            local parts = {}
            for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
            lines[#lines + 1] = table.concat(parts, "\t")
        end,
    }, { __index = _G })
    local fn = assert(load(block, "=" .. name, "t", env))
    if setfenv then setfenv(fn, env) end -- luacheck: ignore 143
    fn()
    return lines
end

local EXPECTED = {
    ["docs/circuit_breaker.md"] = {
        { "false\tconnection refused", "false\tconnection refused", "false\tconnection refused",
          "false\tconnection refused", "false\tCircuit open for function users! retry after 30s\t30", "half_open",
          "7", "closed", "1\t1" },
        { "results for lua" },
    },
    ["docs/timeout.md"] = {
        { "value of a", "false\tCall to function lookup timed out after 0.5s", "true", "2\t1" },
        { "answer 3" },
    },
    ["docs/events.md"] = {
        { "db: closed -> open", "db: open -> isolated", "db: isolated -> closed", "3" },
    },
}

describe("documentation examples", function()
    for _, path in ipairs({ "docs/circuit_breaker.md", "docs/timeout.md", "docs/events.md" }) do
        it(path .. ": every example runs and prints what it says", function()
            local blocks = blocks_of(path)
            assert.equal(#EXPECTED[path], #blocks)
            for i, block in ipairs(blocks) do
                local logs, restore = support.capture_logs(dike)
                local ok, lines = pcall(run, block, path .. "#" .. i)
                restore()
                assert.is_true(ok, tostring(lines))
                assert.same(EXPECTED[path][i], lines)
                for _, l in ipairs(logs) do assert.equal("warning", l.level) end
            end
        end)
    end
end)
