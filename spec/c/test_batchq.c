/* test_batchq.c - append / cancel / take sequences, id reuse, a model test. */
#include "../../csrc/dike.h"
#include "test.h"

/* Take, and compare with the expected (id, rows) pairs; offsets are the
 * running sums. */
static void check_take(dike_batchq *q, const size_t *want, size_t nwant) {
  const dike_batchq_seg *segs = NULL;
  size_t n = 12345, i, offset = 0;
  dike_batchq_take(q, &segs, &n);
  CHECK_INT(n, nwant);
  for (i = 0; i < n && i < nwant; i++) {
    CHECK_INT(segs[i].id, want[2 * i]);
    CHECK_INT(segs[i].rows, want[2 * i + 1]);
    CHECK_INT(segs[i].offset, offset);
    offset += want[2 * i + 1];
  }
  CHECK_INT(dike_batchq_count(q), 0);
  CHECK_INT(dike_batchq_rows(q), 0);
}

static size_t append(dike_batchq *q, size_t rows) {
  size_t id = 0;
  CHECK_INT(dike_batchq_append(q, rows, &id), 0);
  return id;
}

TEST(empty_queue) {
  dike_batchq q;
  dike_batchq_init(&q);
  CHECK_INT(dike_batchq_count(&q), 0);
  CHECK_INT(dike_batchq_rows(&q), 0);
  check_take(&q, NULL, 0);
  check_take(&q, NULL, 0);
  CHECK_INT(dike_batchq_cancel(&q, 1), 0);
  dike_batchq_free(&q);
  dike_batchq_free(&q); /* twice is fine */
}

TEST(append_and_take_in_order) {
  dike_batchq q;
  size_t want[] = {1, 3, 2, 1, 3, 5};
  dike_batchq_init(&q);
  CHECK_INT(append(&q, 3), 1);
  CHECK_INT(append(&q, 1), 2);
  CHECK_INT(append(&q, 5), 3);
  CHECK_INT(dike_batchq_count(&q), 3);
  CHECK_INT(dike_batchq_rows(&q), 9);
  check_take(&q, want, 3);
  /* Ids restart once the queue is empty. */
  CHECK_INT(append(&q, 2), 1);
  {
    size_t want2[] = {1, 2};
    check_take(&q, want2, 1);
  }
  dike_batchq_free(&q);
}

TEST(append_refuses_bad_rows) {
  dike_batchq q;
  size_t id = 77;
  dike_batchq_init(&q);
  CHECK_INT(dike_batchq_append(&q, 0, &id), DIKE_EINVAL);
  CHECK_INT(id, 77);
  CHECK_INT(append(&q, SIZE_MAX - 1), 1);
  CHECK_INT(dike_batchq_append(&q, 2, &id), DIKE_EOVERFLOW);
  CHECK_INT(id, 77);
  CHECK_INT(dike_batchq_count(&q), 1);
  CHECK_INT(dike_batchq_rows(&q), SIZE_MAX - 1);
  CHECK_INT(append(&q, 1), 2); /* exactly SIZE_MAX fits */
  CHECK(dike_batchq_rows(&q) == SIZE_MAX);
  dike_batchq_free(&q);
}

TEST(cancel_first_middle_last) {
  dike_batchq q;
  dike_batchq_init(&q);
  append(&q, 1);  /* 1 */
  append(&q, 2);  /* 2 */
  append(&q, 3);  /* 3 */
  append(&q, 4);  /* 4 */
  append(&q, 5);  /* 5 */
  CHECK_INT(dike_batchq_cancel(&q, 1), 1);
  CHECK_INT(dike_batchq_cancel(&q, 3), 1);
  CHECK_INT(dike_batchq_cancel(&q, 5), 1);
  CHECK_INT(dike_batchq_count(&q), 2);
  CHECK_INT(dike_batchq_rows(&q), 6);
  {
    size_t want[] = {2, 2, 4, 4};
    check_take(&q, want, 2);
  }
  dike_batchq_free(&q);
}

TEST(cancel_twice_unknown_and_stale) {
  dike_batchq q;
  dike_batchq_init(&q);
  append(&q, 1);
  append(&q, 1);
  CHECK_INT(dike_batchq_cancel(&q, 2), 1);
  CHECK_INT(dike_batchq_cancel(&q, 2), 0);
  CHECK_INT(dike_batchq_cancel(&q, 0), 0);
  CHECK_INT(dike_batchq_cancel(&q, 3), 0);
  CHECK_INT(dike_batchq_cancel(&q, SIZE_MAX), 0);
  CHECK_INT(dike_batchq_count(&q), 1);
  CHECK_INT(dike_batchq_rows(&q), 1);
  dike_batchq_free(&q);
}

TEST(cancel_all_then_reuse) {
  dike_batchq q;
  dike_batchq_init(&q);
  append(&q, 2);
  append(&q, 3);
  CHECK_INT(dike_batchq_cancel(&q, 2), 1);
  CHECK_INT(dike_batchq_cancel(&q, 1), 1);
  CHECK_INT(dike_batchq_count(&q), 0);
  CHECK_INT(dike_batchq_rows(&q), 0);
  CHECK_INT(append(&q, 7), 1);
  {
    size_t want[] = {1, 7};
    check_take(&q, want, 1);
  }
  dike_batchq_free(&q);
}

