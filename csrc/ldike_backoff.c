/* ldike_backoff.c - Lua binding of the backoff schedule (dike.Backoff). */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c99 */
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ldike.h"

/* A seed for callers that give none: the clock's nanoseconds, mixed with
 * the object's address so two schedules made in the same instant differ.
 * (dike_rng_seed runs it through splitmix64, so weak bits are fine.) */
static uint64_t fresh_seed(const void *self) {
  uint64_t t;
#if defined(CLOCK_MONOTONIC)
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
    t = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
  else
    t = (uint64_t)time(NULL);
#else
  t = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
#endif
  return t ^ ((uint64_t)(uintptr_t)self * UINT64_C(0x9e3779b97f4a7c15));
}

static uint64_t check_seed(lua_State *L, int arg) {
  int64_t v;
  char buf[48];
  (void)ldike_checknumber(L, arg);
  if (!ldike_toint64(L, arg, &v))
    ldike_argerror(L, arg, "seed must be an integer, got %s",
                   ldike_valstr(L, arg, buf, sizeof buf));
  return (uint64_t)v; /* negative seeds wrap: every int64 is a seed */
}

/* core.backoff(delay, factor, max_delay_or_nil, jitter_or_nil, seed_or_nil) */
static int l_backoff(lua_State *L) {
  double base, factor, cap = INFINITY;
  int jitter = DIKE_JITTER_NONE, has_seed = !lua_isnoneornil(L, 5);
  uint64_t seed = 0;
  char buf[48];
  dike_backoff *b;

  base = (double)ldike_checknumber(L, 1);
  if (!(base >= 0))
    ldike_argerror(L, 1, "delay must be >= 0, got %s",
                   ldike_numstr(base, buf, sizeof buf));
  if (isinf(base))
    ldike_argerror(L, 1, "delay must be finite, got inf");
  factor = (double)ldike_checknumber(L, 2);
  if (!(factor > 0))
    ldike_argerror(L, 2, "factor must be > 0, got %s",
                   ldike_numstr(factor, buf, sizeof buf));
  if (isinf(factor))
    ldike_argerror(L, 2, "factor must be finite, got inf");
  if (!lua_isnoneornil(L, 3)) {
    cap = (double)ldike_checknumber(L, 3);
    if (!(cap > 0))
      ldike_argerror(L, 3, "max_delay must be > 0, got %s",
                     ldike_numstr(cap, buf, sizeof buf));
  }
  if (!lua_isnoneornil(L, 4)) {
    const char *name;
    size_t len;
    if (lua_type(L, 4) != LUA_TSTRING)
      ldike_argerror(L, 4, "string expected, got %s", luaL_typename(L, 4));
    name = lua_tolstring(L, 4, &len);
    jitter = dike_jitter_lookup(name);
    if (jitter < 0 || strlen(name) != len) /* "full\0x" is not "full" */
      ldike_argerror(L, 4,
                     "jitter must be one of none, full, equal, decorrelated, "
                     "got '%.40s'",
                     name);
  }
  if (has_seed)
    seed = check_seed(L, 5);

  b = (dike_backoff *)ldike_newuserdata(L, sizeof *b);
  if (dike_backoff_init(b, base, factor, cap, jitter, seed) != 0)
    return luaL_error(L, "dike.backoff: invalid arguments"); /* checked */
  if (!has_seed)
    dike_backoff_seed(b, fresh_seed(b));
  ldike_setself(L);
  return 1;
}

/* Cheap: called once per retry. raw and prev: nil (first retry) or the
 * values the previous step returned. */
static int l_next(lua_State *L) {
  dike_backoff *b = (dike_backoff *)ldike_checkself(L, 1, "dike.backoff");
  dike_backoff_state st;
  double delay;
  dike_backoff_start(b, &st); /* the first retry's state; a later one's: */
  if (!lua_isnoneornil(L, 2))
    st.raw = (double)ldike_checknumber(L, 2);
  if (!lua_isnoneornil(L, 3))
    st.prev = (double)ldike_checknumber(L, 3);
  delay = dike_backoff_next(b, &st);
  lua_pushnumber(L, (lua_Number)delay);
  lua_pushnumber(L, (lua_Number)st.raw);
  lua_pushnumber(L, (lua_Number)st.prev);
  return 3;
}

static int l_tostring(lua_State *L) {
  dike_backoff *b = (dike_backoff *)ldike_checkself(L, 1, "dike.backoff");
  char d[32], f[32], c[32];
  lua_pushfstring(L, "dike.backoff(delay=%s, factor=%s, max_delay=%s, "
                     "jitter=%s)",
                  ldike_numstr(b->base, d, sizeof d),
                  ldike_numstr(b->factor, f, sizeof f),
                  b->has_cap ? ldike_numstr(b->cap, c, sizeof c) : "none",
                  dike_jitter_name(b->jitter));
  return 1;
}

/* core.over_budget(elapsed, next_delay, max_elapsed_or_nil) */
static int l_over_budget(lua_State *L) {
  double elapsed = (double)ldike_checknumber(L, 1);
  double next_delay = (double)ldike_checknumber(L, 2);
  double max_elapsed =
      lua_isnoneornil(L, 3) ? 0 : (double)ldike_checknumber(L, 3);
  lua_pushboolean(L,
                  dike_backoff_over_budget(elapsed, next_delay, max_elapsed));
  return 1;
}

void ldike_open_backoff(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  static const luaL_Reg methods[] = {
      {"next", l_next},
      {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"backoff", l_backoff},
      {"over_budget", l_over_budget},
      {NULL, NULL},
  };
  ldike_newclass(L, LDIKE_BACKOFF, meta, methods);
  ldike_setmodfuncs(L, funcs);
}
