/*
 * ldike.c - luaopen_dike_core and the helpers shared by the binding.
 *
 * require("dike.core") returns a table (internal to dike: users require
 * "dike"). Errors are raised luaL_argerror-style, "bad argument #N to
 * 'f' (<what> must be <rule>, got <value>)"; no Lua value can crash the
 * process. Numbers are never coerced from strings.
 *
 * core.backoff(delay, factor, max_delay_or_nil, jitter_or_nil, seed_or_nil)
 *     -> Backoff ("dike.Backoff")
 *   delay finite >= 0; factor finite > 0; max_delay > 0 (nil or math.huge:
 *   none, delays then stop growing at core.BACKOFF_MAX_DELAY = 1e9 s);
 *   jitter "none" (default) | "full" | "equal" | "decorrelated"; seed an
 *   integer (without one: clock nanoseconds mixed with the address).
 * bo:next(raw, prev) -> delay, raw_next, prev_next
 *   One retry step; raw and prev are nil on the first retry (= delay).
 *   Without jitter the delays are bit for bit d, d*factor, d*factor^2, ...
 *   capped; full: U(0, b); equal: b/2 + U(0, b/2); decorrelated:
 *   min(cap, U(delay, 3*prev)).
 * core.over_budget(elapsed, next_delay, max_elapsed_or_nil) -> boolean
 *   elapsed + next_delay >= max_elapsed; nil, <= 0 or inf: no budget.
 *
 * core.array(list [, elemtype [, width]]) -> Array ("dike.Array")
 *   elemtype "double" (default) | "float" | "int32" | "int64" | "uint8";
 *   width (default 1) elements per row, #list a multiple of it. Values are
 *   checked: integer types take integral values in range (no NaN), float
 *   values within +-FLT_MAX (or inf, NaN), double anything.
 * #a rows; a[i] element i (width 1 only); a:get(row [, col = 1]);
 * a:totable() flat list; a:type(); a:width(); a:slice(first_row, nrows)
 *   copy of rows first_row .. first_row + nrows - 1 (nrows may be 0);
 *   tostring(a) "dike.array<double x1>(3 rows)". Integer elements are Lua
 *   integers on 5.3+ (int64 beyond 2^53 is rounded on LuaJIT). The list
 *   is read raw (no __index/__len); one with a hole (a positive integer key
 *   beyond #list, wherever # stopped) is refused. Arrays are read-only.
 * core.is_array(x) -> boolean
 * core.array_slice(a, first_row, nrows) -> Array   (a:slice as a function)
 * Batch buffers (dike.batch's array mode; ldike_array.c):
 * core.array_buffer(like, caprows) -> an empty array shaped like `like`
 *   with room for caprows rows
 * core.array_append(buf, src) -> buf', rows | nil, code   src's rows
 *   appended; buf' is a larger copy when buf was full; code core.EINVAL
 *   (src is not an array) or core.EMISMATCH (type or width)
 * core.array_remove(buf, first_row, nrows)   rows taken out (a cancel)
 *
 * core.gcra(rate, per, burst) -> Gcra ("dike.Gcra"): rate-limit timing.
 *   rate > 0 (inf: T = 0, no limit); per finite > 0; burst finite >= 1.
 *   T = per / rate and burst * T saturate at core.GCRA_MAX_SECONDS (1e9).
 * core.gcra_reserve(g, now, cost, max_wait) -> wait | false, retry_after
 *   (also g:reserve(now, cost, max_wait)). A call of `cost` (0..burst) at
 *   clock reading `now` (seconds) that may wait up to max_wait (>= 0, inf
 *   allowed): admitted, returning the wait before it may run (0: at once;
 *   its turn is reserved), or refused (false and the seconds until a call
 *   of that cost would pass; nothing changes). A reading that is NaN or
 *   +-inf counts as the latest one; a clock that goes back keeps the debt.
 * core.gcra_ffi() -> light userdata: { uint32 magic "gcra", uint32 version 1,
 *   int (*reserve)(g, now, cost, max_wait, double *wait) } for LuaJIT's FFI
 *   (returns 0 or DIKE_ELIMITED, the wait in *wait; g = the Gcra's payload)
 * g:state() -> started, last, debt (cost units);
 * g:params() -> interval, burst, capacity (burst capped: capacity * T <= 1e9)
 *
 * core.EINVAL, core.ENOMEM, ... the DIKE_E* codes.
 *
 * No type has a __gc: Backoff, Gcra and Array keep everything inside the
 * userdata (an array's elements too, so the GC sees their size), and a
 * __gc would only delay their reclamation by a cycle.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "ldike.h"

/* ---- version shims ---- */

void ldike_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  int i;
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    for (i = 0; i < nup; i++)
      lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

void ldike_pushint64(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
}

void ldike_pushsize(lua_State *L, size_t v) {
  /* Counts and sizes here never reach 2^63 (they are bounded by memory). */
  ldike_pushint64(L, (int64_t)v);
}

int ldike_toint64(lua_State *L, int idx, int64_t *v) {
  double d;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    *v = (int64_t)lua_tointeger(L, idx);
    return 1;
  }
#endif
  if (lua_type(L, idx) != LUA_TNUMBER)
    return 0;
  d = (double)lua_tonumber(L, idx);
  /* Range first: casting an out-of-range double is undefined. */
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return 0;
  if ((double)(int64_t)d != d)
    return 0;
  *v = (int64_t)d;
  return 1;
}

