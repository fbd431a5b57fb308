/*
 * fuzz_gcra.c - libFuzzer target: sequences of rate-limit reservations
 * (dike_gcra_*) checked step by step against a plain reference model.
 *
 * The first byte picks one of two modes.
 *
 * Exact mode: every time is a whole number of units u = 2^-e s (e in
 * 0..22 from the input), the interval T a power of two of them, costs
 * halves of a unit of cost, and every sum stays below 2^53 u, so the
 * core's double arithmetic (which keeps its debt in cost units, dividing
 * time by T) is exact and must agree bit for bit with the model, which
 * computes in int64 time units straight from the definition: tat starts
 * in the past; a clock that goes back moves tat back by as much; new_tat =
 * max(tat, now) + min(c * T, tolerance) with tolerance = min(burst * T,
 * cap); wait = max(new_tat - tolerance - now, 0); admitted when wait <=
 * max_wait and wait <= the cap, and only then tat = new_tat. The model
 * keeps tat as it is (below the clock when idle), the core keeps the debt
 * (max(tat, now) - now) / T: the two must agree on every result code,
 * every wait and the state after every step. A refusal keeps the clock
 * reading (the model: last = now, tat moved back with a clock that went
 * back) and nothing else. The clock moves forwards and
 * backwards, in small and huge steps, and sometimes reads NaN or +-inf;
 * tolerances reach the cap (1e9 s), max_wait is 0, a whole
 * number of units or +inf, and some costs and waits are invalid.
 *
 * Wild mode: rate, per, burst, clock readings, costs and max_wait are any
 * doubles (NaN, +-inf, subnormals, DBL_MAX included). Checked: init
 * accepts exactly the valid parameters and saturates T and the capacity;
 * a reservation is EINVAL exactly for an invalid cost or max_wait, and
 * then leaves the struct bit for bit unchanged; a refusal only keeps the
 * reading (the same call again is refused alike, bit for bit); every
 * wait is finite, >= 0 (never -0), within max_wait and the cap when
 * admitted and beyond one of them when refused; the state stays finite
 * within its bounds; the debt never shrinks while the clock stands still.
 *
 * Any mismatch calls abort(): libFuzzer reports a crash.
 *
 * Build and run: `make fuzz` (build-fuzz/, seeds in spec/c/corpus/fuzz_gcra/),
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     spec/c/fuzz_gcra.c csrc/errors.c csrc/gcra.c -o fuzz_gcra
 *   ./fuzz_gcra -max_total_time=60 spec/c/corpus/fuzz_gcra
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/dike.h"
#include "fuzz_input.h"

#define MAX_EXP 22 /* 2 * cap + clock span < 2^53 units for u >= 2^-22 s */
#define CLOCK_SPAN ((int64_t)1 << 44) /* model clock readings stay within +-this */
#define NO_LIMIT (-1)          /* max_wait = +inf in the model */

static void check(int ok) {
  if (!ok)
    abort();
}

