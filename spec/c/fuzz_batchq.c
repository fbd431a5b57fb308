/*
 * fuzz_batchq.c - libFuzzer target: sequences of batch-queue operations
 * (dike_batchq_*) checked step by step against a plain reference model.
 *
 * The model is a list of the live calls in arrival order (id, rows) and
 * their total. After every operation the queue must agree with it: count,
 * rows, every result code, and for take the segments (ids, rows, offsets in
 * arrival order). Ids must be fresh (not live), small (never above the
 * most calls live at once since the queue was last empty) and restart at 1
 * on an empty queue (dike.h). Row counts come from the input in full 64-bit
 * range, so the overflow paths (EOVERFLOW, would_exceed near SIZE_MAX) are
 * reached too. Any mismatch calls abort(): libFuzzer reports a crash.
 *
 * Build and run: `make fuzz` (build-fuzz/, seeds in spec/c/corpus/fuzz_batchq/),
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     spec/c/fuzz_batchq.c csrc/errors.c csrc/batchq.c -o fuzz_batchq
 *   ./fuzz_batchq -max_total_time=60 spec/c/corpus/fuzz_batchq
 */
#include <stdlib.h>
#include <string.h>

#include "../../csrc/dike.h"
#include "fuzz_input.h"

#define MODEL_MAX 1024 /* live calls the model follows; more appends are skipped */

typedef struct {
  size_t id, rows;
} call;

typedef struct {
  call live[MODEL_MAX]; /* arrival order */
  size_t n;
  size_t total; /* never overflows: appends that would are refused */
  size_t peak;  /* most live calls since the queue was last empty */
} model;

static void check(int ok) {
  if (!ok)
    abort();
}

/* total + rows > cap, computed as a two-word sum (no shared formula with
 * the implementation). */
static int exceeds(size_t total, size_t rows, size_t cap) {
  size_t sum = total + rows;
  int carry = sum < total;
  return carry || sum > cap;
}

static int is_live(const model *m, size_t id) {
  size_t k;
  for (k = 0; k < m->n; k++)
    if (m->live[k].id == id)
      return 1;
  return 0;
}

static void forget(model *m, size_t k) {
  m->total -= m->live[k].rows;
  memmove(m->live + k, m->live + k + 1, (m->n - k - 1) * sizeof *m->live);
  m->n--;
  if (m->n == 0)
    m->peak = 0;
}

static void op_append(dike_batchq *q, model *m, size_t rows) {
  size_t id = 0;
  int rc;
  if (m->n == MODEL_MAX)
    return;
  rc = dike_batchq_append(q, rows, &id);
  if (rows == 0) {
    check(rc == DIKE_EINVAL && id == 0);
    return;
  }
  if (exceeds(m->total, rows, SIZE_MAX)) {
    check(rc == DIKE_EOVERFLOW && id == 0);
    return;
  }
  check(rc == 0);
  check(id >= 1 && !is_live(m, id));
  if (m->n == 0)
    check(id == 1);
  m->live[m->n].id = id;
  m->live[m->n].rows = rows;
  m->n++;
  m->total += rows;
  if (m->n > m->peak)
    m->peak = m->n;
  check(id <= m->peak);
}

static void op_cancel(dike_batchq *q, model *m, size_t id) {
  size_t k;
  for (k = 0; k < m->n; k++)
    if (m->live[k].id == id) {
      check(dike_batchq_cancel(q, id) == 1);
      forget(m, k);
      check(dike_batchq_cancel(q, id) == 0); /* twice is harmless */
      return;
    }
  check(dike_batchq_cancel(q, id) == 0);
}

static void op_take(dike_batchq *q, model *m) {
  const dike_batchq_seg *segs = NULL;
  size_t n = (size_t)-1, k, offset = 0;
  dike_batchq_take(q, &segs, &n);
  check(n == m->n);
  for (k = 0; k < n; k++) {
    check(segs[k].id == m->live[k].id);
    check(segs[k].rows == m->live[k].rows);
    check(segs[k].offset == offset);
    offset += segs[k].rows;
  }
  check(offset == m->total);
  m->n = 0;
  m->total = 0;
  m->peak = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static model m; /* large: not on the stack */
  fuzz_input in;
  dike_batchq q;
  fuzz_input_init(&in, data, size);
  memset(&m, 0, sizeof m);
  dike_batchq_init(&q);
  while (!fuzz_input_done(&in)) {
    uint8_t op = fuzz_byte(&in);
    switch (op % 10) {
    case 0:
    case 1:
    case 2: /* the common case: a small call */
      op_append(&q, &m, (size_t)fuzz_byte(&in) + 1);
      break;
    case 3: /* any size, 0 and near SIZE_MAX included */
      op_append(&q, &m, (size_t)fuzz_u64(&in));
      break;
    case 4: /* cancel a live call */
      if (m.n > 0)
        op_cancel(&q, &m, m.live[fuzz_byte(&in) % m.n].id);
      break;
    case 5: { /* cancel any id: stale, never issued, 0, huge */
      size_t id = (size_t)fuzz_u64(&in);
      op_cancel(&q, &m, op & 0x80 ? id : id % (MODEL_MAX + 3));
      break;
    }
    case 6:
      op_take(&q, &m);
      break;
    case 7: {
      size_t rows = (size_t)fuzz_u64(&in), cap = (size_t)fuzz_u64(&in);
      check(dike_batchq_would_exceed(&q, rows, cap) == exceeds(m.total, rows, cap));
      break;
    }
    case 8: {
      size_t target = (size_t)fuzz_u64(&in);
      check(dike_batchq_reached(&q, target) == (m.total >= target));
      break;
    }
    default: /* free releases everything; the queue is then empty and usable */
      dike_batchq_free(&q);
      m.n = 0;
      m.total = 0;
      m.peak = 0;
      break;
    }
    check(dike_batchq_count(&q) == m.n);
    check(dike_batchq_rows(&q) == m.total);
  }
  dike_batchq_free(&q);
  return 0;
}
