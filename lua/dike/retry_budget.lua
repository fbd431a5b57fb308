--- dike.retry_budget: a token bucket shared by retry wrappers, against retry storms (gRPC's
-- retryThrottling). It holds `max_tokens` tokens and starts full; every retryable failure of
-- an attempt takes 1 (not below 0), every attempt that succeeds gives back `token_ratio` (at
-- most up to max_tokens). A retry is started only while tokens > max_tokens / 2: when most
-- attempts fail, the budget drains and the wrappers stop multiplying the load by retrying,
-- while a healthy service refills it long before it matters.
local options = require("dike.options")
local stats = require("dike.stats")

local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget

local M = {}

local FNAME = "dike.retry_budget"
local OPTIONS = { max_tokens = true, token_ratio = true }

-- A budget is a handle { _state = S } (what users hold and pass to dike.retry); its state S
-- holds the tokens. dike.stats' registry maps the handle to S weakly by key, and S never
-- refers to the handle: a value that referred to its own key would keep it alive on LuaJIT,
-- whose weak tables are not ephemerons.
local Budget = { __name = "dike.retry_budget" }
Budget.__index = Budget

function Budget:__tostring()
    local S = rawget(self, "_state")
    return ("dike.retry_budget(tokens=%g/%g)"):format(S.tokens, S.max_tokens)
end

local State = {}
State.__index = State

function State:snapshot()
    return { tokens = self.tokens, refused = self.refused }
end

--- Make a retry budget (the `budget` option of dike.retry).
---@param opts? {max_tokens?: number, token_ratio?: number}
---@return table budget
function M.retry_budget(opts)
    opts = options.table(FNAME, opts, OPTIONS, true)
    local max_tokens = options.number(FNAME, opts, "max_tokens", true, false, 10)
    local ratio = options.number(FNAME, opts, "token_ratio", true, false, 0.1)
    local S = setmetatable({ tokens = max_tokens, max_tokens = max_tokens, ratio = ratio,
                             threshold = max_tokens / 2, refused = 0 }, State)
    local B = setmetatable({ _state = S }, Budget)
    stats.register(B, S)
    return B
end

--- The state of `v` if it is a budget made by retry_budget, else nil. The functions below
--- take that state.
function M.state_of(v)
    return getmetatable(v) == Budget and rawget(v, "_state") or nil
end

--- An attempt failed in a way that is retried: take a token.
function M.failed(S)
    local t = S.tokens - 1
    S.tokens = t > 0 and t or 0
end

--- An attempt succeeded: give back token_ratio.
function M.succeeded(S)
    local t = S.tokens + S.ratio
    S.tokens = t < S.max_tokens and t or S.max_tokens
end

--- Whether a retry may start now; counts a refusal.
function M.allows(S)
    if S.tokens > S.threshold then return true end
    S.refused = S.refused + 1
    return false
end

return M
