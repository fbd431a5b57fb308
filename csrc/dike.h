/*
 * dike.h - the C core of dike: plain C99, no Lua, no libuv.
 *
 * The core owns data structures and arithmetic; the Lua binding (ldike*.c)
 * only checks arguments, calls these functions and pushes results. Every
 * function that can fail returns 0 (or a documented non-negative result)
 * on success and a negative DIKE_E* code on failure, leaving its outputs
 * and objects unchanged. Nothing here prints, exits, or keeps global state:
 * all state lives in structs the caller owns (so two Lua states, or two
 * threads with separate objects, never interfere).
 */
#ifndef DIKE_H
#define DIKE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Errors
 *
 * Codes are small negative ints, fixed by this table (stable across
 * versions: append, never renumber); the binding exports them as
 * core.EINVAL, ... dike_strerror() gives a short message: a static string
 * for every int, including 0 ("success") and codes not in the table
 * ("unknown error").
 * ====================================================================== */

#define DIKE_ERRNO_MAP(XX)                                            \
  XX(EINVAL, -1, "invalid argument")                                  \
  XX(ENOMEM, -2, "out of memory")                                     \
  XX(ERANGE, -3, "value does not fit the element type")               \
  XX(EOVERFLOW, -4, "size arithmetic overflows")                      \
  XX(EINDEX, -5, "index out of range")                                \
  XX(EMISMATCH, -6, "element types or widths differ")                 \
  XX(EFULL, -7, "no room for the rows")                             \
  XX(ELIMITED, -8, "rate limit exceeded: try again later")

enum {
  DIKE_OK = 0,
#define DIKE_ERRNO_ENUM_(name, code, msg) DIKE_##name = (code),
  DIKE_ERRNO_MAP(DIKE_ERRNO_ENUM_)
#undef DIKE_ERRNO_ENUM_
};

const char *dike_strerror(int code);

/* ======================================================================
 * Random numbers
 *
 * xoshiro256** seeded through splitmix64: any 64-bit seed (0 included)
 * gives a well-mixed, non-zero state, and the same seed always gives the
 * same sequence on every platform. dike_rng_uniform() returns a double in
 * [0, 1) with 53 random bits: (x >> 11) * 2^-53.
 * ====================================================================== */

typedef struct dike_rng {
  uint64_t s[4];
} dike_rng;

void dike_rng_seed(dike_rng *rng, uint64_t seed);
uint64_t dike_rng_next(dike_rng *rng);
double dike_rng_uniform(dike_rng *rng);

/* ======================================================================
 * Backoff
 *
 * A retry schedule: delays base, base*factor, base*factor^2, ... capped at
 * `cap`, each optionally jittered (AWS "Exponential Backoff And Jitter").
 * The config (dike_backoff) is immutable apart from its PRNG; the
 * per-call progress lives in a small dike_backoff_state the caller keeps,
 * so one config serves any number of concurrent calls.
 *
 * Invariants: raw is advanced by repeated multiplication (raw = raw *
 * factor), so without jitter the delays equal, bit for bit, what Lua
 * computes with `d = d * factor`. The effective cap ("limit") is `cap`, or
 * DIKE_BACKOFF_MAX_DELAY when there is none; raw saturates at the limit
 * and no delay ever exceeds it, so no factor (1e300 included) produces inf
 * or NaN. Every delay is finite and >= 0.
 * ====================================================================== */

/* Upper bound on any delay when no cap is given: 1e9 s (about 31 years). */
#define DIKE_BACKOFF_MAX_DELAY 1e9

typedef enum dike_jitter {
  DIKE_JITTER_NONE = 0,   /* b                                   */
  DIKE_JITTER_FULL,       /* U(0, b)                             */
  DIKE_JITTER_EQUAL,      /* b/2 + U(0, b/2)                     */
  DIKE_JITTER_DECORRELATED, /* min(cap, U(base, 3*prev))         */
  DIKE_JITTER_COUNT_
} dike_jitter;

