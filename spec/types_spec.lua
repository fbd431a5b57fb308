-- types/dike.lua, the LuaCATS definitions editors read, stays in step with the module: every
-- public field of require("dike") (and of its task and array objects) is declared there, and
-- every dike.* type its annotations use is defined there. The file declares the v2 tools too,
-- so names it declares may not exist yet; names that exist must be declared.
local dike = require("dike")

local PATH = "types/dike.lua"

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

local text = read(PATH)

-- The declared names: `function dike.x(`, `function dike.store.x(`, `---@field x` lines of the
-- `---@class dike` block, and methods `function Class:x(` by the local that holds the class.
local declared, store_declared, methods = {}, {}, {}
for name in text:gmatch("\nfunction dike%.([%w_]+)%(") do declared[name] = true end
for name in text:gmatch("\nfunction dike%.store%.([%w_]+)%(") do store_declared[name] = true end
if text:find("\ndike%.store = ") then declared.store = true end
local module_block = assert(text:match("\n%-%-%-@class dike\n(.-)\nlocal dike = {}"), "no ---@class dike block")
for name in module_block:gmatch("%-%-%-@field ([%w_]+)") do declared[name] = true end
for class, name in text:gmatch("\nfunction ([%w_]+):([%w_]+)%(") do
    methods[class] = methods[class] or {}
    methods[class][name] = true
end

describe("types/dike.lua", function()
    it("is a ---@meta file for require('dike') that nothing loads", function()
        assert.equal("---@meta dike\n", text:sub(1, 14))
        local found = assert(package.searchpath("dike", package.path))
        assert.is_nil(found:find("types/", 1, true), found)
        assert.is_function((loadstring or load)(text, "@" .. PATH)) -- valid Lua
    end)

    it("declares every public field of require('dike')", function()
        local missing = {}
        for name in pairs(dike) do
            if not declared[name] then missing[#missing + 1] = name end
        end
        table.sort(missing)
        assert.same({}, missing)
    end)

    it("declares every function of dike.store (once it exists)", function()
        local missing = {}
        for name in pairs(type(dike.store) == "table" and dike.store or {}) do
            if not store_declared[name] then missing[#missing + 1] = name end
        end
        assert.same({}, missing)
        assert.is_true(store_declared.redis and store_declared.shared_dict)
    end)

    it("declares the methods of a task and of an array, and they exist", function()
        local t = dike.spawn(function() end)
        for _, name in ipairs({ "join", "cancel", "done" }) do
            assert.is_true(methods.Task[name], "Task:" .. name)
            assert.is_function(t[name], "task:" .. name)
        end
        local a = dike.array({ 1, 2 })
        for _, name in ipairs({ "get", "totable", "type", "width" }) do
            assert.is_true(methods.Array[name], "Array:" .. name)
            assert.is_function(a[name], "array:" .. name)
        end
        dike.run(function() t:join() end)
    end)

    it("defines every dike.* type its annotations use", function()
        local defined = { dike = true }
        for name in text:gmatch("%-%-%-@class (dike[%w_%.]*)") do defined[name] = true end
        for name in text:gmatch("%-%-%-@alias (dike[%w_%.]*)") do defined[name] = true end
        local undefined = {}
        for line in text:gmatch("[^\n]+") do
            local annotation = line:match("^%-%-%-@(%a+ .*)")
            if annotation and not annotation:match("^meta ") then
                -- Descriptions may name the module's functions (dike.now, dike.array): those
                -- are not types, anything else named dike.* must be one.
                for name in annotation:gmatch("(dike%.[%w_%.]*[%w_])") do
                    local field = name:match("^dike%.([%w_]+)$")
                    if not defined[name] and not (field and declared[field])
                        and not name:match("^dike%.store%.") then
                        undefined[#undefined + 1] = name .. " (" .. line .. ")"
                    end
                end
            end
        end
        assert.same({}, undefined)
    end)
end)