TEST(reused_id_keeps_arrival_order) {
  /* A cancelled id reused by a later call: the stale entry is skipped and
   * the new call comes at its own (later) place. */
  dike_batchq q;
  dike_batchq_init(&q);
  append(&q, 1);                          /* id 1 */
  append(&q, 2);                          /* id 2 */
  append(&q, 3);                          /* id 3 */
  CHECK_INT(dike_batchq_cancel(&q, 1), 1);
  CHECK_INT(append(&q, 4), 1);            /* id 1 again, last */
  CHECK_INT(dike_batchq_cancel(&q, 2), 1);
  CHECK_INT(append(&q, 5), 2);            /* id 2 again, last */
  CHECK_INT(dike_batchq_rows(&q), 12);
  {
    size_t want[] = {3, 3, 1, 4, 2, 5};
    check_take(&q, want, 3);
  }
  dike_batchq_free(&q);
}

TEST(cancel_after_take_is_harmless) {
  dike_batchq q;
  dike_batchq_init(&q);
  append(&q, 1);
  append(&q, 1);
  check_take(&q, (size_t[]){1, 1, 2, 1}, 2);
  CHECK_INT(dike_batchq_cancel(&q, 1), 0);
  CHECK_INT(dike_batchq_cancel(&q, 2), 0);
  dike_batchq_free(&q);
}

TEST(stale_entries_are_reclaimed) {
  /* Append/cancel churn next to one long-lived call must not grow memory. */
  dike_batchq q;
  size_t i, id;
  dike_batchq_init(&q);
  append(&q, 1);
  for (i = 0; i < 100000; i++) {
    id = append(&q, 2);
    CHECK_INT(id, 2);
    CHECK_INT(dike_batchq_cancel(&q, id), 1);
  }
  CHECK(q.order_cap <= 16);
  CHECK(q.slots_cap <= 16);
  CHECK_INT(dike_batchq_count(&q), 1);
  CHECK_INT(dike_batchq_rows(&q), 1);
  append(&q, 3);
  check_take(&q, (size_t[]){1, 1, 2, 3}, 2);
  dike_batchq_free(&q);
}

TEST(cap_and_target_helpers) {
  dike_batchq q;
  dike_batchq_init(&q);
  CHECK_INT(dike_batchq_reached(&q, 1), 0);
  CHECK_INT(dike_batchq_reached(&q, 0), 1);
  CHECK_INT(dike_batchq_would_exceed(&q, 4, 4), 0);
  CHECK_INT(dike_batchq_would_exceed(&q, 5, 4), 1);
  append(&q, 3);
  CHECK_INT(dike_batchq_reached(&q, 3), 1);
  CHECK_INT(dike_batchq_reached(&q, 4), 0);
  CHECK_INT(dike_batchq_would_exceed(&q, 1, 4), 0);
  CHECK_INT(dike_batchq_would_exceed(&q, 2, 4), 1);
  CHECK_INT(dike_batchq_would_exceed(&q, SIZE_MAX, SIZE_MAX), 1);
  CHECK_INT(dike_batchq_would_exceed(&q, SIZE_MAX - 3, SIZE_MAX), 0);
  dike_batchq_free(&q);
}

/* ---- a randomized comparison with a trivial model ---- */

#define MODEL_MAX 64

static uint64_t lcg(uint64_t *s) {
  *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
  return *s >> 33;
}

TEST(matches_a_model) {
  dike_batchq q;
  /* The model: live calls in arrival order. */
  size_t ids[MODEL_MAX], rows[MODEL_MAX], n = 0, total = 0;
  uint64_t seed = 2024;
  long step;
  dike_batchq_init(&q);
  for (step = 0; step < 200000; step++) {
    uint64_t op = lcg(&seed) % 10;
    if (op < 5 && n < MODEL_MAX) { /* append */
      size_t r = (size_t)(lcg(&seed) % 9) + 1, id = append(&q, r), i;
      for (i = 0; i < n; i++)
        CHECK(ids[i] != id); /* never the id of a live call */
      CHECK(id >= 1 && id <= MODEL_MAX);
      ids[n] = id;
      rows[n] = r;
      n++;
      total += r;
    } else if (op < 8) { /* cancel a live id, or a dead one */
      size_t pick = (size_t)(lcg(&seed) % (MODEL_MAX + 1)), i;
      int live = 0;
      for (i = 0; i < n; i++)
        if (ids[i] == pick) {
          live = 1;
          total -= rows[i];
          memmove(ids + i, ids + i + 1, (n - i - 1) * sizeof *ids);
          memmove(rows + i, rows + i + 1, (n - i - 1) * sizeof *rows);
          n--;
          break;
        }
      CHECK_INT(dike_batchq_cancel(&q, pick), live);
    } else if (op == 8) { /* take */
      const dike_batchq_seg *segs;
      size_t got, i, offset = 0;
      dike_batchq_take(&q, &segs, &got);
      CHECK_INT(got, n);
      for (i = 0; i < got && i < n; i++) {
        CHECK_INT(segs[i].id, ids[i]);
        CHECK_INT(segs[i].rows, rows[i]);
        CHECK_INT(segs[i].offset, offset);
        offset += rows[i];
      }
      n = 0;
      total = 0;
    }
    CHECK_INT(dike_batchq_count(&q), n);
    CHECK_INT(dike_batchq_rows(&q), total);
    if (test_ok_ == 0)
      break; /* one failure is enough output */
  }
  dike_batchq_free(&q);
}

int main(void) {
  RUN(empty_queue);
  RUN(append_and_take_in_order);
  RUN(append_refuses_bad_rows);
  RUN(cancel_first_middle_last);
  RUN(cancel_twice_unknown_and_stale);
  RUN(cancel_all_then_reuse);
  RUN(reused_id_keeps_arrival_order);
  RUN(cancel_after_take_is_harmless);
  RUN(stale_entries_are_reclaimed);
  RUN(cap_and_target_helpers);
  RUN(matches_a_model);
  return test_report();
}
