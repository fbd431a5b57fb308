/* ldike_array.c - Lua binding of typed arrays (dike.Array).
 *
 * An array's elements live inside its userdata, right after the
 * dike_array header (a view over that memory): one allocation, and the
 * Lua GC sees the full size, so big arrays count towards collection. With
 * nothing outside the userdata to release, the type needs no __gc (which
 * would also delay every array's reclamation by a GC cycle). Arrays are
 * read-only from Lua; slices and concatenations are copies.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ldike.h"

typedef union {
  double d;
  int64_t i;
  void *p;
} max_align;

typedef struct {
  dike_array a;
  max_align data[]; /* nrows * width elements */
} ud_array;

#define SELF(L) (&((ud_array *)ldike_checkself((L), 1, "dike.array"))->a)

/* A new array on the stack: every argument must have been checked. */
static dike_array *new_array(lua_State *L, int type, size_t width,
                             size_t nrows) {
  size_t nbytes;
  ud_array *ud;
  if (dike_array_nbytes(type, width, nrows, &nbytes) != 0 ||
      nbytes > SIZE_MAX - offsetof(ud_array, data))
    ldike_error(L, "dike.array: too large (%zu rows of width %zu)", nrows,
                width);
  ud = (ud_array *)ldike_newuserdata(L, offsetof(ud_array, data) + nbytes);
  (void)dike_array_view(&ud->a, type, width, nrows, ud->data);
  ldike_setself(L);
  return &ud->a;
}

static int is_integer_type(int type) {
  return type == DIKE_INT32 || type == DIKE_INT64 || type == DIKE_UINT8;
}

static void push_elem(lua_State *L, const dike_array *a, size_t i) {
  if (is_integer_type(a->type)) {
    int64_t v = 0;
    (void)dike_array_get_int64(a, i, &v);
    ldike_pushint64(L, v);
  } else {
    double v = 0;
    (void)dike_array_get(a, i, &v);
    lua_pushnumber(L, (lua_Number)v);
  }
}

static int check_elemtype(lua_State *L, int arg) {
  const char *name;
  size_t len;
  int type;
  if (lua_type(L, arg) != LUA_TSTRING)
    ldike_argerror(L, arg, "string expected, got %s", luaL_typename(L, arg));
  name = lua_tolstring(L, arg, &len);
  type = dike_elemtype_lookup(name);
  if (type < 0 || strlen(name) != len)
    ldike_argerror(L, arg,
                   "elemtype must be one of double, float, int32, int64, "
                   "uint8, got '%.40s'",
                   name);
  return type;
}

/* Whether the value on top fits `type` (5.3+ integers are checked exactly,
 * so int64 arrays keep all 64 bits there). */
static int value_fits(lua_State *L, int type) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, -1))
    return dike_elemtype_check_int64(type, (int64_t)lua_tointeger(L, -1)) ==
           0;
#endif
  return dike_elemtype_check(type, (double)lua_tonumber(L, -1)) == 0;
}

/* 0, or an error code if the value no longer fits (see l_array). */
static int store_value(lua_State *L, dike_array *a, size_t i) {
  if (lua_type(L, -1) != LUA_TNUMBER)
    return DIKE_EINVAL;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, -1))
    return dike_array_set_int64(a, i, (int64_t)lua_tointeger(L, -1));
#endif
  return dike_array_set(a, i, (double)lua_tonumber(L, -1));
}

/* The second pass of array() and array_concat() reads the list again after
 * allocating, and an allocation may run a __gc finalizer that changes the
 * list: such a change is refused rather than trusted. */
static void list_changed(lua_State *L, const char *fn) {
  ldike_error(L, "dike.%s: the list changed while it was being read", fn);
}