/* "none", "full", "equal", "decorrelated"; NULL for an unknown kind. */
const char *dike_jitter_name(int kind);
/* The kind for a name, or DIKE_EINVAL (name NULL or unknown). */
int dike_jitter_lookup(const char *name);

typedef struct dike_backoff {
  double base;   /* first delay, finite, >= 0                        */
  double factor; /* multiplier per retry, finite, > 0                */
  double cap;    /* largest delay; DIKE_BACKOFF_MAX_DELAY if none given */
  int has_cap;   /* whether cap was given                            */
  int jitter;    /* a dike_jitter                                    */
  dike_rng rng;
} dike_backoff;

typedef struct dike_backoff_state {
  double raw;  /* un-jittered delay for the next retry, before the cap */
  double prev; /* previous delay (decorrelated jitter)                  */
} dike_backoff_state;

/* Validate and set up. cap: > 0, or +INFINITY for none. Returns
 * DIKE_EINVAL for a NaN anywhere, base < 0 or inf, factor <= 0 or inf,
 * cap <= 0, or an unknown jitter kind; b is then untouched. */
int dike_backoff_init(dike_backoff *b, double base, double factor, double cap,
                      int jitter, uint64_t seed);
void dike_backoff_seed(dike_backoff *b, uint64_t seed);
/* The state before the first retry: raw = prev = base. */
void dike_backoff_start(const dike_backoff *b, dike_backoff_state *st);
/* The delay for this retry; advances st. A raw or prev that is NaN or
 * negative (a corrupt state) is treated as base, so the result is always
 * finite and within [0, limit]. */
double dike_backoff_next(dike_backoff *b, dike_backoff_state *st);
/* 1 when elapsed + next_delay >= max_elapsed; max_elapsed <= 0, inf or NaN
 * means no budget (0). */
int dike_backoff_over_budget(double elapsed, double next_delay,
                             double max_elapsed);

/* ======================================================================
 * GCRA: rate-limit timing (the generic cell rate algorithm)
 *
 * A limiter admits `rate` cost units per `per` seconds on average, and up
 * to `burst` units at once after an idle period: a token bucket of `burst`
 * units refilled at rate / per, kept as one number. With the interval
 * T = per / rate and the theoretical arrival time `tat`, a call of cost c
 * at time `now` computes new_tat = max(tat, now) + c * T and allow_at =
 * new_tat - burst * T. It may run at once when allow_at <= now; otherwise
 * it may reserve its turn (tat = new_tat) and wait allow_at - now seconds.
 * Reservations are handed out in call order and allow_at never decreases
 * from one to the next, so waiting callers run in the order they called.
 * The struct holds no clock: every reservation brings its `now` (seconds,
 * any epoch), so one limiter can serve any clock.
 *
 * The state is kept as (last, debt): the latest clock reading, and
 * (tat - last) / T, the debt in cost units. Costs are added in cost
 * units, so whole costs add up exactly whatever T is (in seconds, a sum of
 * a hundred 0.6 s intervals falls short of 100 * 0.6 and would let only
 * 99 calls of a burst of 100 through), and on a clock with a large epoch
 * (seconds since 1970) the debt keeps its precision: only the clock's own
 * resolution limits how finely time passing is seen. Time converts to
 * units once per call ((now - last) / T) and a wait back to seconds once
 * (units * T).
 *
 * Saturation: T is capped at DIKE_GCRA_MAX_SECONDS, and so is the time a
 * full burst takes: `capacity`, the burst in effect, is burst capped at
 * DIKE_GCRA_MAX_SECONDS / T, and a cost above it counts as capacity (so a
 * call of cost burst always passes an idle limiter). No wait is ever
 * longer than DIKE_GCRA_MAX_SECONDS: a reservation that would wait longer
 * is refused even with an infinite max_wait. Every result is finite:
 * rate 1e-300 or burst 1e300 cannot produce inf or NaN. T = 0 (rate
 * +inf, or per / rate underflowing) means no limit.
 *
 * A bad clock: a `now` that is NaN or +-inf is taken as the latest reading
 * seen (0 before the first). A clock that goes backwards (a wall clock
 * stepped back) moves the schedule back with it: the debt is kept, so the
 * step neither frees a burst nor blocks callers for the length of the
 * step; time that then passes counts from the new reading.
 *
 * Invariants once started: last is finite, debt >= 0 and debt * T <=
 * 2 * DIKE_GCRA_MAX_SECONDS (up to rounding). A refused call "changes
 * nothing": the schedule (tat) stays, only the clock reading is kept, as
 * (now, the debt at now), so that a clock stepped back is seen even while
 * every call is refused; an invalid call leaves the struct bit for bit as
 * it was.
 * ====================================================================== */

