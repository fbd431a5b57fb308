/* test_backoff.c - delay schedule, jitter bounds, saturation, PRNG. */
#include <float.h>
#include <math.h>

#include "../../csrc/dike.h"
#include "test.h"

#define DRAWS 20000

static int finite_nonneg(double d) {
  return d >= 0 && !isinf(d);
}

static double absdiff(double a, double b) { /* no libm needed */
  return a > b ? a - b : b - a;
}

TEST(jitter_names) {
  CHECK_STR(dike_jitter_name(DIKE_JITTER_NONE), "none");
  CHECK_STR(dike_jitter_name(DIKE_JITTER_FULL), "full");
  CHECK_STR(dike_jitter_name(DIKE_JITTER_EQUAL), "equal");
  CHECK_STR(dike_jitter_name(DIKE_JITTER_DECORRELATED), "decorrelated");
  CHECK(dike_jitter_name(-1) == NULL);
  CHECK(dike_jitter_name(DIKE_JITTER_COUNT_) == NULL);
  CHECK_INT(dike_jitter_lookup("none"), DIKE_JITTER_NONE);
  CHECK_INT(dike_jitter_lookup("full"), DIKE_JITTER_FULL);
  CHECK_INT(dike_jitter_lookup("equal"), DIKE_JITTER_EQUAL);
  CHECK_INT(dike_jitter_lookup("decorrelated"), DIKE_JITTER_DECORRELATED);
  CHECK_INT(dike_jitter_lookup("Full"), DIKE_EINVAL);
  CHECK_INT(dike_jitter_lookup("ful"), DIKE_EINVAL);
  CHECK_INT(dike_jitter_lookup("fullx"), DIKE_EINVAL);
  CHECK_INT(dike_jitter_lookup(""), DIKE_EINVAL);
  CHECK_INT(dike_jitter_lookup(NULL), DIKE_EINVAL);
}

TEST(init_validates) {
  dike_backoff b, orig;
  memset(&b, 0xAB, sizeof b);
  orig = b;
  CHECK_INT(dike_backoff_init(&b, NAN, 2, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, -0.1, 2, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, INFINITY, 2, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 0, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, -1, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, NAN, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, INFINITY, INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, 0, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, -5, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, NAN, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, -INFINITY, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, 10, -1, 1), DIKE_EINVAL);
  CHECK_INT(dike_backoff_init(&b, 1, 2, 10, DIKE_JITTER_COUNT_, 1),
            DIKE_EINVAL);
  CHECK(memcmp(&b, &orig, sizeof b) == 0); /* untouched on failure */

  CHECK_INT(dike_backoff_init(&b, 0, 1e-300, INFINITY, 0, 1), 0);
  CHECK_INT(dike_backoff_init(&b, 0.5, 2, INFINITY, DIKE_JITTER_FULL, 1), 0);
  CHECK_INT(b.has_cap, 0);
  CHECK_SAME(b.cap, DIKE_BACKOFF_MAX_DELAY);
  CHECK_INT(dike_backoff_init(&b, 0.5, 2, 3, DIKE_JITTER_FULL, 1), 0);
  CHECK_INT(b.has_cap, 1);
  CHECK_SAME(b.cap, 3.0);
  CHECK_SAME(b.base, 0.5);
  CHECK_SAME(b.factor, 2.0);
}

TEST(start_state_is_base) {
  dike_backoff b;
  dike_backoff_state st;
  CHECK_INT(dike_backoff_init(&b, 0.25, 3, INFINITY, 0, 7), 0);
  dike_backoff_start(&b, &st);
  CHECK_SAME(st.raw, 0.25);
  CHECK_SAME(st.prev, 0.25);
}

/* Without jitter the delays are exactly Lua's d = d * factor, capped. */
static void check_exact(double base, double factor, double cap, int steps) {
  dike_backoff b;
  dike_backoff_state st;
  double d = base, limit = isinf(cap) ? DIKE_BACKOFF_MAX_DELAY : cap;
  int k;
  CHECK_INT(dike_backoff_init(&b, base, factor, cap, DIKE_JITTER_NONE, 1), 0);
  dike_backoff_start(&b, &st);
  for (k = 0; k < steps; k++) {
    double want = d < limit ? d : limit;
    CHECK_SAME(dike_backoff_next(&b, &st), want);
    d = d * factor;
  }
}