static int same(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

/* ---------------------------------------------------------------- exact */

typedef struct {
  double unit;                 /* seconds per unit: 2^-e */
  int64_t cap;                 /* DIKE_GCRA_MAX_SECONDS in units */
  int64_t interval, tolerance; /* units */
  int64_t half_interval;       /* T / 2: the price of half a unit of cost */
  int64_t tat, last;           /* tat may be below last (idle) */
  int started;
} model;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The definition, in whole units. halves: the cost in halves of a unit of
 * cost; now_ok: 0 for a reading that is NaN or +-inf. */
static int model_reserve(model *m, int now_ok, int64_t now, int64_t halves,
                         int64_t max_wait, int64_t *wait) {
  int64_t tat = m->tat, inc, new_tat, w;
  if (!now_ok)
    now = m->started ? m->last : 0;
  if (!m->started)
    tat = INT64_MIN / 4; /* "in the past" */
  else if (now < m->last)
    tat += now - m->last;
  inc = min64(halves * m->half_interval, m->tolerance);
  new_tat = max64(tat, now) + inc;
  w = max64(new_tat - m->tolerance - now, 0);
  *wait = w;
  if ((max_wait != NO_LIMIT && w > max_wait) || w > m->cap) {
    m->tat = tat; /* the reading is kept, the schedule is not changed */
    m->last = now;
    return DIKE_ELIMITED;
  }
  m->tat = new_tat;
  m->last = now;
  m->started = 1;
  return 0;
}

static int64_t wrap_clock(int64_t t) {
  if (t > CLOCK_SPAN || t < -CLOCK_SPAN)
    t %= CLOCK_SPAN;
  return t;
}

static void run_exact(fuzz_input *in) {
  model m;
  dike_gcra g;
  int64_t burst_halves, clock;
  int j, k, e, steps = 0;
  double rate, per;

  memset(&m, 0, sizeof m);
  e = fuzz_byte(in) % (MAX_EXP + 1);
  m.unit = ldexp(1, -e);
  m.cap = (int64_t)1000000000 << e;

  /* T = 2^j units (j >= 1: half a unit of cost is a whole number of
   * units), up to 2^37 u and below the cap (a capped T, 1e9 s, is not a
   * power of two: the wild mode and the unit tests cover it); burst =
   * burst_halves / 2 units of cost. */
  j = 1 + fuzz_byte(in) % (e + 29 < 37 ? e + 29 : 37);
  burst_halves = 2 + fuzz_byte(in) % 63;
  /* rate 2^k per 2^(j + k) u seconds: per / rate is exact. */
  k = fuzz_byte(in) % 4;
  rate = ldexp(1, k);
  per = ldexp(1, j + k - e);
  check(dike_gcra_init(&g, rate, per, (double)burst_halves / 2) == 0);

  m.interval = min64((int64_t)1 << j, m.cap); /* the cap is even */
  m.half_interval = m.interval / 2;
  m.tolerance = min64(burst_halves * m.half_interval, m.cap);
  check(same(g.interval, (double)m.interval * m.unit));
  check(same(g.capacity * g.interval, (double)m.tolerance * m.unit));

  clock = (int64_t)(fuzz_u64(in) % (uint64_t)CLOCK_SPAN) - CLOCK_SPAN / 2;
  while (!fuzz_input_done(in) && steps++ < 4096) {
    uint8_t op = fuzz_byte(in), how = fuzz_byte(in);
    int now_ok = 1, rc, mrc, cost_ok = 1, wait_ok = 1;
    int64_t halves, max_wait, mw = 0;
    double now, cost, maxw, w = -1;
    dike_gcra before;

    /* The clock. */
    switch (op % 8) {
    case 0: break;                                       /* same instant */
    case 1: clock += how; break;                         /* a little later */
    case 2: clock += (int64_t)how * m.half_interval; break; /* intervals later */
    case 3: clock -= how; break;                         /* a little back */
    case 4: clock += (int64_t)(fuzz_u64(in) % (uint64_t)CLOCK_SPAN) - CLOCK_SPAN / 2; break;
    case 5: now_ok = 0; break;                           /* NaN or +-inf */
    default: clock += m.tolerance / 4 + how; break;      /* part of a burst */
    }
    clock = wrap_clock(clock);
    if (now_ok)
      now = (double)clock * m.unit;
    else
      now = (how % 3 == 0) ? NAN : (how % 3 == 1) ? INFINITY : -INFINITY;

    /* The cost: mostly valid, sometimes beyond burst, negative or NaN. */
    switch ((op >> 3) % 8) {
    case 0: halves = burst_halves; break;
    case 1: halves = 0; break;
    case 2: halves = burst_halves + 1 + how % 4; cost_ok = 0; break;
    default: halves = 1 + fuzz_byte(in) % burst_halves; break;
    }
    cost = (double)halves / 2;
    if ((op >> 6) == 3 && (how & 1)) {
      cost = (how & 2) ? NAN : -0.5;
      cost_ok = 0;
    }

    /* max_wait: 0, a whole number of units, +inf, or invalid. */
    switch (fuzz_byte(in) % 6) {
    case 0: max_wait = 0; break;
    case 1: max_wait = NO_LIMIT; break;
    case 2: max_wait = (int64_t)fuzz_byte(in) * m.half_interval; break;
    case 3: max_wait = (int64_t)(fuzz_u64(in) % ((uint64_t)1 << 42)); break;
    case 4: max_wait = 0; wait_ok = 0; break;
    default: max_wait = fuzz_byte(in); break;
    }
    maxw = max_wait == NO_LIMIT ? INFINITY : (double)max_wait * m.unit;
    if (!wait_ok)
      maxw = (how & 4) ? NAN : -1.0;

    memcpy(&before, &g, sizeof g);
    rc = dike_gcra_reserve(&g, now, cost, maxw, &w);
    if (!cost_ok || !wait_ok) {
      check(rc == DIKE_EINVAL);
      check(same(w, -1));
      check(memcmp(&g, &before, sizeof g) == 0);
      continue;
    }
    mrc = model_reserve(&m, now_ok, clock, halves, max_wait, &mw);
    check(rc == mrc);
    check(same(w, (double)mw * m.unit));
    check(g.started == 1);
    check(same(g.last, (double)m.last * m.unit));
    check(same(g.debt * g.interval, (double)(m.tat - m.last) * m.unit));
  }
}

/* ---------------------------------------------------------------- wild */

static int valid_init(double rate, double per, double burst) {
  return rate > 0 && per > 0 && !isinf(per) && burst >= 1 && !isinf(burst);
}

static void run_wild(fuzz_input *in) {
  dike_gcra g;
  double rate = fuzz_double(in), per = fuzz_double(in), burst = fuzz_double(in);
  int rc = dike_gcra_init(&g, rate, per, burst), steps = 0;
  check(rc == (valid_init(rate, per, burst) ? 0 : DIKE_EINVAL));
  if (rc != 0) {
    rate = 1 + fuzz_byte(in);
    per = 1;
    burst = 1 + fuzz_byte(in) % 16;
    check(dike_gcra_init(&g, rate, per, burst) == 0);
  }
  check(g.interval >= 0 && g.interval <= DIKE_GCRA_MAX_SECONDS);
  check(g.capacity >= 1 && g.capacity <= burst);
  check(g.capacity * g.interval <= DIKE_GCRA_MAX_SECONDS * (1 + 1e-15));
  check(same(g.burst, burst));
  check(g.started == 0);

  while (!fuzz_input_done(in) && steps++ < 4096) {
    uint8_t op = fuzz_byte(in);
    double now, cost, max_wait, w = -1;
    dike_gcra before;
    int valid;

    switch (op % 4) {
    case 0: now = fuzz_double(in); break;
    case 1: now = g.last; break;
    case 2: now = g.last + (double)fuzz_byte(in) * g.interval / 4; break;
    default: now = g.last - (double)fuzz_byte(in); break;
    }
    switch ((op >> 2) % 4) {
    case 0: cost = fuzz_double(in); break;
    case 1: cost = g.burst; break;
    case 2: cost = g.burst * fuzz_byte(in) / 255; break;
    default: cost = 1; break;
    }
    switch ((op >> 4) % 4) {
    case 0: max_wait = fuzz_double(in); break;
    case 1: max_wait = 0; break;
    case 2: max_wait = INFINITY; break;
    default: max_wait = g.interval * fuzz_byte(in); break;
    }

    valid = cost >= 0 && cost <= g.burst && max_wait >= 0;
    memcpy(&before, &g, sizeof g);
    rc = dike_gcra_reserve(&g, now, cost, max_wait, &w);
    if (!valid) {
      check(rc == DIKE_EINVAL);
      check(same(w, -1));
      check(memcmp(&g, &before, sizeof g) == 0);
      continue;
    }
    check(rc == 0 || rc == DIKE_ELIMITED);
    check(isfinite(w) && w >= 0 && !signbit(w));
    check(g.started == 1);
    check(same(g.last, isfinite(now) ? now : before.started ? before.last : 0));
    if (rc == DIKE_ELIMITED) {
      dike_gcra again;
      double w2 = -1;
      memcpy(&again, &g, sizeof g);
      check(before.started); /* an idle limiter admits any valid cost */
      check(w > 0 && (w > max_wait || w > DIKE_GCRA_MAX_SECONDS));
      check(g.debt <= before.debt); /* the reading is kept, nothing added */
      /* The schedule is unchanged: the same call again is refused alike. */
      check(dike_gcra_reserve(&again, now, cost, max_wait, &w2) == DIKE_ELIMITED);
      check(same(w, w2));
      check(memcmp(&again, &g, sizeof g) == 0);
      continue;
    }
    check(w <= max_wait && w <= DIKE_GCRA_MAX_SECONDS);
    check(isfinite(g.debt) && g.debt >= 0);
    check(g.debt * g.interval <= 2 * DIKE_GCRA_MAX_SECONDS * (1 + 1e-12));
    if (g.interval == 0)
      check(w == 0 && g.debt == 0); /* no limit */
    if (before.started && !(g.last > before.last))
      check(g.debt >= before.debt); /* no time passed: nothing drained */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in;
  fuzz_input_init(&in, data, size);
  if (fuzz_byte(&in) & 1)
    run_wild(&in);
  else
    run_exact(&in);
  return 0;
}