/* Upper bound on the interval, the time a full burst takes and any wait:
 * 1e9 s. */
#define DIKE_GCRA_MAX_SECONDS 1e9

typedef struct dike_gcra {
  double interval; /* T = per / rate, in [0, DIKE_GCRA_MAX_SECONDS]       */
  double burst;    /* as given: finite, >= 1; costs above it are refused */
  double capacity; /* burst in effect: min(burst, MAX / T), >= 1         */
  double last;     /* the latest clock reading (once started)            */
  double debt;     /* (tat - last) / T in cost units, >= 0 (once started) */
  int started;     /* whether a reservation has been made                */
} dike_gcra;

/* Validate and set up an idle limiter (its first call sees a full
 * bucket). DIKE_EINVAL, g untouched, for: rate NaN or <= 0 (+inf is
 * allowed: T = 0, no limit); per NaN, <= 0 or inf; burst NaN, < 1 or
 * inf. */
int dike_gcra_init(dike_gcra *g, double rate, double per, double burst);

/* One call of cost `cost` at time `now`, which may wait up to `max_wait`
 * seconds (0: never wait; +inf: any wait up to DIKE_GCRA_MAX_SECONDS).
 *  - 0: admitted. *wait is the wait before it may run: 0 when it may run
 *    at once, else allow_at - now (> 0, <= max_wait); the turn is
 *    reserved (tat = new_tat).
 *  - DIKE_ELIMITED: refused; *wait is the retry-after time allow_at - now
 *    (> 0: waiting that long, a call of the same cost would be admitted
 *    at once if nothing else came first); the schedule is unchanged (the
 *    same call again at the same reading is refused alike).
 *  - DIKE_EINVAL: cost NaN, < 0 or > burst (it could never run), or
 *    max_wait NaN or < 0; g and *wait are unchanged.
 * A cost of 0 is a probe: admitted when the limiter has no debt. */
int dike_gcra_reserve(dike_gcra *g, double now, double cost, double max_wait,
                      double *wait);

/* ======================================================================
 * Typed arrays and batch buffers
 *
 * A dense row-major block of rows of `width` elements of one element type,
 * in memory the caller owns (the Lua binding keeps it inside the array's
 * userdata, so the GC sees its size and nothing needs a finalizer). The
 * memory holds `caprows` rows; the first `nrows` are in use. An ordinary
 * array is full (nrows == caprows). A batch buffer is an array with room
 * to spare: dike.batch appends each call's rows to the open batch's buffer
 * as the call arrives (dike_array_append; a cancelled call's rows are taken
 * out again by dike_array_remove_rows), and when the batch is sent the
 * buffer itself is the array the batched function receives: rows are
 * copied once, on arrival, never concatenated at send.
 *
 * Sizes are computed with overflow checks, and width is at most
 * DIKE_ARRAY_MAX_WIDTH, so rows * width never overflows for a valid array.
 * Values are checked on the way in: integer types take only integral
 * values in range (so never NaN), float takes any value within +-FLT_MAX
 * (or +-inf, NaN), double anything.
 * ====================================================================== */

typedef enum dike_elemtype {
  DIKE_DOUBLE = 0,
  DIKE_FLOAT,
  DIKE_INT32,
  DIKE_INT64,
  DIKE_UINT8,
  DIKE_ELEMTYPE_COUNT_
} dike_elemtype;

