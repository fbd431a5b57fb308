/* batchq.c - the calls queued for the open batch, as row segments (dike.h). */
#include <stdlib.h>
#include <string.h>

#include "dike.h"

/* Grow *p (an array of elem-byte items with capacity *cap) to hold at least
 * need items, doubling. *p and *cap are untouched on failure. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  size_t ncap;
  void *np;
  if (need <= *cap)
    return 0;
  ncap = *cap != 0 ? *cap : 8;
  while (ncap < need)
    ncap = ncap <= SIZE_MAX / 2 ? ncap * 2 : need;
  if (ncap > SIZE_MAX / elem)
    return DIKE_EOVERFLOW;
  np = realloc(*p, ncap * elem);
  if (np == NULL)
    return DIKE_ENOMEM;
  *p = np;
  *cap = ncap;
  return 0;
}

/* Whether order[pos] is the live entry of its call (not a stale one left by
 * a cancel, whose id may since have been reused elsewhere). */
static int is_live(const dike_batchq *q, size_t pos) {
  const dike_batchq_slot *s = &q->slots[q->order[pos].id - 1];
  return s->rows != 0 && s->link == pos;
}

/* Forget every call at once: with nothing live, ids restart from 1. */
static void reset(dike_batchq *q) {
  q->nslots = 0;
  q->free_head = 0;
  q->norder = 0;
  q->count = 0;
  q->rows = 0;
}

/* Drop stale entries from order[], keeping arrival order. */
static void compact(dike_batchq *q) {
  size_t r, w = 0;
  for (r = 0; r < q->norder; r++) {
    if (is_live(q, r)) {
      q->order[w] = q->order[r];
      q->slots[q->order[w].id - 1].link = w;
      w++;
    }
  }
  q->norder = w;
}

void dike_batchq_init(dike_batchq *q) {
  memset(q, 0, sizeof *q);
}

void dike_batchq_free(dike_batchq *q) {
  free(q->slots);
  free(q->order);
  dike_batchq_init(q);
}

int dike_batchq_append(dike_batchq *q, size_t rows, size_t *id) {
  size_t sid;
  int rc;
  if (rows == 0)
    return DIKE_EINVAL;
  if (rows > SIZE_MAX - q->rows)
    return DIKE_EOVERFLOW;
  /* Cancels leave stale entries; reclaim them instead of growing when they
   * fill half the array (amortized O(1): the next compaction needs at
   * least order_cap / 2 more appends). */
  if (q->norder == q->order_cap && q->count <= q->norder / 2)
    compact(q);
  rc = grow((void **)&q->order, &q->order_cap, q->norder + 1, sizeof *q->order);
  if (rc != 0)
    return rc;
  if (q->free_head == 0) {
    rc = grow((void **)&q->slots, &q->slots_cap, q->nslots + 1,
              sizeof *q->slots);
    if (rc != 0)
      return rc;
  }
  /* Nothing can fail from here on. */
  if (q->free_head != 0) {
    sid = q->free_head;
    q->free_head = q->slots[sid - 1].link;
  } else {
    sid = ++q->nslots;
  }
  q->slots[sid - 1].rows = rows;
  q->slots[sid - 1].link = q->norder;
  q->order[q->norder].id = sid;
  q->order[q->norder].rows = rows;
  q->order[q->norder].offset = 0;
  q->norder++;
  q->count++;
  q->rows += rows;
  *id = sid;
  return 0;
}

int dike_batchq_cancel(dike_batchq *q, size_t id) {
  dike_batchq_slot *s;
  if (id == 0 || id > q->nslots)
    return 0;
  s = &q->slots[id - 1];
  if (s->rows == 0)
    return 0;
  q->rows -= s->rows;
  q->count--;
  s->rows = 0;
  s->link = q->free_head;
  q->free_head = id;
  if (q->count == 0)
    reset(q);
  return 1;
}

size_t dike_batchq_count(const dike_batchq *q) {
  return q->count;
}

size_t dike_batchq_rows(const dike_batchq *q) {
  return q->rows;
}

int dike_batchq_would_exceed(const dike_batchq *q, size_t rows, size_t cap) {
  return rows > cap || q->rows > cap - rows;
}

int dike_batchq_reached(const dike_batchq *q, size_t target) {
  return q->rows >= target;
}

void dike_batchq_take(dike_batchq *q, const dike_batchq_seg **segs,
                      size_t *n) {
  size_t r, w = 0, offset = 0;
  for (r = 0; r < q->norder; r++) {
    if (is_live(q, r)) {
      q->order[w] = q->order[r];
      q->order[w].offset = offset;
      offset += q->order[w].rows; /* <= q->rows: cannot overflow */
      w++;
    }
  }
  reset(q);
  *segs = q->order;
  *n = w;
}