/* core.array(list [, elemtype [, width]]) */
static int l_array(lua_State *L) {
  int type = DIKE_DOUBLE, i, n;
  size_t width = 1, len;
  char buf[48];
  dike_array *a;
  ldike_checktable(L, 1);
  if (!lua_isnoneornil(L, 2))
    type = check_elemtype(L, 2);
  if (!lua_isnoneornil(L, 3))
    width = (size_t)ldike_checkint(L, 3, 1, DIKE_ARRAY_MAX_WIDTH, "width");
  len = ldike_rawlen(L, 1);
  if (len > INT_MAX)
    ldike_argerror(L, 1, "list too long (%zu elements)", len);
  if (len % width != 0)
    ldike_argerror(L, 1, "#list must be a multiple of width %zu, got %zu",
                   width, len);
  n = (int)len;
  /* Check every value before allocating, then fill without checks. */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TNUMBER)
      ldike_argerror(L, 1, "element %d must be a number, got %s", i,
                     luaL_typename(L, -1));
    if (!value_fits(L, type))
      ldike_argerror(L, 1, "element %d must fit %s, got %s", i,
                     dike_elemtype_name(type),
                     ldike_valstr(L, -1, buf, sizeof buf));
    lua_pop(L, 1);
  }
  if (ldike_hole_above(L, 1, len)) /* elements past a hole would be dropped */
    ldike_argerror(L, 1, "element %zu must be a number, got nil", len + 1);
  a = new_array(L, type, width, len / width);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (store_value(L, a, (size_t)(i - 1)) != 0)
      list_changed(L, "array");
    lua_pop(L, 1);
  }
  return 1;
}

/* core.array_concat(list_of_arrays) */
static int l_array_concat(lua_State *L) {
  const dike_array *first = NULL;
  size_t len, total = 0, at = 0;
  int i, n;
  dike_array *out;
  ldike_checktable(L, 1);
  len = ldike_rawlen(L, 1);
  if (len == 0)
    ldike_argerror(L, 1, "list must hold at least one array");
  if (len > INT_MAX)
    ldike_argerror(L, 1, "list too long (%zu elements)", len);
  n = (int)len;
  /* All checks first (no allocation): arrays, same shape, total size. */
  for (i = 1; i <= n; i++) {
    const ud_array *ud;
    lua_rawgeti(L, 1, i);
    ud = (const ud_array *)ldike_testself(L, -1);
    if (ud == NULL)
      ldike_argerror(L, 1, "element %d must be a dike.array, got %s", i,
                     luaL_typename(L, -1));
    if (first == NULL)
      first = &ud->a;
    else if (ud->a.type != first->type || ud->a.width != first->width)
      ldike_argerror(L, 1, "arrays differ: element 1 is %s x%zu, element %d "
                           "is %s x%zu",
                     dike_elemtype_name(first->type), first->width, i,
                     dike_elemtype_name(ud->a.type), ud->a.width);
    if (ud->a.nrows > SIZE_MAX - total)
      ldike_argerror(L, 1, "too many rows in total");
    total += ud->a.nrows;
    lua_pop(L, 1); /* the list keeps it alive */
  }
  out = new_array(L, first->type, first->width, total);
  for (i = 1; i <= n; i++) {
    const ud_array *ud;
    lua_rawgeti(L, 1, i);
    ud = (const ud_array *)ldike_testself(L, -1);
    /* copy_rows checks the shape and that the rows fit in out. */
    if (ud == NULL || dike_array_copy_rows(out, at, &ud->a, 0, ud->a.nrows))
      list_changed(L, "array_concat");
    at += ud->a.nrows;
    lua_pop(L, 1);
  }
  if (at != total)
    list_changed(L, "array_concat");
  return 1;
}

static int l_is_array(lua_State *L) {
  lua_pushboolean(L, ldike_testself(L, 1) != NULL);
  return 1;
}