TEST(no_jitter_is_bit_exact) {
  check_exact(0.1, 2, INFINITY, 29);
  check_exact(0.1, 1.5, INFINITY, 40);
  check_exact(0.3, 1.1, INFINITY, 100);
  check_exact(0.7, 0.9, INFINITY, 100);
  check_exact(1, 1, INFINITY, 10);
  check_exact(0, 2, INFINITY, 10);
  check_exact(0.1, 2, 1.0, 20);
  check_exact(0.01, 3, 7.5, 20);
  check_exact(5, 2, 1.0, 5); /* base above the cap: capped from the start */
}

TEST(saturates_without_inf_or_nan) {
  static const double factors[] = {1e300, 1e308, DBL_MAX, 1e10, 2};
  static const double caps[] = {INFINITY, 5, DBL_MAX, 1e300};
  size_t f, c;
  int j, k;
  for (f = 0; f < sizeof factors / sizeof *factors; f++)
    for (c = 0; c < sizeof caps / sizeof *caps; c++)
      for (j = 0; j < DIKE_JITTER_COUNT_; j++) {
        dike_backoff b;
        dike_backoff_state st;
        double limit = isinf(caps[c]) ? DIKE_BACKOFF_MAX_DELAY : caps[c];
        CHECK_INT(dike_backoff_init(&b, 1, factors[f], caps[c], j, 99), 0);
        dike_backoff_start(&b, &st);
        for (k = 0; k < 2000; k++) {
          double d = dike_backoff_next(&b, &st);
          CHECK(finite_nonneg(d));
          CHECK(d <= limit);
          CHECK(finite_nonneg(st.raw));
          CHECK(st.raw <= limit);
          CHECK(finite_nonneg(st.prev));
        }
      }
}

TEST(saturation_values) {
  dike_backoff b;
  dike_backoff_state st;
  /* No cap: raw saturates at DIKE_BACKOFF_MAX_DELAY. */
  CHECK_INT(dike_backoff_init(&b, 1, 1e300, INFINITY, 0, 1), 0);
  dike_backoff_start(&b, &st);
  CHECK_SAME(dike_backoff_next(&b, &st), 1.0);
  CHECK_SAME(st.raw, DIKE_BACKOFF_MAX_DELAY);
  CHECK_SAME(dike_backoff_next(&b, &st), DIKE_BACKOFF_MAX_DELAY);
  CHECK_SAME(dike_backoff_next(&b, &st), DIKE_BACKOFF_MAX_DELAY);
  /* A cap: raw becomes the cap. */
  CHECK_INT(dike_backoff_init(&b, 1, 1e300, 5, 0, 1), 0);
  dike_backoff_start(&b, &st);
  CHECK_SAME(dike_backoff_next(&b, &st), 1.0);
  CHECK_SAME(st.raw, 5.0);
  CHECK_SAME(dike_backoff_next(&b, &st), 5.0);
  CHECK_SAME(dike_backoff_next(&b, &st), 5.0);
  /* Base 0 stays 0 (0 * huge is 0, not NaN); tiny factors reach 0. */
  CHECK_INT(dike_backoff_init(&b, 0, 1e300, INFINITY, 0, 1), 0);
  dike_backoff_start(&b, &st);
  CHECK_SAME(dike_backoff_next(&b, &st), 0.0);
  CHECK_SAME(dike_backoff_next(&b, &st), 0.0);
  CHECK_INT(dike_backoff_init(&b, 1, 1e-300, INFINITY, 0, 1), 0);
  dike_backoff_start(&b, &st);
  CHECK_SAME(dike_backoff_next(&b, &st), 1.0);
  CHECK_SAME(dike_backoff_next(&b, &st), 1e-300);
  CHECK_SAME(dike_backoff_next(&b, &st), 0.0);
  CHECK_SAME(dike_backoff_next(&b, &st), 0.0);
}

