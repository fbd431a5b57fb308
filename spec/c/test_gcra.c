/* test_gcra.c - rate-limit timing: admission, reservations, refusals,
 * costs, saturation and bad clocks. Times and rates are mostly chosen so
 * that every value is a dyadic fraction: the results are exact, compared
 * bit for bit. */
#include <float.h>
#include <math.h>

#include "../../csrc/dike.h"
#include "test.h"

/* rate 4 per 1 s: T = 0.25 s; burst 4: tolerance 1 s. */
static void four_per_second(dike_gcra *g) {
  CHECK_INT(dike_gcra_init(g, 4, 1, 4), 0);
}

static int reserve(dike_gcra *g, double now, double cost, double max_wait,
                   double *wait) {
  *wait = -1; /* so a result that was not written shows */
  return dike_gcra_reserve(g, now, cost, max_wait, wait);
}

TEST(init_validates) {
  dike_gcra g, orig;
  memset(&g, 0xAB, sizeof g);
  memcpy(&orig, &g, sizeof g);
  CHECK_INT(dike_gcra_init(&g, NAN, 1, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 0, 1, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, -1, 1, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, -INFINITY, 1, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, NAN, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, -2, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, INFINITY, 1), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, 1, NAN), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, 1, 0.999), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, 1, 0), DIKE_EINVAL);
  CHECK_INT(dike_gcra_init(&g, 1, 1, INFINITY), DIKE_EINVAL);
  CHECK(memcmp(&g, &orig, sizeof g) == 0); /* untouched on failure */

  CHECK_INT(dike_gcra_init(&g, 4, 2, 3), 0);
  CHECK_SAME(g.interval, 0.5);
  CHECK_SAME(g.burst, 3.0);
  CHECK_SAME(g.capacity, 3.0);
  CHECK_INT(g.started, 0);
  CHECK_INT(dike_gcra_init(&g, 0.5, 1, 1.5), 0); /* fractions are fine */
  CHECK_SAME(g.interval, 2.0);
  CHECK_SAME(g.capacity, 1.5);
}

TEST(saturation_of_interval_and_capacity) {
  dike_gcra g;
  /* rate inf: no limit (T = 0). */
  CHECK_INT(dike_gcra_init(&g, INFINITY, 1, 1), 0);
  CHECK_SAME(g.interval, 0.0);
  CHECK_SAME(g.capacity, 1.0);
  /* per / rate overflows: saturates at the cap. */
  CHECK_INT(dike_gcra_init(&g, 1e-300, 1e300, 1), 0);
  CHECK_SAME(g.interval, DIKE_GCRA_MAX_SECONDS);
  CHECK_SAME(g.capacity, 1.0);
  CHECK_INT(dike_gcra_init(&g, DBL_MIN, DBL_MAX, DBL_MAX), 0);
  CHECK_SAME(g.interval, DIKE_GCRA_MAX_SECONDS);
  CHECK_SAME(g.burst, DBL_MAX);
  CHECK_SAME(g.capacity, 1.0);
  /* burst * T past the cap: the capacity saturates, T does not. */
  CHECK_INT(dike_gcra_init(&g, 1, 1, 1e300), 0);
  CHECK_SAME(g.interval, 1.0);
  CHECK_SAME(g.capacity, DIKE_GCRA_MAX_SECONDS);
  CHECK_INT(dike_gcra_init(&g, 1, 4, 1e300), 0);
  CHECK_SAME(g.capacity, 2.5e8);
  /* T underflows to 0: no limit, never NaN. */
  CHECK_INT(dike_gcra_init(&g, 1e300, 1e-300, 1e300), 0);
  CHECK_SAME(g.interval, 0.0);
  CHECK_SAME(g.capacity, 1e300);
}

