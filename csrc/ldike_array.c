/* ldike_array.c - Lua binding of typed arrays (dike.Array) and of the
 * batch buffers dike.batch fills in array mode.
 *
 * An array's elements live inside its userdata, right after the
 * dike_array header (a view over that memory): one allocation, and the
 * Lua GC sees the full size, so big arrays count towards collection. With
 * nothing outside the userdata to release, the type needs no __gc (which
 * would also delay every array's reclamation by a GC cycle). Arrays are
 * read-only from Lua; a slice is a copy (one memcpy).
 *
 * A batch buffer is an array made with rows to spare (core.array_buffer):
 * dike.batch appends each call's rows as the call arrives
 * (core.array_append; when the spare rows run out it returns a larger
 * buffer holding the rows so far) and hands the buffer itself to the
 * batched function once the batch is sent; from then on nothing appends
 * to it, and to Lua it is an ordinary (read-only) array of its rows.
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

/* A new array on the stack with room for caprows rows, nrows of them in
 * use: every argument must have been checked (nrows <= caprows). */
static dike_array *new_buffer(lua_State *L, int type, size_t width,
                              size_t nrows, size_t caprows) {
  size_t nbytes;
  ud_array *ud;
  if (dike_array_nbytes(type, width, caprows, &nbytes) != 0 ||
      nbytes > SIZE_MAX - offsetof(ud_array, data))
    ldike_error(L, "dike.array: too large (%zu rows of width %zu)", caprows,
                width);
  ud = (ud_array *)ldike_newuserdata(L, offsetof(ud_array, data) + nbytes);
  (void)dike_array_view(&ud->a, type, width, nrows, caprows, ud->data);
  ldike_setself(L);
  return &ud->a;
}

/* A new full array of nrows rows on the stack. */
static dike_array *new_array(lua_State *L, int type, size_t width,
                             size_t nrows) {
  return new_buffer(L, type, width, nrows, nrows);
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

/* Store the number on top as element i: 0, or DIKE_ERANGE if it does not
 * fit (5.3+ integers are checked exactly, so int64 arrays keep all 64 bits
 * there). */
static int store_value(lua_State *L, dike_array *a, size_t i) {
  if (lua_type(L, -1) != LUA_TNUMBER)
    return DIKE_EINVAL;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, -1))
    return dike_array_set_int64(a, i, (int64_t)lua_tointeger(L, -1));
#endif
  return dike_array_set(a, i, (double)lua_tonumber(L, -1));
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
  /* One pass, after allocating: each element is read once, checked and
   * stored (an allocation may run a __gc finalizer that changes the list;
   * reading afterwards, what is stored is what was checked). A refused
   * element leaves the new array to the GC. */
  a = new_array(L, type, width, len / width);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TNUMBER)
      ldike_argerror(L, 1, "element %d must be a number, got %s", i,
                     luaL_typename(L, -1));
    if (store_value(L, a, (size_t)(i - 1)) != 0)
      ldike_argerror(L, 1, "element %d must fit %s, got %s", i,
                     dike_elemtype_name(type),
                     ldike_valstr(L, -1, buf, sizeof buf));
    lua_pop(L, 1);
  }
  if (ldike_hole_above(L, 1, len)) /* elements past a hole would be dropped */
    ldike_argerror(L, 1, "element %zu must be a number, got nil", len + 1);
  return 1;
}

/* core.array_doubles(nrows, width) -> a zeroed array of nrows rows of width
 * doubles. On LuaJIT, dike.array fills it through the FFI from a list it
 * has checked (lua/dike/array.lua): each element costs a store, where
 * core.array's C API reads cost tens of nanoseconds. */
