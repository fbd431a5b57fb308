/* gcra.c - rate-limit timing: the generic cell rate algorithm (dike.h). */
#include <math.h>

#include "dike.h"

int dike_gcra_init(dike_gcra *g, double rate, double per, double burst) {
  double interval, tolerance;
  /* Written as !(x ok) so that NaN fails every test. */
  if (!(rate > 0))
    return DIKE_EINVAL;
  if (!(per > 0) || isinf(per))
    return DIKE_EINVAL;
  if (!(burst >= 1) || isinf(burst))
    return DIKE_EINVAL;
  /* per / rate: finite / (finite or inf) > 0, so a number in [0, inf];
   * inf (rate underflowing) and everything past the cap saturate. */
  interval = per / rate;
  if (!(interval <= DIKE_GCRA_MAX_SECONDS))
    interval = DIKE_GCRA_MAX_SECONDS;
  tolerance = burst * interval; /* finite * finite: never NaN */
  if (!(tolerance <= DIKE_GCRA_MAX_SECONDS))
    tolerance = DIKE_GCRA_MAX_SECONDS;
  g->interval = interval;
  g->burst = burst;
  g->tolerance = tolerance;
  g->last = 0;
  g->debt = 0;
  g->started = 0;
  return 0;
}

int dike_gcra_reserve(dike_gcra *g, double now, double cost, double max_wait,
                      double *wait) {
  double debt, inc, w;

  if (!(cost >= 0) || !(cost <= g->burst)) /* burst is finite: no inf */
    return DIKE_EINVAL;
  if (!(max_wait >= 0))
    return DIKE_EINVAL;

  /* The clock: a reading that is not a finite number means "no time has
   * passed". The debt owed at `now` is tat - now = max(tat, now) - now:
   * the stored debt less the time passed since the last reading, never
   * below 0 (an idle limiter owes nothing). A clock that went back keeps
   * the debt as it was. Nothing is stored yet: a refused call must leave
   * g as it was. */
  if (!isfinite(now))
    now = g->started ? g->last : 0;
  if (!g->started) {
    debt = 0;
  } else {
    debt = g->debt;
    if (now > g->last) {
      /* now - last may be +inf (readings +-1e308 apart): debt - inf is
       * -inf, which the test below turns into 0; never NaN. */
      debt -= now - g->last;
      if (!(debt > 0))
        debt = 0;
    }
  }

  /* c * T, at most the tolerance: equal to it for cost == burst (the same
   * product), and capped with it when burst * T saturated. */
  inc = cost * g->interval;
  if (inc > g->tolerance)
    inc = g->tolerance;

  /* allow_at - now = (now + debt + inc - tolerance) - now, summed from a
   * term >= 0 and one <= 0, so an exact debt gives an exact sign. */
  w = debt - (g->tolerance - inc);
  if (!(w > 0))
    w = 0; /* admitted at once (and never -0) */

  if (w > max_wait || w > DIKE_GCRA_MAX_SECONDS) {
    *wait = w;
    return DIKE_ELIMITED;
  }
  /* debt + inc = w + tolerance <= 2 * DIKE_GCRA_MAX_SECONDS. */
  g->debt = debt + inc;
  g->last = now;
  g->started = 1;
  *wait = w;
  return 0;
}