/* a[i] (width 1) and method lookup. */
static int l_index(lua_State *L) {
  const dike_array *a = SELF(L);
  int64_t i;
  char buf[48];
  if (lua_type(L, 2) != LUA_TNUMBER) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(2)); /* the methods; nil if none */
    return 1;
  }
  if (a->width != 1)
    ldike_error(L, "dike.array: a[i] needs width 1, got width %zu "
                   "(use a:get(row, col))",
                a->width);
  if (!ldike_toint64(L, 2, &i) || i < 1 || (uint64_t)i > a->nrows)
    ldike_error(L, "dike.array: index must be an integer in [1, %zu], got %s",
                a->nrows, ldike_valstr(L, 2, buf, sizeof buf));
  push_elem(L, a, (size_t)(i - 1));
  return 1;
}

/* a[k] = v: refused with a message that says why (without __newindex the
 * interpreter's own "attempt to index a userdata value" would not). */
static int l_newindex(lua_State *L) {
  char buf[48];
  (void)SELF(L);
  if (lua_type(L, 2) == LUA_TSTRING)
    ldike_error(L, "dike.array: arrays are read-only (cannot set a.%.40s)",
                lua_tostring(L, 2));
  ldike_error(L, "dike.array: arrays are read-only (cannot set a[%s])",
              ldike_valstr(L, 2, buf, sizeof buf));
  return 0; /* not reached */
}

static int l_len(lua_State *L) {
  ldike_pushsize(L, SELF(L)->nrows);
  return 1;
}

/* An integer argument in [lo, hi] as a size_t (hi <= 2^53: always true for
 * rows and columns of an array that fits in memory). */
static size_t check_size(lua_State *L, int arg, size_t lo, size_t hi,
                         const char *what) {
  int64_t top = hi > (size_t)LDIKE_MAXCOUNT ? LDIKE_MAXCOUNT : (int64_t)hi;
  return (size_t)ldike_checkint(L, arg, (int64_t)lo, top, what);
}

static int l_get(lua_State *L) {
  const dike_array *a = SELF(L);
  size_t row, col = 0, idx = 0;
  row = check_size(L, 2, 1, a->nrows, "row") - 1;
  if (!lua_isnoneornil(L, 3))
    col = check_size(L, 3, 1, a->width, "col") - 1;
  (void)dike_array_index(a, row, col, &idx);
  push_elem(L, a, idx);
  return 1;
}

static int l_totable(lua_State *L) {
  const dike_array *a = SELF(L);
  size_t len = dike_array_len(a), i;
  if (len > INT_MAX)
    ldike_error(L, "dike.array: too many elements for a table (%zu)", len);
  lua_createtable(L, (int)len, 0);
  for (i = 0; i < len; i++) {
    push_elem(L, a, i);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int l_type(lua_State *L) {
  lua_pushstring(L, dike_elemtype_name(SELF(L)->type));
  return 1;
}

static int l_width(lua_State *L) {
  ldike_pushsize(L, SELF(L)->width);
  return 1;
}

/* a:slice(first_row, nrows): a copy (the source may be collected). */
static int l_slice(lua_State *L) {
  const dike_array *a = SELF(L);
  size_t first = check_size(L, 2, 1, a->nrows + 1, "first_row") - 1;
  size_t nrows = check_size(L, 3, 0, a->nrows - first, "nrows");
  dike_array *out = new_array(L, a->type, a->width, nrows);
  (void)dike_array_copy_rows(out, 0, a, first, nrows);
  return 1;
}

static int l_tostring(lua_State *L) {
  const dike_array *a = SELF(L);
  char buf[96];
  snprintf(buf, sizeof buf, "dike.array<%s x%zu>(%zu rows)",
           dike_elemtype_name(a->type), a->width, a->nrows);
  lua_pushstring(L, buf);
  return 1;
}

void ldike_open_array(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__index", l_index},
      {"__newindex", l_newindex},
      {"__len", l_len},
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  static const luaL_Reg methods[] = {
      {"get", l_get},     {"totable", l_totable}, {"type", l_type},
      {"width", l_width}, {"slice", l_slice},     {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"array", l_array},
      {"array_concat", l_array_concat},
      {"is_array", l_is_array},
      {NULL, NULL},
  };
  ldike_newclass(L, LDIKE_ARRAY, meta, methods);
  ldike_setmodfuncs(L, funcs);
}