static int l_doubles(lua_State *L) {
  size_t nrows = (size_t)ldike_checkint(L, 1, 0, INT_MAX, "nrows");
  size_t width =
      (size_t)ldike_checkint(L, 2, 1, DIKE_ARRAY_MAX_WIDTH, "width");
  dike_array *a;
  if (nrows * width > INT_MAX) /* width <= 2^31 - 1: no overflow */
    ldike_argerror(L, 1, "too many elements (%zu rows of width %zu)", nrows,
                   width);
  a = new_array(L, DIKE_DOUBLE, width, nrows);
  if (nrows > 0)
    memset(a->data, 0, nrows * width * sizeof(double));
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

/* a:slice(first_row, nrows), core.array_slice(a, first_row, nrows): a
 * copy (one memcpy; the source may be collected). dike.batch gives each
 * caller of an array-mode batch its rows of the result this way. */
static int l_slice(lua_State *L) {
  const dike_array *a = SELF(L);
  size_t first = check_size(L, 2, 1, a->nrows + 1, "first_row") - 1;
  size_t nrows = check_size(L, 3, 0, a->nrows - first, "nrows");
  dike_array *out = new_array(L, a->type, a->width, nrows);
  (void)dike_array_copy_rows(out, 0, a, first, nrows);
  return 1;
}

/* ---- batch buffers ---- */

/* core.array_buffer(like, caprows) -> an empty array of like's type and
 * width with room for caprows rows (>= 1). */
static int l_buffer(lua_State *L) {
  const ud_array *like = (const ud_array *)ldike_checkself(L, 1, "dike.array");
  size_t caprows = (size_t)ldike_checkint(L, 2, 1, LDIKE_MAXCOUNT, "caprows");
  (void)new_buffer(L, like->a.type, like->a.width, 0, caprows);
  return 1;
}

/* core.array_append(buf, src) -> buf', rows | nil, code
 * Appends src's rows to the buffer; buf' is buf, or, when buf had too few
 * spare rows, a new buffer with more room holding buf's rows and src's
 * (the caller keeps buf' from then on). rows: src's rows (0 appends
 * nothing). nil and core.EINVAL when src is not a dike.array, nil and
 * core.EMISMATCH when its type or width differs from buf's. */
static int l_append(lua_State *L) {
  dike_array *buf =
      &((ud_array *)ldike_checkself(L, 1, "dike.array"))->a;
  const ud_array *src = (const ud_array *)ldike_testself(L, 2);
  int rc;
  if (src == NULL || src == (const ud_array *)(void *)buf) {
    lua_pushnil(L);
    lua_pushinteger(L, src == NULL ? DIKE_EINVAL : DIKE_EMISMATCH);
    return 2;
  }
  rc = dike_array_append(buf, &src->a);
  if (rc == DIKE_EFULL) {
    size_t need = buf->nrows + src->a.nrows; /* no overflow: both fit memory */
    size_t cap = dike_array_grow_rows(buf->type, buf->width, buf->caprows,
                                      need);
    dike_array *bigger;
    if (cap == 0)
      ldike_error(L, "dike.array: %zu rows of width %zu do not fit: %s", need,
                  buf->width, dike_strerror(DIKE_EOVERFLOW));
    bigger = new_buffer(L, buf->type, buf->width, buf->nrows, cap);
    (void)dike_array_copy_rows(bigger, 0, buf, 0, buf->nrows);
    rc = dike_array_append(bigger, &src->a);
    /* bigger is on top of the stack */
  } else {
    lua_pushvalue(L, 1);
  }
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushinteger(L, rc);
    return 2;
  }
  ldike_pushsize(L, src->a.nrows);
  return 2;
}

/* core.array_split(a, nrows, n, wanted) -> parts: parts[i] a new array of
 * the next nrows[i] rows of a (one memcpy each), for i = 1..n, made where
 * wanted[i] is true (not false or nil) and nrows[i] > 0; the rows of the
 * others are skipped. dike.batch hands each caller its rows of an array
 * result this way: one call per batch. The counts must add up to #a. */
static int l_split(lua_State *L) {
  const dike_array *a = SELF(L);
  int64_t n = ldike_checkint(L, 3, 0, INT_MAX, "n");
  size_t at = 0;
  int i;
  ldike_checktable(L, 2);
  ldike_checktable(L, 4);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= (int)n; i++) {
    int64_t r;
    int wanted;
    lua_rawgeti(L, 2, i);
    if (!ldike_toint64(L, -1, &r) || r < 0 || (uint64_t)r > a->nrows - at)
      ldike_error(L, "dike.array: split: rows of part %d do not fit (%zu rows "
                     "left)", i, a->nrows - at);
    lua_pop(L, 1);
    lua_rawgeti(L, 4, i);
    wanted = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (wanted && r > 0) {
      dike_array *part = new_array(L, a->type, a->width, (size_t)r);
      (void)dike_array_copy_rows(part, 0, a, at, (size_t)r);
      lua_rawseti(L, -2, i);
    }
    at += (size_t)r;
  }
  if (at != a->nrows)
    ldike_error(L, "dike.array: split: the parts hold %zu rows, the array %zu",
                at, a->nrows);
  return 1;
}

