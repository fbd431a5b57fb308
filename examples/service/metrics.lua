--- GET /metrics for the demo service: Prometheus' text format (version 0.0.4), fed by
-- dike's events (dike.on_event: what happened, counted as it happens) and dike.stats (the
-- counters and gauges of every wrapper, read at scrape time).
--
--   dike_events_total{tool,name,event[,reason]}          every event, by kind
--   dike_circuit_breaker_transitions_total{name,from,to}  state changes of the breakers
--   dike_<tool>_<counter>_total{name} / dike_<tool>_<gauge>{name}   dike.stats of each layer
--   dike_circuit_breaker_state{name,state}                1 for the breaker's state, else 0
--   demo_http_responses_total{code}, demo_model_*_total, demo_lua_heap_bytes
--
-- One observer per process (dike.on_event installs one; the demo owns its process): it feeds
-- every live registry, so several services in one process (the specs, `make demo`) each
-- count their own events.
local dike = require("dike")

local format, concat, sort, pairs, ipairs, tostring, type =
    string.format, table.concat, table.sort, pairs, ipairs, tostring, type

local M = {}

local registries = setmetatable({}, { __mode = "k" })

local function observe(e)
    for r in pairs(registries) do r:count(e) end
end

-- Counters in dike.stats: monotonic (exported as *_total); everything else is a gauge.
local COUNTERS = { calls = true, rejected = true, retries = true, failures = true, batches = true,
                   slow = true, opened = true, timeouts = true, deduplicated = true, admitted = true,
                   delayed = true, budget_refused = true, refused = true, store_errors = true,
                   fallback_calls = true }
local STATES = { "closed", "open", "half_open", "isolated" }

local function escape(v)
    return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- `{k="v",...}` from a list of key, value pairs (in that order).
local function labels(...)
    local parts = {}
    local args = { ... }
    for i = 1, #args, 2 do parts[#parts + 1] = args[i] .. '="' .. escape(args[i + 1]) .. '"' end
    return "{" .. concat(parts, ",") .. "}"
end

local Registry = {}
Registry.__index = Registry

--- Count one event (the observer calls this for every live registry).
function Registry:count(e)
    local key = labels("tool", e.tool, "name", e.name, "event", e.event,
                       type(e.reason) == "string" and "reason" or nil, e.reason)
    self.events[key] = (self.events[key] or 0) + 1
    if e.tool == "circuit_breaker" and e.event == "state" then
        local k = labels("name", e.name, "from", e.from, "to", e.to)
        self.transitions[k] = (self.transitions[k] or 0) + 1
    end
end

local function sorted_keys(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    sort(ks)
    return ks
end

--- The text of a scrape. `layers` lists { tool = "limit_jobs", name = "predict", stats = {...} }
--- (dike.stats of each wrapper); `extra` is a list of { name, type, help, { {labels, value}, ... } }.
function Registry:render(layers, extra)
    local out = {}
    local function family(name, kind, help, samples)
        if #samples == 0 then return end
        out[#out + 1] = "# HELP " .. name .. " " .. help
        out[#out + 1] = "# TYPE " .. name .. " " .. kind
        for _, s in ipairs(samples) do out[#out + 1] = name .. s[1] .. " " .. format("%.17g", s[2]) end
    end
    local ev = {}
    for _, k in ipairs(sorted_keys(self.events)) do ev[#ev + 1] = { k, self.events[k] } end
    family("dike_events_total", "counter", "Events reported by dike.on_event.", ev)
    local tr = {}
    for _, k in ipairs(sorted_keys(self.transitions)) do tr[#tr + 1] = { k, self.transitions[k] } end
    family("dike_circuit_breaker_transitions_total", "counter", "Circuit breaker state changes.", tr)

    -- dike.stats: one family per tool and counter, a sample per wrapper
    local families, order = {}, {}
    for _, layer in ipairs(layers) do
        for counter, v in pairs(layer.stats) do
            if type(v) == "number" then
                local total = COUNTERS[counter]
                local name = "dike_" .. layer.tool .. "_" .. counter .. (total and "_total" or "")
                local f = families[name]
                if not f then
                    f = { kind = total and "counter" or "gauge", samples = {},
                          help = format("dike.stats(%s).%s.", layer.tool, counter) }
                    families[name] = f
                    order[#order + 1] = name
                end
                f.samples[#f.samples + 1] = { labels("name", layer.name), v }
            elseif counter == "state" then
                local name = "dike_" .. layer.tool .. "_state"
                local f = families[name]
                if not f then
                    f = { kind = "gauge", samples = {}, help = "1 for the breaker's current state, else 0." }
                    families[name] = f
                    order[#order + 1] = name
                end
                for _, s in ipairs(STATES) do
                    f.samples[#f.samples + 1] = { labels("name", layer.name, "state", s), v == s and 1 or 0 }
                end
            end
        end
    end
    sort(order)
    for _, name in ipairs(order) do
        local f = families[name]
        family(name, f.kind, f.help, f.samples)
    end
    for _, x in ipairs(extra or {}) do
        local samples = {}
        for _, s in ipairs(x[4]) do samples[#samples + 1] = { s[1], s[2] } end
        family(x[1], x[2], x[3], samples)
    end
    return concat(out, "\n") .. "\n"
end

M.labels = labels

--- A registry counting every event from now on (kept while referenced).
function M.new()
    local r = setmetatable({ events = {}, transitions = {} }, Registry)
    registries[r] = true
    dike.on_event(observe) -- (again: something else may have replaced it meanwhile)
    return r
end

return M
