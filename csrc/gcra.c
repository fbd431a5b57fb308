/* gcra.c - rate-limit timing: the generic cell rate algorithm (dike.h). */
#include <math.h>
#include <string.h>

#include "dike.h"

int dike_gcra_init(dike_gcra *g, double rate, double per, double burst) {
  double interval, capacity = burst;
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
  /* MAX / T >= 1 (T <= MAX), +inf for a tiny T: then burst stays. */
  if (interval > 0 && capacity > DIKE_GCRA_MAX_SECONDS / interval)
    capacity = DIKE_GCRA_MAX_SECONDS / interval;
  /* The whole struct, padding included: callers may copy and compare it
   * byte for byte. */
  memset(g, 0, sizeof *g);
  g->interval = interval;
  g->burst = burst;
  g->capacity = capacity;
  return 0;
}

int dike_gcra_reserve(dike_gcra *g, double now, double cost, double max_wait,
                      double *wait) {
  double debt, inc, units, w;

  if (!(cost >= 0) || !(cost <= g->burst)) /* burst is finite: no inf */
    return DIKE_EINVAL;
  if (!(max_wait >= 0))
    return DIKE_EINVAL;

  /* The clock: a reading that is not a finite number means "no time has
   * passed". The debt owed at `now` is (max(tat, now) - now) / T: the
   * stored debt less the units that the time since the last reading paid
   * back, never below 0 (an idle limiter owes nothing). A clock that went
   * back keeps the debt as it was. */
  if (!isfinite(now))
    now = g->started ? g->last : 0;
  debt = 0;
  if (g->started && g->interval > 0) {
    debt = g->debt;
    if (now > g->last) {
      /* (now - last) / T may be +inf (readings 1e308 apart, or a tiny T):
       * debt - inf is -inf, which the test below turns into 0. */
      debt -= (now - g->last) / g->interval;
      if (!(debt > 0))
        debt = 0;
    }
  }

  /* allow_at - now = (debt + inc - capacity) * T, summed from a term >= 0
   * and one <= 0: exact for whole costs, so a full burst of unit calls
   * passes. T = 0 (no limit): the debt stays 0 and every wait is 0. */
  inc = cost > g->capacity ? g->capacity : cost;
  units = debt - (g->capacity - inc);
  w = units > 0 ? units * g->interval : 0; /* never -0 */

  if (w > max_wait || w > DIKE_GCRA_MAX_SECONDS) {
    /* Refused: the schedule stays as it is, but the reading is kept (the
     * same debt, counted from now). Otherwise a clock stepped back an hour
     * would only be seen by the next admitted call: a limiter that never
     * waits would refuse everyone until the clock caught up again. (A
     * refusal implies started: an idle limiter admits any valid cost.) */
    g->debt = debt;
    g->last = now;
    *wait = w;
    return DIKE_ELIMITED;
  }
  g->debt = g->interval > 0 ? debt + inc : 0;
  g->last = now;
  g->started = 1;
  *wait = w;
  return 0;
}