#define DIKE_ARRAY_MAX_WIDTH 2147483647u

/* "double", "float", "int32", "int64", "uint8"; NULL if unknown. */
const char *dike_elemtype_name(int type);
/* The type for a name, or DIKE_EINVAL. */
int dike_elemtype_lookup(const char *name);
/* Bytes per element; 0 if unknown. */
size_t dike_elemtype_size(int type);
/* 0 if v can be stored exactly as the type (float: rounded), DIKE_ERANGE
 * if not, DIKE_EINVAL for an unknown type. */
int dike_elemtype_check(int type, double v);
int dike_elemtype_check_int64(int type, int64_t v);

typedef struct dike_array {
  void *data;     /* caprows * width elements; NULL when caprows is 0 */
  size_t nrows;   /* rows in use, <= caprows */
  size_t caprows; /* rows the memory holds */
  size_t width;   /* elements per row, 1..DIKE_ARRAY_MAX_WIDTH */
  int type;       /* a dike_elemtype */
} dike_array;

/* Bytes for nrows rows: DIKE_EINVAL (unknown type, width 0 or too large),
 * DIKE_EOVERFLOW. */
int dike_array_nbytes(int type, size_t width, size_t nrows, size_t *nbytes);
/* Describe caller-owned memory of at least dike_array_nbytes(caprows)
 * bytes, suitably aligned for the type, holding nrows <= caprows rows in
 * use: DIKE_EINVAL (bad shape, nrows > caprows, NULL data for a non-empty
 * capacity), DIKE_EOVERFLOW. */
int dike_array_view(dike_array *a, int type, size_t width, size_t nrows,
                    size_t caprows, void *data);
/* Number of elements in use (nrows * width). */
size_t dike_array_len(const dike_array *a);
/* Flat index of (row, col), both 0-based: DIKE_EINDEX when out of range. */
int dike_array_index(const dike_array *a, size_t row, size_t col,
                     size_t *index);

/* Element i (flat, 0-based, among the rows in use). Setters check the
 * value (DIKE_ERANGE) and the index (DIKE_EINDEX) and leave the array
 * unchanged on failure. The int64 variants are exact for all int64 values
 * (doubles are only exact up to 2^53); getting a double/float element as
 * int64 needs an integral value in range (DIKE_ERANGE otherwise). */
int dike_array_set(dike_array *a, size_t i, double v);
int dike_array_set_int64(dike_array *a, size_t i, int64_t v);
int dike_array_get(const dike_array *a, size_t i, double *v);
int dike_array_get_int64(const dike_array *a, size_t i, int64_t *v);

/* Copy nrows rows of src from row src_first to row dst_first of dst, both
 * within the rows in use (src == dst may overlap): DIKE_EMISMATCH for
 * another type or width, DIKE_EINDEX for rows outside either. */
int dike_array_copy_rows(dike_array *dst, size_t dst_first,
                         const dike_array *src, size_t src_first,
                         size_t nrows);
/* Append every row of src after the rows in use of a (a batch buffer
 * taking a call): DIKE_EMISMATCH for another type or width, DIKE_EFULL
 * when the spare rows (caprows - nrows) are fewer than src's rows; a is
 * unchanged on failure. src must not be a. */
int dike_array_append(dike_array *a, const dike_array *src);
/* Take rows [first, first + nrows) out of the rows in use, moving the
 * rows after them down (a cancelled call): DIKE_EINDEX for rows outside. */
int dike_array_remove_rows(dike_array *a, size_t first, size_t nrows);
/* The capacity a buffer of caprows rows grows to so that it holds `need`
 * rows: caprows doubled until it does (at least 8), or `need` itself when
 * doubling would overflow; 0 when need does not fit the type and width
 * (dike_array_nbytes fails). Returns caprows when it already holds need. */
size_t dike_array_grow_rows(int type, size_t width, size_t caprows,
                            size_t need);

#ifdef __cplusplus
}
#endif

#endif /* DIKE_H */
