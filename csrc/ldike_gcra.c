/* ldike_gcra.c - Lua binding of the rate-limit timing (dike.Gcra). */
#include <math.h>

#include "ldike.h"

#define SELF(L) ((dike_gcra *)ldike_checkself((L), 1, "dike.gcra"))

/* core.gcra(rate, per, burst) */
static int l_gcra(lua_State *L) {
  double rate = (double)ldike_checknumber(L, 1);
  double per = (double)ldike_checknumber(L, 2);
  double burst = (double)ldike_checknumber(L, 3);
  char buf[48];
  dike_gcra *g;
  if (!(rate > 0))
    ldike_argerror(L, 1, "rate must be > 0, got %s",
                   ldike_numstr(rate, buf, sizeof buf));
  if (!(per > 0) || isinf(per))
    ldike_argerror(L, 2, "per must be a finite number > 0, got %s",
                   ldike_numstr(per, buf, sizeof buf));
  if (!(burst >= 1) || isinf(burst))
    ldike_argerror(L, 3, "burst must be a finite number >= 1, got %s",
                   ldike_numstr(burst, buf, sizeof buf));
  g = (dike_gcra *)ldike_newuserdata(L, sizeof *g);
  if (dike_gcra_init(g, rate, per, burst) != 0)
    return luaL_error(L, "dike.gcra: invalid arguments"); /* checked */
  ldike_setself(L);
  return 1;
}

/* core.gcra_reserve(g, now, cost, max_wait) -> wait | false, retry_after.
 * The one call a rate-limited call makes: a module function (no method
 * lookup), numbers read without coercion. */
static int l_reserve(lua_State *L) {
  dike_gcra *g = SELF(L);
  double now = (double)ldike_checknumber(L, 2);
  double cost = (double)ldike_checknumber(L, 3);
  double max_wait = (double)ldike_checknumber(L, 4);
  double wait = 0;
  char buf[48], b2[48];
  int rc = dike_gcra_reserve(g, now, cost, max_wait, &wait);
  if (rc == 0) {
    lua_pushnumber(L, (lua_Number)wait);
    return 1;
  }
  if (rc == DIKE_ELIMITED) {
    lua_pushboolean(L, 0);
    lua_pushnumber(L, (lua_Number)wait);
    return 2;
  }
  if (!(cost >= 0) || !(cost <= g->burst))
    ldike_argerror(L, 3, "cost must be a number in [0, burst = %s], got %s",
                   ldike_numstr(g->burst, b2, sizeof b2),
                   ldike_numstr(cost, buf, sizeof buf));
  ldike_argerror(L, 4, "max_wait must be >= 0, got %s",
                 ldike_numstr(max_wait, buf, sizeof buf));
  return 0; /* not reached */
}

/* g:state() -> started, last, debt (in cost units; tests and debugging) */
static int l_state(lua_State *L) {
  dike_gcra *g = SELF(L);
  lua_pushboolean(L, g->started);
  lua_pushnumber(L, (lua_Number)g->last);
  lua_pushnumber(L, (lua_Number)g->debt);
  return 3;
}

/* g:params() -> interval, burst, capacity (after saturation) */
static int l_params(lua_State *L) {
  dike_gcra *g = SELF(L);
  lua_pushnumber(L, (lua_Number)g->interval);
  lua_pushnumber(L, (lua_Number)g->burst);
  lua_pushnumber(L, (lua_Number)g->capacity);
  return 3;
}

static int l_tostring(lua_State *L) {
  dike_gcra *g = SELF(L);
  char t[32], b[32];
  lua_pushfstring(L, "dike.gcra(interval=%s, burst=%s)",
                  ldike_numstr(g->interval, t, sizeof t),
                  ldike_numstr(g->burst, b, sizeof b));
  return 1;
}

/* For LuaJIT's FFI: the address of the core's reserve function, so that
 * rate_limit's hot path calls it as compiled code (a call through the Lua
 * C API costs more than the arithmetic itself). The module exports no
 * other symbol: this table is reached through core.gcra_ffi(), a light
 * userdata the FFI casts to a pointer to this layout (magic and version
 * first, so a mismatch is seen and the C API used instead). */
#define LDIKE_GCRA_FFI_MAGIC 0x61726367u /* "gcra" in little-endian bytes */
#define LDIKE_GCRA_FFI_VERSION 1u
typedef struct ldike_gcra_ffi {
  uint32_t magic;
  uint32_t version;
  int (*reserve)(dike_gcra *g, double now, double cost, double max_wait,
                 double *wait);
} ldike_gcra_ffi;

static const ldike_gcra_ffi gcra_ffi = {LDIKE_GCRA_FFI_MAGIC,
                                        LDIKE_GCRA_FFI_VERSION,
                                        dike_gcra_reserve};

static int l_ffi(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&gcra_ffi); /* read only */
  return 1;
}

void ldike_open_gcra(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  static const luaL_Reg methods[] = {
      {"reserve", l_reserve},
      {"state", l_state},
      {"params", l_params},
      {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"gcra", l_gcra},
      {"gcra_reserve", l_reserve},
      {"gcra_ffi", l_ffi},
      {NULL, NULL},
  };
  ldike_newclass(L, LDIKE_GCRA, meta, methods);
  ldike_setmodfuncs(L, funcs);
}
