/* ldike_batchq.c - Lua binding of the batch queue (dike.BatchQ). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ldike.h"

#define SELF(L) ((dike_batchq *)ldike_checkself((L), 1, "dike.batchq"))

/* core.batchq() */
static int l_batchq(lua_State *L) {
  dike_batchq *q = (dike_batchq *)ldike_newuserdata(L, sizeof *q);
  dike_batchq_init(q);
  ldike_setself(L);
  return 1;
}

static int l_append(lua_State *L) {
  dike_batchq *q = SELF(L);
  size_t rows = (size_t)ldike_checkint(L, 2, 1, LDIKE_MAXCOUNT, "rows");
  size_t id;
  int rc = dike_batchq_append(q, rows, &id);
  if (rc != 0)
    return luaL_error(L, "dike.batchq: %s", dike_strerror(rc));
  ldike_pushsize(L, id);
  /* The queued rows too: the batcher decides whether to send without a second call. */
  ldike_pushsize(L, dike_batchq_rows(q));
  return 2;
}

static int l_cancel(lua_State *L) {
  dike_batchq *q = SELF(L);
  int64_t id;
  (void)ldike_checknumber(L, 2);
  /* Any other number simply is not a queued call. */
  lua_pushboolean(L, ldike_toint64(L, 2, &id) && id > 0 &&
                         dike_batchq_cancel(q, (size_t)id));
  return 1;
}

static int l_rows(lua_State *L) {
  ldike_pushsize(L, dike_batchq_rows(SELF(L)));
  return 1;
}

static int l_count(lua_State *L) {
  ldike_pushsize(L, dike_batchq_count(SELF(L)));
  return 1;
}

/* q:take(out) -> n, rows: the caller reuses `out`, so no table per batch.
 *
 * The segments are copied out of the queue before any Lua call: filling
 * `out` may allocate, an allocation may run a __gc finalizer, and a
 * finalizer could append to this very queue, reusing or moving the memory
 * dike_batchq_take pointed at. Small batches use the C stack; larger ones
 * a scratch userdata allocated before taking (re-checked, since that
 * allocation may itself run finalizers). */
#define TAKE_LOCAL 64

static int l_take(lua_State *L) {
  dike_batchq *q = SELF(L);
  dike_batchq_seg local[TAKE_LOCAL], *buf = local;
  const dike_batchq_seg *segs;
  size_t n, i, rows, room = TAKE_LOCAL;
  ldike_checktable(L, 2);
  while (dike_batchq_count(q) > room) {
    room = dike_batchq_count(q);
    /* Checked before taking, so that an error loses nothing. */
    if (room > (size_t)(INT_MAX / 3))
      return luaL_error(L, "dike.batchq: too many calls to take at once");
    buf = (dike_batchq_seg *)ldike_newuserdata(L, room * sizeof *buf);
  }
  rows = dike_batchq_rows(q);
  dike_batchq_take(q, &segs, &n);
  if (n != 0) /* segs may be NULL then, and memcpy(.., NULL, 0) is UB */
    memcpy(buf, segs, n * sizeof *buf); /* n <= room; no Lua call before */
  for (i = 0; i < n; i++) {
    int k = 3 * (int)i;
    ldike_pushsize(L, buf[i].id);
    lua_rawseti(L, 2, k + 1);
    ldike_pushsize(L, buf[i].rows);
    lua_rawseti(L, 2, k + 2);
    ldike_pushsize(L, buf[i].offset);
    lua_rawseti(L, 2, k + 3);
  }
  ldike_pushsize(L, n);
  ldike_pushsize(L, rows);
  return 2;
}

static int l_gc(lua_State *L) {
  dike_batchq *q = (dike_batchq *)ldike_testself(L, 1);
  if (q != NULL)
    dike_batchq_free(q);
  return 0;
}

static int l_tostring(lua_State *L) {
  dike_batchq *q = SELF(L);
  char buf[80];
  snprintf(buf, sizeof buf, "dike.batchq(%zu calls, %zu rows)",
           dike_batchq_count(q), dike_batchq_rows(q));
  lua_pushstring(L, buf);
  return 1;
}

void ldike_open_batchq(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", l_gc},
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  static const luaL_Reg methods[] = {
      {"append", l_append}, {"cancel", l_cancel}, {"rows", l_rows},
      {"count", l_count},   {"take", l_take},     {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"batchq", l_batchq},
      {NULL, NULL},
  };
  ldike_newclass(L, LDIKE_BATCHQ, meta, methods);
  ldike_setmodfuncs(L, funcs);
}
