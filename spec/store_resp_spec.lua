-- dike.store.resp: the RESP2 encoder and the incremental reply parser of dike's Redis client.
-- Unit cases, then property tests: random replies encoded by an independent encoder (as a
-- server would write them), cut into random pieces and fed as a socket delivers them, must
-- come back equal; random corruptions of valid streams must parse, wait for more, or raise a
-- "protocol error" string, never anything else.
local resp = require("dike.store.resp")

local null, ErrorReply = resp.null, resp.ErrorReply
local unpack = table.unpack or unpack -- luacheck: ignore 143

local function parse_all(s)
    local out, pos = {}, 1
    while pos <= #s do
        local v, np = resp.parse(s, pos)
        if v == nil then return out, pos end
        out[#out + 1] = v
        pos = np
    end
    return out, pos
end

describe("dike.store.resp.parse", function()
    it("reads each reply type", function()
        assert.same({ "OK", 6 }, { resp.parse("+OK\r\n") })
        assert.same({ 42, 6 }, { resp.parse(":42\r\n") })
        assert.same({ -7, 6 }, { resp.parse(":-7\r\n") })
        assert.same({ "hello", 12 }, { resp.parse("$5\r\nhello\r\n") })
        assert.same({ "", 7 }, { resp.parse("$0\r\n\r\n") })
        assert.equal(null, (resp.parse("$-1\r\n")))
        assert.equal(null, (resp.parse("*-1\r\n")))
        local a = resp.parse("*3\r\n:1\r\n$2\r\nab\r\n*0\r\n")
        assert.same({ 1, "ab", { n = 0 }, n = 3 }, a)
    end)

    it("keeps CR and LF inside bulk strings", function()
        assert.equal("a\r\nb", (resp.parse("$4\r\na\r\nb\r\n")))
    end)

    it("gives errors as ErrorReply values, also inside arrays", function()
        local e = resp.parse("-ERR wrong\r\n")
        assert.equal(ErrorReply, getmetatable(e))
        assert.equal("ERR wrong", e.message)
        assert.equal("ERR wrong", tostring(e))
        local a = resp.parse("*2\r\n-NOSCRIPT x\r\n:3\r\n")
        assert.equal("NOSCRIPT x", a[1].message)
        assert.equal(3, a[2])
    end)

    it("keeps nil elements of an array as resp.null, with n the count", function()
        local a = resp.parse("*3\r\n$-1\r\n:2\r\n*-1\r\n")
        assert.equal(3, a.n)
        assert.equal(null, a[1])
        assert.equal(2, a[2])
        assert.equal(null, a[3])
    end)

    it("returns nil for every proper prefix of a reply", function()
        local s = "*3\r\n$3\r\nfoo\r\n:12\r\n*2\r\n+a\r\n-b c\r\n"
        for i = 0, #s - 1 do
            assert.is_nil(resp.parse(s:sub(1, i)), "prefix of length " .. i)
        end
        local v, np = resp.parse(s)
        assert.equal(#s + 1, np)
        assert.equal("foo", v[1])
    end)

    it("starts at the position given", function()
        local s = ":1\r\n:2\r\n"
        assert.same({ 2, 9 }, { resp.parse(s, 5) })
        assert.same({ { 1, 2 }, 9 }, { parse_all(s) })
    end)

    local bad = {
        { "?x\r\n", "unknown reply type" },
        { "x", "unknown reply type" },
        { ":12a\r\n", "bad integer" },
        { ":\r\n", "bad integer" },
        { "$-2\r\n", "bad bulk length" },
        { "$abc\r\n", "bad bulk length" },
        { "$3\r\nabcXY", "bulk string not ended by CRLF" },
        { "*-5\r\n", "bad array length" },
        { "*1\r\n!\r\n", "unknown reply type" },
        { ":123456789012345678901\r\n", "bad integer" },
    }
    for _, case in ipairs(bad) do
        it(("refuses %s with a protocol error"):format(case[1]:gsub("\r", "\\r"):gsub("\n", "\\n")), function()
            local ok, err = pcall(resp.parse, case[1])
            assert.is_false(ok)
            assert.is_string(err)
            assert.truthy(err:find("^protocol error: " .. case[2]), err)
        end)
    end

    it("refuses arrays nested deeper than 32", function()
        local ok, err = pcall(resp.parse, ("*1\r\n"):rep(40) .. ":1\r\n")
        assert.is_false(ok)
        assert.truthy(err:find("nested too deep", 1, true))
        assert.equal(1, resp.parse(("*1\r\n"):rep(32) .. ":1\r\n")[1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]
            [1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1])
    end)
end)

describe("dike.store.resp.encode", function()
    it("writes arrays of bulk strings", function()
        assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n", resp.encode("SET", "k", 10))
        assert.equal("*1\r\n$0\r\n\r\n", resp.encode(""))
    end)

    it("writes integers without a fraction and fractions with 17 digits", function()
        assert.equal("*2\r\n$1\r\nx\r\n$2\r\n-3\r\n", resp.encode("x", -3))
        assert.equal("*1\r\n$3\r\n0.5\r\n", resp.encode(0.5))
        assert.equal(0.1, tonumber(resp.arg_string(0.1)))
        assert.equal(1 / 3, tonumber(resp.arg_string(1 / 3)))
        assert.equal("9007199254740992", resp.arg_string(2 ^ 53))
    end)

    it("refuses what Redis cannot read as an argument", function()
        assert.has_error(function() resp.encode("x", nil) end,
            "dike.store.redis: command arguments must be strings or numbers, got nil")
        assert.has_error(function() resp.encode({}) end,
            "dike.store.redis: command arguments must be strings or numbers, got table")
        assert.has_error(function() resp.encode(1 / 0) end, "dike.store.redis: cannot send the number inf to Redis")
        assert.has_error(function() resp.encode(0 / 0) end)
    end)

    it("round-trips through the parser as an array of the arguments' text", function()
        local v = resp.parse(resp.encode("EVALSHA", "abc", 2, "k\r\n1", -0.25))
        assert.same({ "EVALSHA", "abc", "2", "k\r\n1", "-0.25", n = 5 }, v)
    end)
end)

-- ----------------------------------------------------------------------------------- properties

-- A server's encoder, written apart from the parser.
local function server_encode(v)
    if v == null then return "$-1\r\n" end
    if getmetatable(v) == ErrorReply then return "-" .. v.message .. "\r\n" end
    if type(v) == "number" then return ":" .. string.format("%d", v) .. "\r\n" end
    if type(v) == "table" and v.simple then return "+" .. v.simple .. "\r\n" end
    if type(v) == "string" then return "$" .. #v .. "\r\n" .. v .. "\r\n" end
    local parts = { "*" .. v.n .. "\r\n" }
    for i = 1, v.n do parts[#parts + 1] = server_encode(v[i]) end
    return table.concat(parts)
end

-- What the parser gives for a generated value.
local function expected(v)
    if type(v) == "table" and v.simple then return v.simple end
    if type(v) == "table" and getmetatable(v) == nil then
        local out = { n = v.n }
        for i = 1, v.n do out[i] = expected(v[i]) end
        return out
    end
    return v
end

local function random_bytes(rand, n, line)
    local b = {}
    for i = 1, n do
        local c = rand(0, 255)
        if line and (c == 13 or c == 10) then c = 32 end
        b[i] = string.char(c)
    end
    return table.concat(b)
end

local function random_value(rand, depth)
    local kind = rand(1, depth < 4 and 7 or 5)
    if kind == 1 then return { simple = random_bytes(rand, rand(0, 12), true) } end
    if kind == 2 then return resp.error_reply(random_bytes(rand, rand(0, 12), true)) end
    if kind == 3 then return rand(-2 ^ 31, 2 ^ 31) * (rand(0, 1) == 1 and 1024 or 1) end
    if kind == 4 then return random_bytes(rand, rand(0, 40), false) end
    if kind == 5 then return null end
    local n = rand(0, 6)
    local a = { n = n }
    for i = 1, n do a[i] = random_value(rand, depth + 1) end
    return a
end

local function equal(a, b)
    if getmetatable(a) == ErrorReply or getmetatable(b) == ErrorReply then
        return getmetatable(a) == getmetatable(b) and a.message == b.message
    end
    if type(a) ~= "table" or a == null or b == null then return a == b end
    if type(b) ~= "table" or a.n ~= b.n then return false end
    for i = 1, a.n do
        if not equal(a[i], b[i]) then return false end
    end
    return true
end

-- A deterministic generator (the same cases on every interpreter and run).
local function lcg(seed)
    local state = seed
    return function(lo, hi)
        state = (state * 1103515245 + 12345) % 2147483648
        return lo + state % (hi - lo + 1)
    end
end

-- Feed `stream` in pieces as client_luv.lua does (keep the unparsed tail, append the next
-- chunk, parse from 1); returns the values.
local function feed(stream, cuts)
    local out, buf, pos, at = {}, "", 1, 1
    for _, cut in ipairs(cuts) do
        local chunk = stream:sub(at, cut)
        at = cut + 1
        if pos > #buf then buf = chunk else buf = buf:sub(pos) .. chunk end
        pos = 1
        while true do
            local v, np = resp.parse(buf, pos)
            if v == nil then break end
            out[#out + 1] = v
            pos = np
        end
    end
    return out, #buf - pos + 1
end

describe("dike.store.resp properties", function()
    it("parses 2,000 random reply streams cut at random places back to their values", function()
        local rand = lcg(20240601)
        for case = 1, 2000 do
            local values, parts = {}, {}
            for i = 1, rand(1, 5) do
                values[i] = random_value(rand, 0)
                parts[i] = server_encode(values[i])
            end
            local stream = table.concat(parts)
            local cuts = {}
            local at = 0
            while at < #stream do
                at = math.min(#stream, at + rand(1, 9))
                cuts[#cuts + 1] = at
            end
            local got, left = feed(stream, cuts)
            assert.equal(0, left, "case " .. case .. ": bytes left over")
            assert.equal(#values, #got, "case " .. case)
            for i = 1, #values do
                assert.is_true(equal(expected(values[i]), got[i]), "case " .. case .. " value " .. i)
            end
        end
    end)

    it("on 5,000 corrupted streams only parses, waits or raises a protocol error", function()
        local rand = lcg(77)
        local outcomes = { value = 0, wait = 0, protocol = 0 }
        for case = 1, 5000 do
            local s = server_encode(random_value(rand, 0))
            local b = { s:byte(1, -1) }
            for _ = 1, rand(1, 3) do
                local op = rand(1, 3)
                local i = rand(1, #b)
                if op == 1 then b[i] = rand(0, 255)
                elseif op == 2 then table.remove(b, i)
                else table.insert(b, i, rand(0, 255)) end
                if #b == 0 then b[1] = rand(0, 255) end
            end
            local mutated = string.char(unpack(b))
            local ok, v, np = pcall(resp.parse, mutated)
            if ok then
                if v == nil then
                    outcomes.wait = outcomes.wait + 1
                else
                    outcomes.value = outcomes.value + 1
                    assert.is_true(np >= 2 and np <= #mutated + 1, "case " .. case)
                end
            else
                assert.is_string(v, "case " .. case)
                assert.truthy(v:find("^protocol error: "), "case " .. case .. ": " .. tostring(v))
                outcomes.protocol = outcomes.protocol + 1
            end
        end
        -- every kind of outcome happened (the corruption reaches each path)
        assert.is_true(outcomes.value > 100 and outcomes.wait > 100 and outcomes.protocol > 100,
            ("values %d, waits %d, protocol errors %d"):format(outcomes.value, outcomes.wait, outcomes.protocol))
    end)
end)