TEST(corrupt_state_restarts) {
  dike_backoff b;
  dike_backoff_state st;
  CHECK_INT(dike_backoff_init(&b, 0.5, 2, 10, DIKE_JITTER_DECORRELATED, 3), 0);
  st.raw = NAN;
  st.prev = -1;
  {
    double d = dike_backoff_next(&b, &st);
    CHECK(d >= 0.5 && d <= 1.5);
  }
  CHECK_SAME(st.raw, 1.0);
  CHECK_INT(dike_backoff_init(&b, 0.5, 2, 10, DIKE_JITTER_NONE, 3), 0);
  st.raw = -INFINITY;
  st.prev = NAN;
  CHECK_SAME(dike_backoff_next(&b, &st), 0.5);
  st.raw = INFINITY; /* beyond the cap: capped */
  CHECK_SAME(dike_backoff_next(&b, &st), 10.0);
  CHECK_SAME(st.raw, 10.0);
}

/* Full: U(0, b_k); equal: b_k/2 + U(0, b_k/2); b_k = min(cap, base*f^(k-1)). */
static void check_bounds(int jitter, double base, double factor, double cap) {
  dike_backoff b;
  dike_backoff_state st;
  double limit = isinf(cap) ? DIKE_BACKOFF_MAX_DELAY : cap;
  double sum = 0, lo = INFINITY, hi = -INFINITY;
  int run, k, n = 0;
  CHECK_INT(dike_backoff_init(&b, base, factor, cap, jitter, 12345), 0);
  for (run = 0; run < DRAWS / 10; run++) {
    double raw = base;
    dike_backoff_start(&b, &st);
    for (k = 1; k <= 10; k++) {
      double whole = raw < limit ? raw : limit;
      double d = dike_backoff_next(&b, &st);
      if (jitter == DIKE_JITTER_FULL)
        CHECK(d >= 0 && d < whole);
      else
        CHECK(d >= whole / 2 && d <= whole);
      if (k == 1) { /* stats on the first delay, b_1 = base */
        sum += d / whole;
        lo = d / whole < lo ? d / whole : lo;
        hi = d / whole > hi ? d / whole : hi;
        n++;
      }
      raw = raw * factor;
    }
  }
  /* The draws spread over the whole range (uniform: mean 1/2 or 3/4). */
  if (jitter == DIKE_JITTER_FULL) {
    CHECK(absdiff(sum / n, 0.5) < 0.03);
    CHECK(lo < 0.01 && hi > 0.99);
  } else {
    CHECK(absdiff(sum / n, 0.75) < 0.02);
    CHECK(lo < 0.505 && hi > 0.995);
  }
}

TEST(full_jitter_bounds) {
  check_bounds(DIKE_JITTER_FULL, 0.1, 2, INFINITY);
  check_bounds(DIKE_JITTER_FULL, 0.1, 2, 3);
  check_bounds(DIKE_JITTER_FULL, 1, 1, INFINITY);
  check_bounds(DIKE_JITTER_FULL, 2, 0.5, 1.5);
}

TEST(equal_jitter_bounds) {
  check_bounds(DIKE_JITTER_EQUAL, 0.1, 2, INFINITY);
  check_bounds(DIKE_JITTER_EQUAL, 0.1, 2, 3);
  check_bounds(DIKE_JITTER_EQUAL, 1, 1, INFINITY);
  check_bounds(DIKE_JITTER_EQUAL, 2, 0.5, 1.5);
}

/* Decorrelated: d_k in [base, min(cap, 3 * d_(k-1))], d_0 = base. */
static void check_decorrelated(double base, double cap) {
  dike_backoff b;
  dike_backoff_state st;
  double limit = isinf(cap) ? DIKE_BACKOFF_MAX_DELAY : cap;
  int run, k, grew = 0;
  CHECK_INT(dike_backoff_init(&b, base, 2, cap, DIKE_JITTER_DECORRELATED, 4),
            0);
  for (run = 0; run < DRAWS / 20; run++) {
    double prev = base;
    dike_backoff_start(&b, &st);
    for (k = 1; k <= 20; k++) {
      double top = 3 * prev < limit ? 3 * prev : limit;
      double d = dike_backoff_next(&b, &st);
      CHECK(d >= base && d <= top);
      CHECK_SAME(st.prev, d);
      if (d > 2 * base)
        grew = 1;
      prev = d;
    }
  }
  CHECK(grew == (limit > 2 * base));
}

TEST(decorrelated_jitter_bounds) {
  check_decorrelated(0.1, INFINITY);
  check_decorrelated(0.1, 2);
  check_decorrelated(1, 1e300);
  check_decorrelated(0.5, 0.5); /* cap == base: always base */
}

