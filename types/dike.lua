---@meta dike
-- LuaCATS type definitions of dike's public API, for editors that run lua-language-server
-- (completion, hover, type checks). Never loaded at run time: this file is not on any module
-- path and is not installed as a module. Point your editor at this folder, e.g. in your
-- project's .luarc.json: { "workspace.library": ["/path/to/dike/types"] } (a luarocks install
-- keeps a copy in the rock's directory: `luarocks show dike` names it). The reference pages in
-- docs/ say what each function does; this file says what it takes and returns.
-- spec/types_spec.lua checks that every public field of require("dike") is declared here.

---------------------------------------------------------------------------------------------------
-- Shared shapes

---@alias dike.LogLevel "debug"|"info"|"warning"|"error"

--- A logger: called with a level and a one-line (or multi-line, with a traceback) message.
---@alias dike.Logger fun(level: dike.LogLevel, message: string)

--- Which errors count: an error class (errors whose metatable is it), a Lua pattern matched
--- against tostring(err), a predicate, or a list of these (a table t with t[1] ~= nil).
---@alias dike.ErrorMatcher dike.ErrorClass|string|fun(err: any): boolean
---@alias dike.ExceptionTypes dike.ErrorMatcher|dike.ErrorMatcher[]

--- What every wrapping tool returns: a decorator that wraps a function; the wrapped function
--- takes the same arguments and returns what `fn` returns.
---@alias dike.Decorator fun(fn: function): function

---------------------------------------------------------------------------------------------------
-- Errors

--- An error class: `getmetatable(e) == Class` for every error `e` of it.
---@class dike.ErrorClass
local ErrorClass = {}

--- Whether `e` is an error of this class.
---@param e any
---@return boolean
function ErrorClass.is(e) end

--- An error dike raises: `tostring(e) == e.message`.
---@class dike.Error
---@field message string

--- A call found no free slot and no room in the queue, or its queue time ran out:
--- `Too many calls to function <name>! limit=<limit> exceeded`.
---@class dike.TooManyCalls: dike.Error

--- A batch outlived `max_processing_time`, or (v2) a call outlived `dike.timeout`'s `seconds`.
---@class dike.TimeoutError: dike.Error

--- Raised where a cancelled task waits.
---@class dike.CancelledError: dike.Error

--- (v2) A rate limiter refused the call: `Rate limit exceeded for function <name>! rate=<rate>/<per>s`.
---@class dike.RateLimited: dike.Error
---@field retry_after number seconds until a call of the same cost could pass

--- (v2) A circuit breaker is open, half-open without a free trial, or isolated.
---@class dike.CircuitOpen: dike.Error
---@field retry_after number seconds until it lets trial calls through (math.huge when isolated)

---------------------------------------------------------------------------------------------------
-- Tasks

---@class dike.Task
local Task = {}

--- From another coroutine: wait until the task ends; its values, or its error raised again.
---@return any ...
function Task:join() end

--- Takes effect on dike's bookkeeping at once (queue places, batch rows);
--- `dike.CancelledError` is raised where the task waits. No effect on a finished task.
function Task:cancel() end

--- Whether the task has ended (returned or raised).
---@return boolean
function Task:done() end

--- What `dike.gather` returns: `results[i]` is item i's first value (or its error with
--- `return_errors`); `n` is the number of items, so nil results leave safe holes.
---@class dike.GatherResults
---@field n integer
---@field [integer] any

---@class dike.GatherOptions
---@field return_errors? boolean put an item's error in its place instead of raising it

---------------------------------------------------------------------------------------------------
-- retry

---@class dike.RetryOptions
---@field attempts? integer total calls, first included (>= 1, or math.huge); nil = unlimited
---@field exception_types? dike.ExceptionTypes which errors are retried (default: all but CancelledError)
---@field delay? number seconds before the first retry (>= 0; default 0)
---@field backoff? number multiplier of each following delay (> 0; default 1)
---@field max_delay? number cap on one delay (seconds, > 0)
---@field jitter? "none"|"full"|"equal"|"decorrelated" default "none"
---@field max_elapsed? number raise the last error once elapsed time + the next delay would reach this
---@field log_exception_info? boolean append the caught error's traceback to the warning (default true)
---@field logger? dike.Logger this wrapper's logger (default: dike's)
---@field seed? integer seed of the jitter PRNG, for reproducible delays (extension)
---@field retry_if_result? fun(...): boolean (v2) true makes this return a failure to retry
---@field delay_from? fun(err: any): number? (v2) server pushback: this retry's delay, or nil for the computed one
---@field budget? dike.RetryBudget (v2) a retry budget shared by several wrappers