TEST(idle_limiter_admits_a_burst_then_spaces_calls) {
  dike_gcra g;
  double w;
  int i;
  four_per_second(&g);
  for (i = 0; i < 4; i++) {
    CHECK_INT(reserve(&g, 100, 1, 0, &w), 0);
    CHECK_SAME(w, 0.0);
  }
  /* The fifth at the same instant must wait one interval. */
  CHECK_INT(reserve(&g, 100, 1, 0, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 0.25);
  /* One interval later exactly one more passes. */
  CHECK_INT(reserve(&g, 100.25, 1, 0, &w), 0);
  CHECK_SAME(w, 0.0);
  CHECK_INT(reserve(&g, 100.25, 1, 0, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 0.25);
  /* A steady caller at the rate is always admitted at once. */
  for (i = 2; i < 40; i++) {
    CHECK_INT(reserve(&g, 100 + 0.25 * i, 1, 0, &w), 0);
    CHECK_SAME(w, 0.0);
  }
  /* A long idle period refills the bucket to burst, not beyond. */
  for (i = 0; i < 4; i++)
    CHECK_INT(reserve(&g, 1000, 1, 0, &w), 0);
  CHECK_INT(reserve(&g, 1000, 1, 0, &w), DIKE_ELIMITED);
}

TEST(reservations_wait_in_call_order) {
  dike_gcra g;
  double w;
  int i;
  four_per_second(&g);
  for (i = 0; i < 4; i++)
    CHECK_INT(reserve(&g, 0, 1, 10, &w), 0);
  /* Callers 5..12 reserve turns 0.25 s apart. */
  for (i = 1; i <= 8; i++) {
    CHECK_INT(reserve(&g, 0, 1, 10, &w), 0);
    CHECK_SAME(w, 0.25 * i);
  }
  /* Later, the queue has moved on by the time passed. */
  CHECK_INT(reserve(&g, 1, 1, 10, &w), 0);
  CHECK_SAME(w, 2.25 - 1 + 0.0);
  /* max_wait is inclusive: a wait equal to it is admitted. */
  CHECK_INT(reserve(&g, 1, 1, 1.5, &w), 0);
  CHECK_SAME(w, 1.5);
  CHECK_INT(reserve(&g, 1, 1, 1.5, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 1.75);
  CHECK_INT(reserve(&g, 1, 1, INFINITY, &w), 0);
  CHECK_SAME(w, 1.75);
}

TEST(refusal_changes_nothing_and_retry_after_is_exact) {
  dike_gcra g, twin;
  double w, w2, after;
  int i;
  four_per_second(&g);
  CHECK_INT(reserve(&g, 5, 4, 0, &w), 0); /* the whole burst at once */
  CHECK_SAME(w, 0.0);
  memcpy(&twin, &g, sizeof g); /* the same limiter, which never sees the refusals */
  for (i = 0; i < 3; i++) {
    CHECK_INT(reserve(&g, 5.125, 2, 0.25, &w), DIKE_ELIMITED);
    CHECK_SAME(w, 0.375); /* 2 units need 0.5 s; 0.125 s have passed */
  }
  /* Only the reading is kept: the debt at 5.125. */
  CHECK_SAME(g.last, 5.125);
  CHECK_SAME(g.debt, 3.5);
  after = w;
  /* Both agree on everything that follows; after waiting retry_after,
   * the same call passes at once. */
  CHECK_INT(reserve(&g, 5.25, 2, 0, &w), DIKE_ELIMITED);
  CHECK_INT(reserve(&twin, 5.25, 2, 0, &w2), DIKE_ELIMITED);
  CHECK_SAME(w, w2);
  CHECK_INT(reserve(&g, 5.125 + after, 2, 0, &w), 0);
  CHECK_INT(reserve(&twin, 5.125 + after, 2, 0, &w2), 0);
  CHECK_SAME(w, 0.0);
  CHECK_SAME(w2, 0.0);
  CHECK(memcmp(&g, &twin, sizeof g) == 0);
}

TEST(costs) {
  dike_gcra g, before;
  double w;
  four_per_second(&g);
  /* cost == burst always passes an idle limiter. */
  CHECK_INT(reserve(&g, 0, 4, 0, &w), 0);
  CHECK_SAME(w, 0.0);
  /* A cost 2 call waits two intervals. */
  CHECK_INT(reserve(&g, 0, 2, 1, &w), 0);
  CHECK_SAME(w, 0.5);
  /* Fractional costs. */
  CHECK_INT(reserve(&g, 0, 0.5, 1, &w), 0);
  CHECK_SAME(w, 0.625);
  /* A zero cost is a probe: it waits for the debt above the tolerance
   * and reserves nothing. */
  CHECK_INT(reserve(&g, 0, 0, 1, &w), 0);
  CHECK_SAME(w, 0.625);
  CHECK_INT(reserve(&g, 0, 0, 1, &w), 0);
  CHECK_SAME(w, 0.625);
  /* Invalid costs and waits: EINVAL, nothing written. */
  memcpy(&before, &g, sizeof g);
  CHECK_INT(reserve(&g, 0, 4.5, 1, &w), DIKE_EINVAL);
  CHECK_SAME(w, -1.0);
  CHECK_INT(reserve(&g, 0, -1, 1, &w), DIKE_EINVAL);
  CHECK_INT(reserve(&g, 0, NAN, 1, &w), DIKE_EINVAL);
  CHECK_INT(reserve(&g, 0, INFINITY, 1, &w), DIKE_EINVAL);
  CHECK_INT(reserve(&g, 0, 1, -0.5, &w), DIKE_EINVAL);
  CHECK_INT(reserve(&g, 0, 1, NAN, &w), DIKE_EINVAL);
  CHECK_INT(reserve(&g, 0, 1, -INFINITY, &w), DIKE_EINVAL);
  CHECK_SAME(w, -1.0);
  CHECK(memcmp(&g, &before, sizeof g) == 0);
}

TEST(clock_going_backwards_keeps_the_debt) {
  dike_gcra g;
  double w;
  four_per_second(&g);
  CHECK_INT(reserve(&g, 1000, 4, 0, &w), 0);
  CHECK_INT(reserve(&g, 1000, 1, 1, &w), 0);
  CHECK_SAME(w, 0.25);
  /* The clock steps back an hour: the next caller still owes one more
   * interval (not an hour and not nothing). */
  CHECK_INT(reserve(&g, -2600, 1, 1, &w), 0);
  CHECK_SAME(w, 0.5);
  CHECK_SAME(g.last, -2600.0);
  /* Time passing from the new reading drains it as usual. */
  CHECK_INT(reserve(&g, -2599.25, 1, 0, &w), 0);
  CHECK_SAME(w, 0.0);
  /* Small backwards jitter between readings grants nothing. */
  four_per_second(&g);
  CHECK_INT(reserve(&g, 10, 4, 0, &w), 0);
  CHECK_INT(reserve(&g, 9.5, 1, 0, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 0.25);
  /* A limiter that never waits sees the step through its refusals: one
   * interval after the stepped-back reading it admits again (it does not
   * wait for the clock to reach 10 again). */
  CHECK_INT(reserve(&g, 9.75, 1, 0, &w), 0);
  CHECK_SAME(w, 0.0);
}

TEST(clock_that_is_not_a_number) {
  dike_gcra g;
  double w;
  four_per_second(&g);
  /* Before any reading: taken as 0. */
  CHECK_INT(reserve(&g, NAN, 1, 0, &w), 0);
  CHECK_SAME(g.last, 0.0);
  CHECK_INT(reserve(&g, 7, 4, 0, &w), 0);
  /* Afterwards: the latest reading (no time passes). */
  CHECK_INT(reserve(&g, NAN, 1, 1, &w), 0);
  CHECK_SAME(w, 0.25);
  CHECK_SAME(g.last, 7.0);
  CHECK_INT(reserve(&g, INFINITY, 1, 1, &w), 0);
  CHECK_SAME(w, 0.5);
  CHECK_INT(reserve(&g, -INFINITY, 1, 1, &w), 0);
  CHECK_SAME(w, 0.75);
  CHECK_SAME(g.last, 7.0);
}

TEST(waits_saturate_at_the_cap) {
  dike_gcra g;
  double w;
  /* One call per 1e9 s (the cap): the second waits exactly the cap, the
   * third would wait longer and is refused even with max_wait inf. */
  CHECK_INT(dike_gcra_init(&g, 1e-300, 1, 1), 0);
  CHECK_INT(reserve(&g, 0, 1, INFINITY, &w), 0);
  CHECK_SAME(w, 0.0);
  CHECK_INT(reserve(&g, 0, 1, INFINITY, &w), 0);
  CHECK_SAME(w, DIKE_GCRA_MAX_SECONDS);
  CHECK_INT(reserve(&g, 0, 1, INFINITY, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 2 * DIKE_GCRA_MAX_SECONDS);
  CHECK_SAME(g.debt, 2.0);
  /* burst 1e300 with T = 1: the capacity is capped; a cost of burst is
   * capped with it and still passes an idle limiter. */
  CHECK_INT(dike_gcra_init(&g, 1, 1, 1e300), 0);
  CHECK_INT(reserve(&g, 0, 1e300, 0, &w), 0);
  CHECK_SAME(w, 0.0);
  CHECK_INT(reserve(&g, 0, 1, 0, &w), DIKE_ELIMITED);
  CHECK_SAME(w, 1.0);
}

TEST(huge_and_far_apart_clock_readings_stay_finite) {
  dike_gcra g;
  double w;
  static const double clocks[] = {DBL_MAX,  -DBL_MAX, 1e308, -1e308, 0,
                                  DBL_MAX,  DBL_MIN,  -0.0,  1e-300,
                                  -DBL_MAX, DBL_MAX};
  size_t i;
  CHECK_INT(dike_gcra_init(&g, 3, 7, 5), 0);
  for (i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
    int rc = reserve(&g, clocks[i], 2.5, INFINITY, &w);
    CHECK_INT(rc, 0);
    CHECK(isfinite(w) && w >= 0 && w <= DIKE_GCRA_MAX_SECONDS);
    CHECK(isfinite(g.last) && isfinite(g.debt));
    CHECK(g.debt >= 0 && g.debt * g.interval <= 2 * DIKE_GCRA_MAX_SECONDS);
  }
}

TEST(a_whole_burst_passes_whatever_the_interval) {
  /* In seconds, 99 additions of 0.6 fall short of 100 * 0.6 - 0.6: a debt
   * kept in seconds would refuse the last call of the burst. */
  static const double rates[][2] = {{100, 60}, {1e6, 3600}, {3.7, 1},
                                    {7, 0.3}, {1e5, 60}, {1000, 3600}};
  size_t i;
  for (i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    double rate = rates[i][0], per = rates[i][1], burst = floor(rate), w;
    dike_gcra g;
    double k;
    CHECK_INT(dike_gcra_init(&g, rate, per, burst), 0);
    for (k = 0; k < burst; k++) {
      int rc = reserve(&g, 12345.678, 1, 0, &w);
      if (rc != 0 || w != 0) {
        CHECK_INT(rc, 0);
        CHECK_SAME(w, 0.0);
        break;
      }
    }
    CHECK_INT(reserve(&g, 12345.678, 1, 0, &w), DIKE_ELIMITED);
    CHECK_SAME(w, per / rate); /* one interval, exactly */
  }
}

TEST(costs_add_up_exactly_on_an_epoch_clock) {
  /* A wall clock (seconds since 1970) has a resolution of ~2e-7 s; the
   * debt is kept apart from it, so 1e-8 s intervals still add up. */
  dike_gcra g;
  double w, prev = 0;
  int i;
  CHECK_INT(dike_gcra_init(&g, 1e8, 1, 10), 0);
  for (i = 0; i < 10; i++) {
    CHECK_INT(reserve(&g, 1.7e9, 1, 1, &w), 0);
    CHECK_SAME(w, 0.0);
  }
  for (i = 1; i <= 1000; i++) {
    CHECK_INT(reserve(&g, 1.7e9, 1, 1, &w), 0);
    CHECK(w > prev);
    CHECK_SAME(w, i * g.interval);
    prev = w;
  }
}

TEST(no_limit_when_interval_is_zero) {
  dike_gcra g;
  double w;
  int i;
  CHECK_INT(dike_gcra_init(&g, INFINITY, 1, 1), 0);
  for (i = 0; i < 1000; i++) {
    CHECK_INT(reserve(&g, 0, 1, 0, &w), 0);
    CHECK_SAME(w, 0.0);
  }
  CHECK_SAME(g.debt, 0.0);
}

TEST(error_code_of_a_refusal) {
  CHECK_INT(DIKE_ELIMITED, -8);
  CHECK_STR(dike_strerror(DIKE_ELIMITED), "rate limit exceeded: try again later");
}

int main(void) {
  RUN(init_validates);
  RUN(saturation_of_interval_and_capacity);
  RUN(idle_limiter_admits_a_burst_then_spaces_calls);
  RUN(reservations_wait_in_call_order);
  RUN(refusal_changes_nothing_and_retry_after_is_exact);
  RUN(costs);
  RUN(clock_going_backwards_keeps_the_debt);
  RUN(clock_that_is_not_a_number);
  RUN(waits_saturate_at_the_cap);
  RUN(huge_and_far_apart_clock_readings_stay_finite);
  RUN(a_whole_burst_passes_whatever_the_interval);
  RUN(costs_add_up_exactly_on_an_epoch_clock);
  RUN(no_limit_when_interval_is_zero);
  RUN(error_code_of_a_refusal);
  return test_report();
}