/* ---- classes ---- */

void ldike_newclass(lua_State *L, const char *tname, const luaL_Reg *meta,
                    const luaL_Reg *methods) {
  luaL_newmetatable(L, tname); /* mt (the existing one on a second load) */
  lua_newtable(L);             /* mt methods */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  ldike_setfuncs(L, methods, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index"); /* the default; meta may override */
  lua_pushvalue(L, -2);           /* mt methods mt(target) mt methods */
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  ldike_setfuncs(L, meta, 2);
  lua_pop(L, 2); /* mt */
}

void ldike_setmodfuncs(lua_State *L, const luaL_Reg *funcs) {
  ldike_setfuncs(L, funcs, 1);
}

void *ldike_testself(lua_State *L, int idx) {
  void *p;
  int same;
  if (lua_type(L, idx) != LUA_TUSERDATA)
    return NULL;
  p = lua_touserdata(L, idx); /* before the push below moves a relative idx */
  if (!lua_getmetatable(L, idx))
    return NULL;
  same = lua_rawequal(L, -1, lua_upvalueindex(1));
  lua_pop(L, 1);
  return same ? p : NULL;
}

void *ldike_checkself(lua_State *L, int idx, const char *what) {
  void *p = ldike_testself(L, idx);
  if (p == NULL)
    ldike_argerror(L, idx, "%s expected, got %s", what, luaL_typename(L, idx));
  return p;
}

void ldike_setself(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
}

/* ---- argument checks ---- */

void ldike_argerror(lua_State *L, int arg, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  luaL_argerror(L, arg, msg); /* copies msg before unwinding */
  for (;;) { /* not reached: luaL_argerror raises */
  }
}

void ldike_error(lua_State *L, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  luaL_error(L, "%s", msg);
  for (;;) { /* not reached: luaL_error raises */
  }
}

lua_Number ldike_checknumber(lua_State *L, int arg) {
  if (lua_type(L, arg) != LUA_TNUMBER)
    ldike_argerror(L, arg, "number expected, got %s", luaL_typename(L, arg));
  return lua_tonumber(L, arg);
}

void ldike_checktable(lua_State *L, int arg) {
  if (lua_type(L, arg) != LUA_TTABLE)
    ldike_argerror(L, arg, "table expected, got %s", luaL_typename(L, arg));
}

int64_t ldike_checkint(lua_State *L, int arg, int64_t lo, int64_t hi,
                       const char *what) {
  int64_t v;
  char buf[48];
  (void)ldike_checknumber(L, arg);
  if (ldike_toint64(L, arg, &v) && v >= lo && v <= hi)
    return v;
  if (hi == LDIKE_MAXCOUNT)
    ldike_argerror(L, arg, "%s must be an integer >= %" PRId64 ", got %s",
                   what, lo, ldike_valstr(L, arg, buf, sizeof buf));
  ldike_argerror(L, arg, "%s must be an integer in [%" PRId64 ", %" PRId64
                 "], got %s", what, lo, hi,
                 ldike_valstr(L, arg, buf, sizeof buf));
  return 0; /* not reached */
}

int ldike_hole_above(lua_State *L, int idx, size_t len) {
  if (idx < 0)
    idx = lua_gettop(L) + idx + 1; /* the pushes below move a relative idx */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1); /* the value; the key stays for the next lua_next */
    if (lua_type(L, -1) == LUA_TNUMBER) {
      double k = (double)lua_tonumber(L, -1);
      if (k > (double)len && k < HUGE_VAL && floor(k) == k) {
        lua_pop(L, 1);
        return 1;
      }
    }
  }
  return 0;
}

const char *ldike_numstr(double v, char *buf, size_t size) {
  if (isnan(v))
    return "nan"; /* not "-nan": the sign of a NaN means nothing here */
  if (isinf(v))
    return v > 0 ? "inf" : "-inf";
  snprintf(buf, size, "%.14g", v);
  return buf;
}

const char *ldike_valstr(lua_State *L, int idx, char *buf, size_t size) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    snprintf(buf, size, "%" PRId64, (int64_t)lua_tointeger(L, idx));
    return buf;
  }
#endif
  if (lua_type(L, idx) == LUA_TNUMBER)
    return ldike_numstr((double)lua_tonumber(L, idx), buf, size);
  return luaL_typename(L, idx);
}

/* ---- the module ---- */

static const struct {
  const char *name;
  void (*open)(lua_State *L);
} parts[] = {
    {"backoff", ldike_open_backoff},
    {"array", ldike_open_array},
    {"gcra", ldike_open_gcra},
};

LDIKE_EXPORT int luaopen_dike_core(lua_State *L);

int luaopen_dike_core(lua_State *L) {
  size_t i;
  lua_newtable(L);
  for (i = 0; i < sizeof parts / sizeof parts[0]; i++)
    parts[i].open(L);
  lua_pushnumber(L, DIKE_BACKOFF_MAX_DELAY);
  lua_setfield(L, -2, "BACKOFF_MAX_DELAY");
  lua_pushnumber(L, DIKE_GCRA_MAX_SECONDS);
  lua_setfield(L, -2, "GCRA_MAX_SECONDS");
#define LDIKE_SETCODE_(name, value, msg) \
  lua_pushinteger(L, DIKE_##name);       \
  lua_setfield(L, -2, #name);
  DIKE_ERRNO_MAP(LDIKE_SETCODE_)
#undef LDIKE_SETCODE_
  return 1;
}