TEST(decorrelated_below_base_cap) {
  /* A cap under the base: every delay is the cap. */
  dike_backoff b;
  dike_backoff_state st;
  int k;
  CHECK_INT(dike_backoff_init(&b, 2, 2, 1, DIKE_JITTER_DECORRELATED, 4), 0);
  dike_backoff_start(&b, &st);
  for (k = 0; k < 100; k++)
    CHECK_SAME(dike_backoff_next(&b, &st), 1.0);
}

static void draw(dike_backoff *b, double *out, int n) {
  dike_backoff_state st;
  int k;
  dike_backoff_start(b, &st);
  for (k = 0; k < n; k++)
    out[k] = dike_backoff_next(b, &st);
}

TEST(seeds_are_reproducible) {
  dike_backoff a, b;
  double x[32], y[32];
  int j;
  for (j = DIKE_JITTER_FULL; j < DIKE_JITTER_COUNT_; j++) {
    CHECK_INT(dike_backoff_init(&a, 0.1, 2, 30, j, 42), 0);
    CHECK_INT(dike_backoff_init(&b, 0.1, 2, 30, j, 42), 0);
    draw(&a, x, 32);
    draw(&b, y, 32);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* Reseeding restarts the same sequence. */
    dike_backoff_seed(&a, 42);
    draw(&a, y, 32);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* Another seed gives another sequence. */
    dike_backoff_seed(&b, 43);
    draw(&b, y, 32);
    CHECK(memcmp(x, y, sizeof x) != 0);
  }
}

TEST(rng_known_values_and_range) {
  dike_rng r, r2;
  int i, below_half = 0;
  /* splitmix64's first output from seed 0 is a published test value. */
  dike_rng_seed(&r, 0);
  CHECK(r.s[0] == UINT64_C(0xe220a8397b1dcdaf));
  CHECK(r.s[0] | r.s[1] | r.s[2] | r.s[3]);
  dike_rng_seed(&r2, 0);
  for (i = 0; i < 100; i++)
    CHECK(dike_rng_next(&r) == dike_rng_next(&r2));
  dike_rng_seed(&r, UINT64_MAX);
  for (i = 0; i < DRAWS; i++) {
    double u = dike_rng_uniform(&r);
    CHECK(u >= 0 && u < 1);
    below_half += u < 0.5;
  }
  CHECK(below_half > DRAWS * 45 / 100 && below_half < DRAWS * 55 / 100);
}

TEST(over_budget) {
  CHECK_INT(dike_backoff_over_budget(1, 2, 3), 1); /* equal counts */
  CHECK_INT(dike_backoff_over_budget(1, 2.5, 3), 1);
  CHECK_INT(dike_backoff_over_budget(1, 1.5, 3), 0);
  CHECK_INT(dike_backoff_over_budget(0, 0, 1e-9), 0);
  CHECK_INT(dike_backoff_over_budget(1e9, 1e9, 1), 1);
  /* No budget. */
  CHECK_INT(dike_backoff_over_budget(1e9, 1e9, 0), 0);
  CHECK_INT(dike_backoff_over_budget(1e9, 1e9, -1), 0);
  CHECK_INT(dike_backoff_over_budget(1e9, 1e9, INFINITY), 0);
  CHECK_INT(dike_backoff_over_budget(1e9, 1e9, NAN), 0);
  /* Odd inputs never claim the budget is spent. */
  CHECK_INT(dike_backoff_over_budget(NAN, 1, 3), 0);
  CHECK_INT(dike_backoff_over_budget(INFINITY, 1, 3), 1);
}

int main(void) {
  RUN(jitter_names);
  RUN(init_validates);
  RUN(start_state_is_base);
  RUN(no_jitter_is_bit_exact);
  RUN(saturates_without_inf_or_nan);
  RUN(saturation_values);
  RUN(corrupt_state_restarts);
  RUN(full_jitter_bounds);
  RUN(equal_jitter_bounds);
  RUN(decorrelated_jitter_bounds);
  RUN(decorrelated_below_base_cap);
  RUN(seeds_are_reproducible);
  RUN(rng_known_values_and_range);
  RUN(over_budget);
  return test_report();
}
