-- dike from plain coroutines, the way luvit's coro-* libraries are written: a small TCP echo
-- service on luv where every connection is handled by a coroutine that user code made with
-- coroutine.wrap (no dike.run, no dike.spawn). The handlers call a batched function, a
-- limit_jobs-guarded one and a retried one; dike suspends each coroutine while it waits and
-- resumes it from the loop. The loop is run by plain uv.run().
local uv = require("luv")
local dike = require("dike")

-- A "model" that answers many lines at once: upper-cases them.
local shout = dike.batch{ target_batch_size = 4, max_waiting_time = 0.005 }(function(lines)
    local out = {}
    for i = 1, #lines do out[i] = lines[i]:upper() end
    return out
end)

-- A backend that takes two requests at a time (the rest wait in a queue of 8) ...
local lookup = dike.limit_jobs{ limit = 2, queue = 8, name = "lookup" }(function(word)
    dike.sleep(0.002)
    return #word
end)

-- ... and fails the first time it sees a word: retried once.
local seen = {}
local count = dike.retry{ attempts = 2, delay = 0.001, logger = function() end }(function(word)
    if not seen[word] then
        seen[word] = true
        error("cold cache", 0)
    end
    return lookup(word)
end)

-- coro-net style: read one line from a TCP stream by waiting for luv's read callback.
local function read_line(stream)
    local co = coroutine.running()
    stream:read_start(function(err, data)
        stream:read_stop()
        assert(coroutine.resume(co, err, data))
    end)
    return coroutine.yield()
end

local server = uv.new_tcp()
server:bind("127.0.0.1", 0)
server:listen(16, function()
    local client = uv.new_tcp()
    server:accept(client)
    coroutine.wrap(function()
        local _, line = read_line(client)
        local word = line:gsub("%s+$", "")
        local reply = ("%s %d"):format(shout({ word })[1], count(word))
        client:write(reply .. "\n", function() client:close() end)
    end)()
end)
local port = server:getsockname().port

print("== plain coroutines (coroutine.wrap) on a luv loop call dike: batch, limit_jobs, retry")
local words = { "dike", "batch", "limit", "retry", "luv", "coroutine" }
local replies, left = {}, #words
for i, word in ipairs(words) do
    local conn = uv.new_tcp()
    conn:connect("127.0.0.1", port, function()
        coroutine.wrap(function()
            conn:write(word .. "\n")
            local _, data = read_line(conn)
            replies[i] = data:gsub("%s+$", "")
            conn:close()
            left = left - 1
            if left == 0 then server:close() end
        end)()
    end)
end
uv.run()
for i, word in ipairs(words) do print(("%-10s -> %s"):format(word, replies[i])) end
local b, l, r = dike.stats(shout), dike.stats(lookup), dike.stats(count)
print(("-- %d lines in %d batches; lookup: %d calls, none rejected: %s; retry: %d retries"):format(
    b.calls, b.batches, l.calls, tostring(l.rejected == 0), r.retries))
