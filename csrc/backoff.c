/* backoff.c - retry delay schedule with jitter and a seeded PRNG (dike.h). */
#include <math.h>

#include "dike.h"

/* ---- PRNG: xoshiro256** (Blackman & Vigna), seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void dike_rng_seed(dike_rng *rng, uint64_t seed) {
  /* splitmix64 never yields four zero words, the one state xoshiro must
   * avoid, so every seed (0 included) is usable. */
  int i;
  for (i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&seed);
}

uint64_t dike_rng_next(dike_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double dike_rng_uniform(dike_rng *rng) {
  /* The top 53 bits, scaled: exactly representable, never 1.0. */
  return (double)(dike_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* ---- jitter kinds ---- */

static const char *const jitter_names[DIKE_JITTER_COUNT_] = {
    "none", "full", "equal", "decorrelated"};

const char *dike_jitter_name(int kind) {
  if (kind < 0 || kind >= DIKE_JITTER_COUNT_)
    return NULL;
  return jitter_names[kind];
}

int dike_jitter_lookup(const char *name) {
  int i;
  if (name == NULL)
    return DIKE_EINVAL;
  for (i = 0; i < DIKE_JITTER_COUNT_; i++) {
    const char *a = jitter_names[i], *b = name;
    while (*a != '\0' && *a == *b) {
      a++;
      b++;
    }
    if (*a == *b)
      return i;
  }
  return DIKE_EINVAL;
}

/* ---- schedule ---- */

int dike_backoff_init(dike_backoff *b, double base, double factor, double cap,
                      int jitter, uint64_t seed) {
  /* Written as !(x ok) so that NaN fails every test. */
  if (!(base >= 0) || isinf(base))
    return DIKE_EINVAL;
  if (!(factor > 0) || isinf(factor))
    return DIKE_EINVAL;
  if (!(cap > 0))
    return DIKE_EINVAL;
  if (jitter < 0 || jitter >= DIKE_JITTER_COUNT_)
    return DIKE_EINVAL;
  b->base = base;
  b->factor = factor;
  b->has_cap = !isinf(cap);
  b->cap = b->has_cap ? cap : DIKE_BACKOFF_MAX_DELAY;
  b->jitter = jitter;
  dike_rng_seed(&b->rng, seed);
  return 0;
}

void dike_backoff_seed(dike_backoff *b, uint64_t seed) {
  dike_rng_seed(&b->rng, seed);
}

void dike_backoff_start(const dike_backoff *b, dike_backoff_state *st) {
  st->raw = b->base;
  st->prev = b->base;
}

double dike_backoff_next(dike_backoff *b, dike_backoff_state *st) {
  const double limit = b->cap; /* the cap, or DIKE_BACKOFF_MAX_DELAY */
  double raw = st->raw, prev = st->prev;
  double whole, delay, hi;

  /* A corrupt state (NaN, negative) restarts rather than poisoning. */
  if (!(raw >= 0))
    raw = b->base;
  if (!(prev >= 0))
    prev = b->base;
  whole = raw < limit ? raw : limit;

  switch (b->jitter) {
  case DIKE_JITTER_FULL:
    delay = whole * dike_rng_uniform(&b->rng);
    break;
  case DIKE_JITTER_EQUAL:
    delay = whole / 2;
    delay += delay * dike_rng_uniform(&b->rng);
    break;
  case DIKE_JITTER_DECORRELATED:
    /* U(base, 3*prev), with 3*prev kept finite so that (hi - base) * u
     * cannot be inf * 0. */
    hi = 3 * prev;
    if (!(hi <= limit))
      hi = limit;
    delay = b->base + (hi - b->base) * dike_rng_uniform(&b->rng);
    if (delay > limit)
      delay = limit;
    break;
  default:
    delay = whole;
    break;
  }

  /* Repeated multiplication keeps the un-jittered schedule bit-exact with
   * Lua's d = d * factor; raw * factor is finite or +inf (never NaN, as
   * both are finite and >= 0), and anything past the limit saturates. */
  raw *= b->factor;
  if (!(raw <= limit))
    raw = limit;
  st->raw = raw;
  st->prev = delay;
  return delay;
}

int dike_backoff_over_budget(double elapsed, double next_delay,
                             double max_elapsed) {
  if (!(max_elapsed > 0) || isinf(max_elapsed))
    return 0;
  return elapsed + next_delay >= max_elapsed;
}
