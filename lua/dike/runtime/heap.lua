--- A binary min-heap of timer entries keyed by their deadline `at`.
-- Each entry remembers its index (`idx`, 0 when not in the heap), so removal is
-- O(log n): a cancelled timer leaves nothing behind.
local floor = math.floor

local M = {}
M.__index = M

function M.new()
    return setmetatable({ n = 0 }, M)
end

local function swap(h, i, j)
    local a, b = h[i], h[j]
    h[i], h[j] = b, a
    a.idx, b.idx = j, i
end

local function up(h, i)
    while i > 1 do
        local p = floor(i / 2)
        if h[p].at <= h[i].at then return end
        swap(h, i, p)
        i = p
    end
end

local function down(h, i)
    local n = h.n
    while true do
        local l = 2 * i
        if l > n then return end
        local m = l
        if l < n and h[l + 1].at < h[l].at then m = l + 1 end
        if h[i].at <= h[m].at then return end
        swap(h, i, m)
        i = m
    end
end

function M:push(e)
    local n = self.n + 1
    self.n = n
    self[n] = e
    e.idx = n
    up(self, n)
end

function M:peek()
    return self[1]
end

--- Remove `e` (no effect when it is not in the heap).
function M:remove(e)
    local i = e.idx
    if not i or i == 0 then return end
    local n = self.n
    e.idx = 0
    if i ~= n then
        local last = self[n]
        self[i] = last
        last.idx = i
        self[n] = nil
        self.n = n - 1
        up(self, i)
        down(self, last.idx)
    else
        self[n] = nil
        self.n = n - 1
    end
end

return M
