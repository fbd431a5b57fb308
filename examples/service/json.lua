--- Just enough JSON for the demo service: encode tables of strings, numbers and booleans
-- (a table with t[1] ~= nil, or the empty table `json.array`, is an array; keys sorted, so
-- output is stable), and decode what it encodes (for the load script and the tests).
local type, pairs, tostring, tonumber, format, concat, sort, floor =
    type, pairs, tostring, tonumber, string.format, table.concat, table.sort, math.floor
local huge = math.huge

local M = {}

M.array = setmetatable({}, { __newindex = function() error("json.array is read-only") end })

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return ESC[c] or format("\\u%04x", c:byte())
    end) .. '"'
end

local function number(n)
    if n ~= n or n == huge or n == -huge then return "null" end
    if n == floor(n) and n > -2 ^ 53 and n < 2 ^ 53 then return format("%d", n) end
    local short = format("%.14g", n)
    if tonumber(short) == n then return short end
    return format("%.17g", n)
end

local encode
local function value(v, out)
    local tv = type(v)
    if tv == "string" then
        out[#out + 1] = quote(v)
    elseif tv == "number" then
        out[#out + 1] = number(v)
    elseif tv == "boolean" then
        out[#out + 1] = tostring(v)
    elseif tv == "table" and v ~= M.null then
        encode(v, out)
    else
        out[#out + 1] = "null"
    end
end

function encode(t, out)
    if t == M.array or t[1] ~= nil then
        out[#out + 1] = "["
        for i = 1, #t do
            if i > 1 then out[#out + 1] = "," end
            value(t[i], out)
        end
        out[#out + 1] = "]"
        return
    end
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(k)
        out[#out + 1] = ":"
        local v = t[k]
        if v == nil then v = t[tonumber(k)] end
        value(v, out)
    end
    out[#out + 1] = "}"
end

--- Encode a value (tables nest; functions and nil become null).
function M.encode(v)
    local out = {}
    value(v, out)
    return concat(out)
end

--- Decode a JSON text; returns the value, or nil and a message.
function M.decode(s)
    local pos = 1
    local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
    local parse
    local function str()
        local out, i = {}, pos + 1
        while true do
            local c = s:sub(i, i)
            if c == "" then error("unterminated string") end
            if c == '"' then break end
            if c == "\\" then
                local e = s:sub(i + 1, i + 1)
                if e == "u" then
                    local code = tonumber(s:sub(i + 2, i + 5), 16) or error("bad \\u escape")
                    out[#out + 1] = code < 128 and string.char(code) or "?"
                    i = i + 6
                else
                    local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
                    out[#out + 1] = map[e] or e
                    i = i + 2
                end
            else
                out[#out + 1] = c
                i = i + 1
            end
        end
        pos = i + 1
        return concat(out)
    end
    function parse()
        ws()
        local c = s:sub(pos, pos)
        if c == "{" then
            local t = {}
            pos = pos + 1
            ws()
            if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
            while true do
                ws()
                if s:sub(pos, pos) ~= '"' then error("expected a key at " .. pos) end
                local k = str()
                ws()
                if s:sub(pos, pos) ~= ":" then error("expected ':' at " .. pos) end
                pos = pos + 1
                t[k] = parse()
                ws()
                local d = s:sub(pos, pos)
                pos = pos + 1
                if d == "}" then return t end
                if d ~= "," then error("expected ',' or '}' at " .. (pos - 1)) end
            end
        elseif c == "[" then
            local t = {}
            pos = pos + 1
            ws()
            if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
            while true do
                t[#t + 1] = parse()
                ws()
                local d = s:sub(pos, pos)
                pos = pos + 1
                if d == "]" then return t end
                if d ~= "," then error("expected ',' or ']' at " .. (pos - 1)) end
            end
        elseif c == '"' then
            return str()
        end
        local lit = s:match("^%-?%d+%.?%d*[eE]?[-+]?%d*", pos)
        if lit and lit ~= "" then
            pos = pos + #lit
            return tonumber(lit) or error("bad number " .. lit)
        end
        for word, v in pairs({ ["true"] = true, ["false"] = false, null = M.null }) do
            if s:sub(pos, pos + #word - 1) == word then
                pos = pos + #word
                return v
            end
        end
        error("unexpected character at " .. pos)
    end
    local ok, v = pcall(function()
        local r = parse()
        ws()
        if pos <= #s then error("trailing characters at " .. pos) end
        return r
    end)
    if ok then return v end
    return nil, v
end

--- What null decodes to (a unique sentinel, so tables keep their keys).
M.null = setmetatable({}, { __tostring = function() return "null" end })

return M
