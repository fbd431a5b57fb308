/*
 * ldike.h - internal helpers shared by the Lua binding files (ldike*.c).
 *
 * The binding is thin: check every argument first (so an error never
 * leaves half-built state behind), then call the core (dike.h), then push
 * results. One metatable per type, "dike.<Type>", whose functions carry
 * the metatable as upvalue 1 (a fast, exact self check: no registry
 * lookup) and the methods table as upvalue 2.
 *
 * Compatibility: the same source builds against LuaJIT 2.1 / Lua 5.1 (the
 * 5.1 API, numbers are doubles) and Lua 5.2-5.4 (5.3+ have integers). The
 * shims below are the only version-dependent code. Everything here has
 * hidden visibility: the module exports luaopen_dike_core alone.
 */
#ifndef LDIKE_H
#define LDIKE_H

#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "dike.h"

#if defined(__GNUC__) || defined(__clang__)
#define LDIKE_EXPORT __attribute__((visibility("default")))
#define LDIKE_HIDDEN __attribute__((visibility("hidden")))
#define LDIKE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LDIKE_NORETURN __attribute__((noreturn))
#else
#define LDIKE_EXPORT
#define LDIKE_HIDDEN
#define LDIKE_PRINTF(f, a)
#define LDIKE_NORETURN
#endif

/* Metatable (registry) names. */
#define LDIKE_BACKOFF "dike.Backoff"
#define LDIKE_ARRAY "dike.Array"
#define LDIKE_GCRA "dike.Gcra"

/* Largest count or size accepted from Lua: 2^53, exact in a double (so
 * the same limit holds on LuaJIT and on Lua 5.4). */
#define LDIKE_MAXCOUNT INT64_C(9007199254740992)

/* ---- version shims ---- */

#if LUA_VERSION_NUM >= 502
#define ldike_rawlen(L, i) lua_rawlen((L), (i))
#else
#define ldike_rawlen(L, i) lua_objlen((L), (i))
#endif

#if LUA_VERSION_NUM >= 504
/* No user values: lua_newuserdata would reserve one we never use. */
#define ldike_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define ldike_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/* luaL_setfuncs (5.2+, and LuaJIT, but not plain 5.1). */
LDIKE_HIDDEN void ldike_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
/* An int64 as a Lua integer (5.3+) or number (5.1: exact up to 2^53). */
LDIKE_HIDDEN void ldike_pushint64(lua_State *L, int64_t v);
LDIKE_HIDDEN void ldike_pushsize(lua_State *L, size_t v);
/* 1 and *v if the value at idx is a number with an exact int64 value
 * (a 5.3+ integer, or an integral double in [-2^63, 2^63)); else 0. */
LDIKE_HIDDEN int ldike_toint64(lua_State *L, int idx, int64_t *v);

/* ---- classes ---- */

/* Create (or, when the module is loaded again, refill) the metatable
 * tname: `methods` go to a table that becomes __index (unless `meta` sets
 * its own __index), `meta` to the metatable; all functions get upvalues
 * (metatable, methods). Leaves the metatable on the stack. */
LDIKE_HIDDEN void ldike_newclass(lua_State *L, const char *tname,
                                 const luaL_Reg *meta,
                                 const luaL_Reg *methods);
/* Set `funcs` into the table below the metatable on the stack, with the
 * metatable as upvalue 1; pops the metatable. */
LDIKE_HIDDEN void ldike_setmodfuncs(lua_State *L, const luaL_Reg *funcs);
/* The userdata at idx if its metatable is upvalue 1 of the running
 * function, else NULL. */
LDIKE_HIDDEN void *ldike_testself(lua_State *L, int idx);
/* The same, raising "<what> expected, got <type>" otherwise. */
LDIKE_HIDDEN void *ldike_checkself(lua_State *L, int idx, const char *what);
/* Give the new object on top of the stack the metatable (upvalue 1). */
LDIKE_HIDDEN void ldike_setself(lua_State *L);

/* ---- argument checks ---- */

/* luaL_argerror with a printf-style message (at most ~200 chars). */
LDIKE_HIDDEN LDIKE_NORETURN LDIKE_PRINTF(3, 4) void ldike_argerror(
    lua_State *L, int arg, const char *fmt, ...);
/* luaL_error with a full printf-style message (%zu, PRId64, ...). */
LDIKE_HIDDEN LDIKE_NORETURN LDIKE_PRINTF(2, 3) void ldike_error(
    lua_State *L, const char *fmt, ...);
/* A number (strictly: no string coercion), else "number expected, got T". */
LDIKE_HIDDEN lua_Number ldike_checknumber(lua_State *L, int arg);
/* A table, else "table expected, got T" (T never a __name: the same text
 * on every Lua version). */
LDIKE_HIDDEN void ldike_checktable(lua_State *L, int arg);
/* An integer-valued number in [lo, hi], else "<what> must be an integer
 * in [lo, hi], got X" (">= lo" when hi is LDIKE_MAXCOUNT). */
LDIKE_HIDDEN int64_t ldike_checkint(lua_State *L, int arg, int64_t lo,
                                    int64_t hi, const char *what);
/* 1 when the table at idx has a positive integer key above len, its length:
 * a hole the length operator did not show (it may stop at any border:
 * LuaJIT's #{1, nil, 3} is 1, Lua 5.4's is 3). One pass over the keys. */
LDIKE_HIDDEN int ldike_hole_above(lua_State *L, int idx, size_t len);
/* Text for the value at idx in messages: the number ("1.5", "nan",
 * "-inf", integers without ".0") or the type name. buf: >= 32 bytes. */
LDIKE_HIDDEN const char *ldike_valstr(lua_State *L, int idx, char *buf,
                                      size_t size);
LDIKE_HIDDEN const char *ldike_numstr(double v, char *buf, size_t size);

/* ---- the parts of the module (each adds its functions to the table on
 * top of the stack) ---- */

LDIKE_HIDDEN void ldike_open_backoff(lua_State *L);
LDIKE_HIDDEN void ldike_open_array(lua_State *L);
LDIKE_HIDDEN void ldike_open_gcra(lua_State *L);

#endif /* LDIKE_H */
