/*
 * fuzz_core.c - libFuzzer target for the buffer code: the batch queue
 * against a model, and array concat/slice over fuzzer-chosen shapes.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     spec/c/fuzz_core.c csrc/errors.c csrc/backoff.c csrc/batchq.c \
 *     csrc/array.c -o fuzz_core && ./fuzz_core -max_total_time=60
 *
 * Any model mismatch calls abort(), which libFuzzer reports as a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "../../csrc/dike.h"

#define MODEL_MAX 256

static void check(int ok) {
  if (!ok)
    abort();
}

static void fuzz_batchq(const uint8_t *data, size_t size) {
  dike_batchq q;
  size_t ids[MODEL_MAX], rows[MODEL_MAX], n = 0, total = 0, i;
  dike_batchq_init(&q);
  for (i = 0; i + 1 < size; i += 2) {
    uint8_t op = data[i] % 4, arg = data[i + 1];
    if (op <= 1 && n < MODEL_MAX) { /* append */
      size_t id = 0, r = (size_t)arg + (op == 1 ? 1000 : 0), k;
      int rc = dike_batchq_append(&q, r, &id);
      if (r == 0) {
        check(rc == DIKE_EINVAL);
        continue;
      }
      check(rc == 0 && id >= 1);
      for (k = 0; k < n; k++)
        check(ids[k] != id);
      ids[n] = id;
      rows[n] = r;
      n++;
      total += r;
    } else if (op == 2) { /* cancel */
      size_t id = arg % (MODEL_MAX + 2), k;
      int live = 0;
      for (k = 0; k < n; k++)
        if (ids[k] == id) {
          live = 1;
          total -= rows[k];
          memmove(ids + k, ids + k + 1, (n - k - 1) * sizeof *ids);
          memmove(rows + k, rows + k + 1, (n - k - 1) * sizeof *rows);
          n--;
          break;
        }
      check(dike_batchq_cancel(&q, id) == live);
    } else { /* take */
      const dike_batchq_seg *segs;
      size_t got, k, offset = 0;
      dike_batchq_take(&q, &segs, &got);
      check(got == n);
      for (k = 0; k < got; k++) {
        check(segs[k].id == ids[k] && segs[k].rows == rows[k]);
        check(segs[k].offset == offset);
        offset += rows[k];
      }
      n = 0;
      total = 0;
    }
    check(dike_batchq_count(&q) == n && dike_batchq_rows(&q) == total);
  }
  dike_batchq_free(&q);
}

static void fuzz_array(const uint8_t *data, size_t size) {
  dike_array parts[4], out, s;
  const dike_array *ptrs[4];
  size_t np, i, k, first, nrows;
  int rc;
  if (size < 12)
    return;
  np = (size_t)data[0] % 4 + 1;
  for (i = 0; i < np; i++) {
    /* Mostly valid shapes; sometimes an unknown type or width 0. */
    int type = data[1 + i] % (DIKE_ELEMTYPE_COUNT_ + 1);
    size_t width = (size_t)data[5] % 4 + (data[6 + i] == 7), n = data[6 + i] % 9;
    int valid = type < DIKE_ELEMTYPE_COUNT_ && width >= 1;
    rc = dike_array_init(&parts[i], type, width, n);
    check((rc == 0) == valid);
    if (rc != 0) {
      np = i;
      break;
    }
    for (k = 0; k < dike_array_len(&parts[i]); k++) {
      rc = dike_array_set(&parts[i], k, (double)(k % 300) - 20);
      check(rc == 0 || rc == DIKE_ERANGE);
    }
    ptrs[i] = &parts[i];
  }
  if (np > 0) {
    rc = dike_array_concat(&out, ptrs, np);
    if (rc == 0) {
      size_t at = 0;
      for (i = 0; i < np; i++) {
        for (k = 0; k < dike_array_len(&parts[i]); k++) {
          double a, b;
          check(dike_array_get(&parts[i], k, &a) == 0);
          check(dike_array_get(&out, at + k, &b) == 0);
          check(a == b || (a != a && b != b));
        }
        at += dike_array_len(&parts[i]);
      }
      check(at == dike_array_len(&out));
      first = data[10] % (out.nrows + 2);
      nrows = data[11] % (out.nrows + 2);
      rc = dike_array_slice(&s, &out, first, nrows);
      check((rc == 0) == (first <= out.nrows && nrows <= out.nrows - first));
      if (rc == 0) {
        for (k = 0; k < dike_array_len(&s); k++) {
          double a, b;
          check(dike_array_get(&s, k, &a) == 0);
          check(dike_array_get(&out, first * out.width + k, &b) == 0);
          check(a == b);
        }
        dike_array_free(&s);
      }
      dike_array_free(&out);
    } else {
      check(rc == DIKE_EMISMATCH);
    }
  }
  for (i = 0; i < np; i++)
    dike_array_free(&parts[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] & 1)
    fuzz_batchq(data + 1, size - 1);
  else
    fuzz_array(data + 1, size - 1);
  return 0;
}