---@class dike.RetryBudgetOptions
---@field max_tokens? number tokens held (default 10; starts full)
---@field token_ratio? number tokens a success gives back (default 0.1)

--- (v2) A retry budget: retries start only while tokens > max_tokens / 2.
---@class dike.RetryBudget

---------------------------------------------------------------------------------------------------
-- limit_jobs

---@class dike.LimitJobsOptions
---@field limit integer calls allowed to run at once (>= 0, or math.huge)
---@field queue? integer callers that may wait (FIFO) for a slot (default 0: reject at once)
---@field queue_timeout? number seconds a queued caller waits before it is rejected
---@field name? string name in messages (default: `<source>:<line>` of fn); the shared key with a store
---@field store? dike.Store (v2) share the slots with every process using this store and name
---@field lease? number (v2, with a store) seconds a slot lives unless renewed (default: the store's)

--- A limiter: all functions it wraps share its slots.
---@alias dike.Limiter fun(fn: function): function

---------------------------------------------------------------------------------------------------
-- batch

---@class dike.BatchOptions
---@field target_batch_size integer rows that send a batch at once (>= 1)
---@field max_waiting_time number seconds after a batch's first call at which it is sent anyway (> 0)
---@field max_processing_time? number seconds the function may take for one batch (default 10)
---@field argument_type? "list"|"array" Lua sequences (default) or dike.array arguments
---@field max_batch_size? integer hard cap on rows per batch (>= target_batch_size); calls are never split
---@field max_concurrent_batches? integer (v2) batches of this function running at once (>= 1); a due batch waits
---@field key? fun(...): any (v2, list mode) dedup key of one row's values; equal keys are sent once

--- A row's failure inside a batch's result (see `dike.fail`).
---@class dike.Failure

---------------------------------------------------------------------------------------------------
-- dike.array

---@alias dike.ElemType "double"|"float"|"int32"|"int64"|"uint8"

--- A typed array of the C core: rows of `width` elements. `#a` is the number of rows; `a[i]`
--- (width 1 only) is element i, 1-based; out of range raises.
---@class dike.Array
---@operator len: integer
---@field [integer] number
local Array = {}

--- One element (1-based); out of range raises.
---@param row integer
---@param col integer
---@return number
function Array:get(row, col) end

--- A flat Lua sequence of all elements.
---@return number[]
function Array:totable() end

--- The element type.
---@return dike.ElemType
function Array:type() end

--- Elements per row.
---@return integer
function Array:width() end

---------------------------------------------------------------------------------------------------
-- rate_limit (v2)

---@class dike.RateLimitOptions
---@field rate number cost units admitted per `per` seconds on average (> 0)
---@field per? number seconds (> 0; default 1)
---@field burst? number units that may pass at once after an idle period (default max(1, floor(rate)))
---@field max_wait? number seconds a call may wait for its turn (default 0: never wait; math.huge: always)
---@field cost? number|fun(...): number units one call uses (default 1)
---@field name? string name in messages; the shared key with a store
---@field store? dike.Store share the budget with every process using this store and name (name required)

--- A rate limiter: call it with a function to wrap it; all functions it wraps share its budget.
---@class dike.RateLimiter
---@overload fun(fn: function): function
local RateLimiter = {}

--- Wait for (or be refused) `cost` units exactly like a call, for code that is not a function.
---@param cost? number default 1
function RateLimiter:acquire(cost) end

--- Take `cost` units now if they are free; never waits for a turn (with a Redis store it waits
--- for the store's answer: call it in a coroutine).
---@param cost? number default 1
---@return boolean ok
---@return number retry_after 0 when ok, else the seconds until they would be free
function RateLimiter:try(cost) end

---------------------------------------------------------------------------------------------------
-- circuit_breaker (v2)

---@alias dike.BreakerState "closed"|"open"|"half_open"|"isolated"

---@class dike.CircuitBreakerOptions
---@field failure_rate? number open when failures / calls over the window >= this (default 0.5)
---@field window? integer the last `window` finished calls (default 20)
---@field window_seconds? number instead of `window`: the calls that finished in the last seconds
---@field minimum_calls? integer no decision before the window holds this many calls (default 10)
---@field slow_call_seconds? number a call taking longer counts as slow
---@field slow_call_rate? number with slow_call_seconds: open when slow / calls >= this (default 1)
---@field open_for? number seconds open before trial calls (default 30)
---@field open_backoff? number open_for multiplier each time it reopens from half-open (default 1)
---@field max_open_for? number cap for open_backoff
---@field half_open_calls? integer trial calls admitted while half-open (default 1)
---@field exception_types? dike.ExceptionTypes which errors are failures (default: all but CancelledError)
---@field name? string name in messages; the shared key with a store
---@field store? dike.Store share the state and window with every process using this store and name (name required)
---@field clock? fun(): number (extension) the breaker's clock in seconds (default dike.now), for tests and simulations; not with a store

--- A circuit breaker: call it with a function to wrap it; all functions it wraps share its state.
---@class dike.CircuitBreaker
---@overload fun(fn: function): function
local CircuitBreaker = {}

--- The state. With a store: the shared state (one round trip; with Redis, in a coroutine), or
--- while the store fails the state calls get under its on_failure policy.
---@return dike.BreakerState
function CircuitBreaker:state() end

--- Force it open until `reset()`: calls raise `dike.CircuitOpen` (retry_after = math.huge).
--- With a store: for every process; true, or false and the store's message when it failed (then
--- only this process's local breaker is isolated).
---@return boolean? ok
---@return string? message
function CircuitBreaker:isolate() end

--- Close it with an empty window. With a store: for every process; true, or false and a message.
---@return boolean? ok
---@return string? message
function CircuitBreaker:reset() end

---------------------------------------------------------------------------------------------------
-- timeout (v2)

---@class dike.TimeoutOptions
---@field seconds number the call raises dike.TimeoutError after this (> 0)
---@field name? string name in messages

---------------------------------------------------------------------------------------------------
-- Events (v2)

---@alias dike.Tool "retry"|"limit_jobs"|"batch"|"rate_limit"|"circuit_breaker"|"timeout"

--- What an event observer receives. `tool`, `name`, `event` and `time` are always there; the
--- other fields belong to the events named beside them.
---@class dike.Event
---@field tool dike.Tool
---@field name string the wrapper's name
---@field event string e.g. "retry", "give_up", "queued", "rejected", "sent", "done", "timeout", "delayed", "state"
---@field time number dike.now() when it happened
---@field attempt? integer retry, give_up
---@field delay? number retry
---@field error? any retry, give_up
---@field reason? string limit_jobs rejected ("full", "queue_timeout"); batch sent ("size", "time", "cap", "flush")
---@field rows? integer batch sent, done, timeout
---@field calls? integer batch sent
---@field seconds? number batch done; timeout timeout
---@field ok? boolean batch done
---@field wait? number rate_limit delayed
---@field retry_after? number rate_limit rejected
---@field from? dike.BreakerState circuit_breaker state
---@field to? dike.BreakerState circuit_breaker state

---@alias dike.Observer fun(event: dike.Event)

---------------------------------------------------------------------------------------------------
-- Stores (v2)

--- Where limit_jobs, rate_limit and circuit_breaker keep state shared across processes.
---@class dike.Store

---@class dike.RedisStoreOptions
---@field host? string
---@field port? integer
---@field path? string a Unix socket instead of host and port
---@field password? string
---@field username? string with password: AUTH username password (Redis ACLs)
---@field db? integer
---@field prefix? string key prefix
---@field timeout? number seconds before a store operation counts as failed (default 0.1)
---@field on_failure? "local"|"open"|"closed" while the store fails: a process-local fallback (default), admit, or reject
---@field lease? number seconds a limit_jobs slot lives unless renewed (default 30)
---@field poll? number seconds between a waiting process's asks for a freed slot (default 0.01)

---@class dike.SharedDictStoreOptions
---@field prefix? string key prefix (default "dike:")
---@field timeout? number seconds a worker may wait for the dictionary's lock (default 0.1)
---@field on_failure? "local"|"open"|"closed" while the store fails (default "local")
---@field lease? number seconds a limit_jobs slot lives unless renewed (default 30)
---@field poll? number seconds between a waiting worker's asks for a freed slot (default 0.005)

---------------------------------------------------------------------------------------------------
-- Statistics (dike.stats)

---@class dike.RetryStats
---@field calls integer calls of the wrapper
---@field retries integer retries started
---@field failures integer calls that ended by raising
---@field budget_refused? integer (v2) retries a budget refused

---@class dike.LimitJobsStats
---@field calls integer every call, rejected ones included
---@field running integer calls executing fn
---@field queued integer callers waiting for a slot
---@field rejected integer calls that raised TooManyCalls
---@field limit? number the limiter's limit
---@field store_errors? integer (v2) this limiter's store operations that failed
---@field fallback_calls? integer (v2) calls whose outcome the store's on_failure policy decided

---@class dike.BatchStats
---@field calls integer calls accepted into a batch
---@field batches integer batches sent
---@field queued_calls integer calls not sent yet (the batch being filled, held batches)
---@field queued_rows integer rows not sent yet
---@field held_batches integer (v2) batches due but waiting for max_concurrent_batches
---@field running_batches integer batches whose function runs and has not timed out
---@field waiting integer callers whose batch was sent and who still wait
---@field deduplicated integer (v2) rows not sent because of `key`

---@class dike.RateLimitStats
---@field calls integer
---@field admitted integer
---@field delayed integer admitted after waiting
---@field rejected integer
---@field waiting integer
---@field store_errors? integer
---@field fallback_calls? integer

---@class dike.CircuitBreakerStats
---@field calls integer
---@field failures integer
---@field slow integer
---@field rejected integer
---@field opened integer times it opened
---@field state dike.BreakerState
---@field store_errors? integer
---@field fallback_calls? integer

---@class dike.TimeoutStats
---@field calls integer
---@field timeouts integer

---@class dike.RetryBudgetStats
---@field tokens number
---@field refused integer

---@alias dike.Stats dike.RetryStats|dike.LimitJobsStats|dike.BatchStats|dike.RateLimitStats|dike.CircuitBreakerStats|dike.TimeoutStats|dike.RetryBudgetStats

---------------------------------------------------------------------------------------------------
-- Runtimes

--- A host: the loop primitives dike's scheduler runs over (docs/runtime.md). dike ships
--- "luv", "nvim" and "ngx"; dike.set_runtime(host) takes a table of your own.
---@class dike.Host
---@field name string
---@field now fun(): number monotonic seconds
---@field attach fun(on_alarm: fun(), on_pump: fun()) receives the scheduler's callbacks
---@field arm fun(at: number) call on_alarm once at monotonic time `at`
---@field disarm fun()
---@field pump fun() call on_pump once, soon, from the loop
---@field unpump? fun() take back an unserved pump()
---@field run_once fun(): boolean dike.run: one loop iteration; false when nothing keeps the loop alive
---@field loop_running fun(): boolean
---@field handles fun(): table the loop handles it made
---@field close? fun() it is being replaced: close its handles
---@field threads? table for loops that resume coroutines themselves (nginx)

---------------------------------------------------------------------------------------------------
-- The module

---@class dike
---@field _VERSION string "dike <version>"
---@field TooManyCalls dike.ErrorClass
---@field TimeoutError dike.ErrorClass
---@field CancelledError dike.ErrorClass
---@field RateLimited dike.ErrorClass (v2)
---@field CircuitOpen dike.ErrorClass (v2)
local dike = {}

--- Start fn(...) in a new task now; it runs until its first wait.
---@param fn function
---@param ... any
---@return dike.Task
function dike.spawn(fn, ...) end

--- From outside any coroutine: spawn fn(...) and drive the loop until that task ends; its
--- values, or its error raised again. Raises inside a task or while the loop is running.
---@param fn function
---@param ... any
---@return any ...
function dike.run(fn, ...) end

--- Suspend the current coroutine for `seconds`; 0 yields to the loop once.
---@param seconds number
function dike.sleep(seconds) end

--- Wait for tasks and functions (functions are spawned). Raises the first error as soon as it
--- happens, unless opts.return_errors.
---@param items (dike.Task|function)[]
---@param opts? dike.GatherOptions
---@return dike.GatherResults
function dike.gather(items, opts) end

--- Adapt a callback-last function (luv style, fn(..., callback)) into one that suspends the
--- current coroutine and returns the values passed to the callback.
---@param fn function
---@return function
function dike.wrap(fn) end

--- The monotonic clock dike uses, in seconds.
---@return number
function dike.now() end

--- Call again on failure, with delay, backoff, cap, jitter and a time budget.
---@param opts? dike.RetryOptions
---@return dike.Decorator
function dike.retry(opts) end

--- (v2) A retry budget to share between retry wrappers (`budget` option).
---@param opts? dike.RetryBudgetOptions
---@return dike.RetryBudget
function dike.retry_budget(opts) end

--- Cap concurrent calls: reject the rest with dike.TooManyCalls, or let some wait in a queue.
---@param opts dike.LimitJobsOptions
---@return dike.Limiter
function dike.limit_jobs(opts) end

--- Collect concurrent calls into one call of the wrapped function with the concatenated
--- arguments; each caller gets its own rows of the result.
---@param opts dike.BatchOptions
---@return dike.Decorator
function dike.batch(opts) end

--- A row's failure in a batch function's result: that row's caller raises `err`.
---@param err any any value but nil
---@return dike.Failure
function dike.fail(err) end

--- (v2) Send `f`'s open batch now, if it has rows (subject to max_concurrent_batches); returns
--- at once. Callable from anywhere, outside coroutines too.
---@param f function a function wrapped by dike.batch
function dike.flush(f) end

--- A typed array from a sequence of numbers.
---@param list number[] #list must be a multiple of width
---@param elemtype? dike.ElemType default "double"
---@param width? integer elements per row (default 1)
---@return dike.Array
function dike.array(list, elemtype, width) end

--- (v2) Limit the rate of calls (GCRA).
---@param opts dike.RateLimitOptions
---@return dike.RateLimiter
function dike.rate_limit(opts) end

--- (v2) Stop calling a failing dependency for a while.
---@param opts dike.CircuitBreakerOptions
---@return dike.CircuitBreaker
function dike.circuit_breaker(opts) end

--- (v2) End a call that takes longer than `seconds` with dike.TimeoutError.
---@param opts dike.TimeoutOptions
---@return dike.Decorator
function dike.timeout(opts) end

--- (v2) Install the one event observer (nil removes it); returns the previous one.
---@param fn dike.Observer|nil
---@return dike.Observer|nil
function dike.on_event(fn) end

--- Install the default logger (nil restores the built-in one); returns the previous one.
---@param fn dike.Logger|nil
---@return dike.Logger
function dike.set_logger(fn) end

--- A fresh table of counters of a wrapped function, a limiter, a breaker or a retry budget.
---@param f function|table
---@return dike.Stats
function dike.stats(f) end

--- Choose the runtime: a host name, a host table, or nil for the default of this place
--- (nginx, else Neovim's main loop, else luv).
---@param host "luv"|"nvim"|"ngx"|dike.Host|nil
function dike.set_runtime(host) end

--- (v2) Shared stores.
dike.store = {}

--- (v2) An nginx lua_shared_dict, shared by the workers of one nginx.
---@param dict_name string
---@param opts? dike.SharedDictStoreOptions
---@return dike.Store
function dike.store.shared_dict(dict_name, opts) end

--- (v2) A Redis server, shared by every process and host that reaches it.
---@param opts? dike.RedisStoreOptions
---@return dike.Store
function dike.store.redis(opts) end

return dike