/* For LuaJIT's FFI. (1) The address of the append that dike.batch's array
 * mode calls for every call, so that the call runs as compiled code
 * (through the Lua C API, a call here cost ~2,000 instructions of trace
 * exits on the caller's path, more than the copy). (2) The layout of an
 * array's header, the dike_array at the start of its userdata, so that
 * lua/dike/array.lua reads a[i] and #a through the FFI: compiled, where a
 * C __index exits the trace of every read. The module exports no other
 * symbol: core.array_ffi() returns a light userdata that the FFI casts to
 * this layout; magic and version first, so that a mismatch is seen and the
 * C API used instead. append(buf, src) takes two dike.array userdata
 * (their payloads: the FFI's void * of a userdata) that the caller has
 * checked are arrays, and returns src's rows once appended, or a negative
 * DIKE_E* code (DIKE_EFULL: no room; DIKE_EMISMATCH: type or width). */
#define LDIKE_ARRAY_FFI_MAGIC 0x79617261u /* "aray" in little-endian bytes */
#define LDIKE_ARRAY_FFI_VERSION 1u
typedef struct ldike_array_ffi {
  uint32_t magic;
  uint32_t version;
  double (*append)(void *buf, const void *src);
  uint32_t size;                               /* sizeof(dike_array) */
  uint32_t data, nrows, caprows, width, type; /* offsets of its fields */
  int32_t types[DIKE_ELEMTYPE_COUNT_];         /* double, float, int32, int64, uint8 */
} ldike_array_ffi;

static double ffi_append(void *buf, const void *src) {
  dike_array *b = &((ud_array *)buf)->a;
  const dike_array *s = &((const ud_array *)src)->a;
  int rc;
  if (b == s)
    return (double)DIKE_EMISMATCH;
  rc = dike_array_append(b, s);
  return rc != 0 ? (double)rc : (double)s->nrows;
}

static const ldike_array_ffi array_ffi = {
    LDIKE_ARRAY_FFI_MAGIC,
    LDIKE_ARRAY_FFI_VERSION,
    ffi_append,
    (uint32_t)sizeof(dike_array),
    (uint32_t)offsetof(dike_array, data),
    (uint32_t)offsetof(dike_array, nrows),
    (uint32_t)offsetof(dike_array, caprows),
    (uint32_t)offsetof(dike_array, width),
    (uint32_t)offsetof(dike_array, type),
    {DIKE_DOUBLE, DIKE_FLOAT, DIKE_INT32, DIKE_INT64, DIKE_UINT8}};

static int l_ffi(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&array_ffi); /* read only */
  return 1;
}

/* core.array_remove(buf, first_row, nrows): take rows out of a buffer (a
 * cancelled call), moving the later rows down. */
static int l_remove(lua_State *L) {
  dike_array *buf =
      &((ud_array *)ldike_checkself(L, 1, "dike.array"))->a;
  size_t first = check_size(L, 2, 1, buf->nrows + 1, "first_row") - 1;
  size_t nrows = check_size(L, 3, 0, buf->nrows - first, "nrows");
  (void)dike_array_remove_rows(buf, first, nrows);
  return 0;
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
      {"array_doubles", l_doubles},
      {"is_array", l_is_array},
      {"array_slice", l_slice},
      {"array_buffer", l_buffer},
      {"array_append", l_append},
      {"array_remove", l_remove},
      {"array_split", l_split},
      {"array_ffi", l_ffi},
      {NULL, NULL},
  };
  ldike_newclass(L, LDIKE_ARRAY, meta, methods);
  ldike_setmodfuncs(L, funcs);
}
