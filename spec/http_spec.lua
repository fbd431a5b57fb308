-- examples/service/http.lua: the demo service's HTTP/1.1 parser (careful, not lenient).
local http = require("service.http")
local unpack = table.unpack or unpack -- luacheck: ignore 143

local function parse_all(kind, bytes, limits, chunk)
    local p = http.parser(kind, limits)
    local msgs = {}
    local i = 1
    chunk = chunk or #bytes
    while i <= #bytes do
        p:feed(bytes:sub(i, i + chunk - 1))
        i = i + chunk
        while true do
            local m, err = p:next()
            if err then return msgs, err end
            if not m then break end
            msgs[#msgs + 1] = m
        end
    end
    return msgs, nil, p
end

local function status_of(bytes, limits)
    local msgs, err = parse_all("request", bytes, limits)
    if err then return err.status end
    return #msgs == 1 and "ok" or ("%d messages"):format(#msgs)
end

local GET = "GET /predict?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n"

describe("http parser: requests", function()
    it("parses a request line, headers (names lower-cased) and keep-alive", function()
        local msgs = parse_all("request", GET)
        assert.are.equal(1, #msgs)
        local m = msgs[1]
        assert.are.same({ "GET", "/predict?x=1", "1.1", "a", "t", true, "" },
                        { m.method, m.target, m.version, m.headers.host, m.headers["user-agent"],
                          m.keep_alive, m.body })
    end)

    it("gives the same result fed one byte at a time", function()
        local whole = parse_all("request", GET)
        local bytewise = parse_all("request", GET, nil, 1)
        assert.are.same(whole, bytewise)
    end)

    it("returns pipelined requests one at a time, in order", function()
        local two = GET .. "GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        local msgs = parse_all("request", two)
        assert.are.equal(2, #msgs)
        assert.are.same({ "/predict?x=1", true, "/b", false },
                        { msgs[1].target, msgs[1].keep_alive, msgs[2].target, msgs[2].keep_alive })
    end)

    it("accepts bare LF line ends and skips empty lines before a request", function()
        local msgs = parse_all("request", "\r\n\nGET / HTTP/1.1\nHost: a\n\n")
        assert.are.equal(1, #msgs)
        assert.are.equal("/", msgs[1].target)
    end)

    it("keep-alive: HTTP/1.1 unless Connection: close; HTTP/1.0 only with keep-alive", function()
        local function ka(req) return parse_all("request", req)[1].keep_alive end
        assert.is_true(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        assert.is_false(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Close\r\n\r\n"))
        assert.is_false(ka("GET / HTTP/1.0\r\n\r\n"))
        assert.is_true(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    end)

    it("reads a Content-Length body, and a chunked one with extensions and trailers", function()
        local m = parse_all("request", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET")[1]
        assert.are.equal("hello", m.body)
        local chunked = "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            .. "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
        for _, size in ipairs({ #chunked, 1, 3 }) do
            local msgs, err = parse_all("request", chunked, nil, size)
            assert.is_nil(err)
            assert.are.equal("hello world", msgs[1].body)
        end
    end)

    it("joins repeated headers with a comma", function()
        local m = parse_all("request", "GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\nAccept: y\r\n\r\n")[1]
        assert.are.equal("x, y", m.headers.accept)
    end)

    local bad = {
        { "no version", "GET /\r\n\r\n", 400 },
        { "two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "lower-case protocol", "GET / http/1.1\r\nHost: a\r\n\r\n", 400 },
        { "a method that is not a token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "a target that is not a path", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "a control character in the target", "GET /\1 HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505 },
        { "HTTP/10.0", "GET / HTTP/10.0\r\nHost: a\r\n\r\n", 505 },
        { "space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
        { "obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400 },
        { "a header line without colon", "GET / HTTP/1.1\r\nHost: a\r\nnonsense\r\n\r\n", 400 },
        { "a control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400 },
        { "a bare CR", "GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400 },
        { "HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400 },
        { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
        { "conflicting Content-Length",
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400 },
        { "Content-Length with Transfer-Encoding",
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
        { "a negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400 },
        { "an unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
        { "a bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
    }
    for _, case in ipairs(bad) do
        it("answers " .. case[3] .. " to " .. case[1], function()
            assert.are.equal(case[3], status_of(case[2]))
        end)
    end

    it("431 for a header section over max_head, 414 for a request line over it", function()
        local big = "GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("v"):rep(9000) .. "\r\n\r\n"
        assert.are.equal(431, status_of(big))
        assert.are.equal(414, status_of("GET /" .. ("a"):rep(9000)))
        -- Even before the head is complete: no unbounded buffering.
        local p = http.parser("request")
        p:feed("GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("v"):rep(9000))
        local m, err = p:next()
        assert.is_nil(m)
        assert.are.equal(431, err.status)
    end)

    it("431 for too many header fields, 413 for a body over max_body", function()
        local many = { "GET / HTTP/1.1\r\nHost: a\r\n" }
        for i = 1, 70 do many[#many + 1] = "X-" .. i .. ": 1\r\n" end
        assert.are.equal(431, status_of(table.concat(many) .. "\r\n"))
        assert.are.equal(413, status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
                                        { max_body = 10 }))
    end)

    it("stays failed after an error", function()
        local p = http.parser("request")
        p:feed("BAD\r\n\r\n")
        local _, e1 = p:next()
        p:feed(GET)
        local m, e2 = p:next()
        assert.is_nil(m)
        assert.are.equal(e1, e2)
    end)
end)

describe("http parser: responses and targets", function()
    it("parses a status line and a Content-Length body", function()
        local m = parse_all("response", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}")[1]
        assert.are.same({ 503, "Service Unavailable", "{}" }, { m.status, m.reason, m.body })
    end)

    it("completes a response delimited by the close", function()
        local p = http.parser("response")
        p:feed("HTTP/1.0 200 OK\r\n\r\nall of it")
        assert.is_nil(p:next())
        assert.are.equal("all of it", p:close().body)
    end)

    it("splits a target into a decoded path and query parameters", function()
        local path, q = http.split_target("/a%20b?x=1&y=a+b&x=2&z=%41&flag")
        assert.are.equal("/a b", path)
        assert.are.same({ x = "1", y = "a b", z = "A", flag = "" }, q)
        assert.are.equal("/p", (http.split_target("http://host:80/p?x=1")))
        assert.is_nil((http.split_target("/a%2")))
        assert.is_nil((http.split_target("/a?x=%zz")))
    end)

    it("writes a response with Content-Length and the Connection header it needs", function()
        assert.are.equal("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
                         http.response(200, { { "Content-Type", "text/plain" } }, "hi", true, "1.1"))
        assert.are.equal("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                         http.response(503, {}, "", false))
        assert.are.equal("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
                         http.response(200, {}, "", true, "1.0"))
    end)
end)

describe("http parser: garbage", function()
    local ERRORS = { [400] = true, [413] = true, [414] = true, [431] = true, [501] = true, [505] = true }

    -- Feed `bytes` in random chunks: it must never raise, and only fail with a listed status.
    local function survives(bytes, random)
        local p = http.parser("request", { max_head = 512, max_body = 4096 })
        local i = 1
        while i <= #bytes do
            local n = random(1, 64)
            p:feed(bytes:sub(i, i + n - 1))
            i = i + n
            for _ = 1, 100 do
                local m, err = p:next()
                if err then
                    assert(ERRORS[err.status], "unexpected status " .. tostring(err.status))
                    assert.are.equal("string", type(err.message))
                    return
                end
                if not m then break end
                assert.are.equal("string", type(m.method))
            end
        end
        p:close()
    end

    it("random bytes never make it raise (2000 seeded inputs)", function()
        math.randomseed(12345)
        local random = math.random
        for _ = 1, 2000 do
            local len = random(0, 600)
            local t = {}
            for j = 1, len do t[j] = string.char(random(0, 255)) end
            survives(table.concat(t), random)
        end
    end)

    it("valid requests with random bytes changed never make it raise (2000 seeded inputs)", function()
        math.randomseed(54321)
        local random = math.random
        local base = GET .. "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        local alphabet = "\r\n :;/?%0aAzZ\0\t\255"
        for _ = 1, 2000 do
            local b = { base:byte(1, -1) }
            for _ = 1, random(1, 6) do
                local k = random(1, #alphabet)
                b[random(1, #b)] = alphabet:byte(k)
            end
            survives(string.char(unpack(b)), random)
        end
    end)
end)
