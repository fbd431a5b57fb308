/*
 * fuzz_array.c - libFuzzer target: typed arrays and batch buffers
 * (dike_array_*) under fuzzer-chosen shapes, values and operations, as the
 * library uses them, checked against a plain reference model.
 *
 * The model keeps every element of a few arrays as the value it must read
 * back (an int64 for integer types, a double for float and double). The
 * input picks shapes (bad ones too), then a sequence of operations: set
 * and get (every double bit pattern, every int64); a batch buffer's life
 * as dike.batch's array mode runs it (ldike_array.c): a buffer with room
 * for some rows, calls' arrays appended (mismatched ones refused, a full
 * buffer grown the way the binding grows it: dike_array_grow_rows, a new
 * buffer, copy_rows, append again), cancelled calls' rows removed, then
 * the result split among the callers (copy_rows into new arrays);
 * copy_rows (overlapping within one array included), index, nbytes (near
 * SIZE_MAX) and view. Buffers are malloc'd at their exact size, so ASan
 * sees any access past a buffer's capacity. Each result code and every
 * element read back must match the model; any mismatch calls abort(),
 * which libFuzzer reports as a crash. The rules the model applies are
 * written out here from dike.h, not taken from array.c.
 *
 * Build and run: `make fuzz` (build-fuzz/, seeds in spec/c/corpus/fuzz_array/),
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     spec/c/fuzz_array.c csrc/errors.c csrc/array.c -o fuzz_array
 *   ./fuzz_array -max_total_time=60 spec/c/corpus/fuzz_array
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/dike.h"
#include "fuzz_input.h"

#define NPARTS 6
#define MAX_ROWS 12
#define MAX_WIDTH 5
#define MAX_LIST 8 /* steps in one buffer's life (appends, removes) */
#define MAX_BUF_ROWS (MAX_LIST * MAX_ROWS)
#define MAX_ELEMS (MAX_BUF_ROWS * MAX_WIDTH)

typedef struct {
  dike_array a;
  union { /* the part's memory (a view over it), any element type */
    double d[MAX_ROWS * MAX_WIDTH];
    int64_t i[MAX_ROWS * MAX_WIDTH];
  } mem;
  int64_t iv[MAX_ROWS * MAX_WIDTH]; /* integer types */
  double dv[MAX_ROWS * MAX_WIDTH];  /* float, double */
} part;

/* A flat model of any array: what get / get_int64 must return. */
typedef struct {
  int type;
  size_t width, nrows;
  int64_t iv[MAX_ELEMS];
  double dv[MAX_ELEMS];
} flat;

static void check(int ok) {
  if (!ok)
    abort();
}

static int is_int_type(int type) {
  return type == DIKE_INT32 || type == DIKE_INT64 || type == DIKE_UINT8;
}

/* dike.h: integer types take only integral values in range (never NaN);
 * float any value within +-FLT_MAX, or +-inf, or NaN; double anything. */
static int fits(int type, double v) {
  int integral = isfinite(v) && floor(v) == v;
  switch (type) {
  case DIKE_DOUBLE:
    return 1;
  case DIKE_FLOAT:
    return !isfinite(v) || fabs(v) <= (double)FLT_MAX;
  case DIKE_INT32:
    return integral && v >= -2147483648.0 && v <= 2147483647.0;
  case DIKE_INT64:
    return integral && v >= -9223372036854775808.0 && v < 9223372036854775808.0;
  default:
    return integral && v >= 0 && v <= 255;
  }
}

static int fits_int64(int type, int64_t v) {
  if (type == DIKE_INT32)
    return v >= INT32_MIN && v <= INT32_MAX;
  if (type == DIKE_UINT8)
    return v >= 0 && v <= 255;
  return 1;
}

static int same_double(double a, double b) {
  return a == b || (isnan(a) && isnan(b));
}

/* Element k of `a` reads back as element k of the model (iv or dv). */
static void check_elem(const dike_array *a, size_t k, int64_t iv, double dv) {
  double d = -1;
  int64_t i = -1;
  int rc;
  check(dike_array_get(a, k, &d) == 0);
  rc = dike_array_get_int64(a, k, &i);
  if (is_int_type(a->type)) {
    check(d == (double)iv);
    check(rc == 0 && i == iv);
  } else {
    check(same_double(d, dv));
    if (isfinite(dv) && floor(dv) == dv && dv >= -9223372036854775808.0 &&
        dv < 9223372036854775808.0)
      check(rc == 0 && i == (int64_t)dv);
    else
      check(rc == DIKE_ERANGE);
  }
}

static void check_flat(const dike_array *a, const flat *f) {
  size_t k, len = f->nrows * f->width;
  check(a->type == f->type && a->width == f->width && a->nrows == f->nrows);
  check(a->nrows <= a->caprows);
  check(dike_array_len(a) == len);
  check(len == 0 || a->data != NULL);
  for (k = 0; k < len; k++)
    check_elem(a, k, f->iv[k], f->dv[k]);
  check(dike_array_get(a, len, &(double){0}) == DIKE_EINDEX);
}

static void check_part(const part *p) {
  size_t k, len = p->a.nrows * p->a.width;
  for (k = 0; k < len; k++)
    check_elem(&p->a, k, p->iv[k], p->dv[k]);
}

/* Append rows [first, first + nrows) of part p to the flat model f. */
static void flat_append(flat *f, const part *p, size_t first, size_t nrows) {
  size_t w = p->a.width, at = f->nrows * w;
  memcpy(f->iv + at, p->iv + first * w, nrows * w * sizeof *f->iv);
  memcpy(f->dv + at, p->dv + first * w, nrows * w * sizeof *f->dv);
  f->nrows += nrows;
}

static void flat_start(flat *f, const dike_array *like) {
  f->type = like->type;
  f->width = like->width;
  f->nrows = 0;
}

/* A shape from the input; sometimes invalid (unknown type, width 0). */
static void make_part(fuzz_input *in, part *p) {
  int type = fuzz_byte(in) % (DIKE_ELEMTYPE_COUNT_ + 1);
  size_t width = fuzz_byte(in) % (MAX_WIDTH + 1), nrows = fuzz_byte(in) % (MAX_ROWS + 1);
  int valid = type < DIKE_ELEMTYPE_COUNT_ && width >= 1;
  int rc;
  memset(&p->mem, 0, sizeof p->mem);
  rc = dike_array_view(&p->a, type, width, nrows, nrows, p->mem.d);
  check(valid ? rc == 0 : rc == DIKE_EINVAL);
  if (!valid)
    check(dike_array_view(&p->a, DIKE_DOUBLE, 1, nrows, nrows, p->mem.d) == 0);
  memset(p->iv, 0, sizeof p->iv); /* the memory is zeroed */
  memset(p->dv, 0, sizeof p->dv);
  check_part(p);
}

/* A value next to a type's edge (random bit patterns rarely land there). */
static double edge_double(fuzz_input *in) {
  static const double edges[] = {0, 255, -2147483648.0, 2147483647.0, 9007199254740992.0,
                                 -9223372036854775808.0, 9223372036854775808.0,
                                 (double)FLT_MAX, -(double)FLT_MAX};
  static const double deltas[] = {0, 1, -1, 0.5, -0.5};
  double v = edges[fuzz_byte(in) % (sizeof edges / sizeof edges[0])];
  uint8_t how = fuzz_byte(in);
  if (how & 0x80) /* the neighbouring doubles */
    return nextafter(v, how & 1 ? INFINITY : -INFINITY);
  return v + deltas[how % (sizeof deltas / sizeof deltas[0])];
}

static int64_t edge_int64(fuzz_input *in) {
  static const int64_t edges[] = {0, 255, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX,
                                  INT64_C(9007199254740993)};
  int64_t v = edges[fuzz_byte(in) % (sizeof edges / sizeof edges[0])];
  int delta = (int)(fuzz_byte(in) % 5) - 2;
  if ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta))
    return v;
  return v + delta;
}

static void op_set(fuzz_input *in, part *p, uint8_t how) {
  size_t len = dike_array_len(&p->a), k = fuzz_byte(in) % (len + 2);
  /* Any bit pattern, a value next to a type's edge, or a small integer. */
  double v = how % 3 == 0   ? fuzz_double(in)
             : how % 3 == 1 ? edge_double(in)
                            : (double)(int8_t)fuzz_byte(in) * 3;
  int rc = dike_array_set(&p->a, k, v);
  if (k >= len)
    check(rc == DIKE_EINDEX);
  else if (!fits(p->a.type, v))
    check(rc == DIKE_ERANGE);
  else {
    check(rc == 0);
    if (is_int_type(p->a.type))
      p->iv[k] = (int64_t)v;
    else
      p->dv[k] = p->a.type == DIKE_FLOAT ? (double)(float)v : v;
  }
  check_part(p); /* a refused set changes nothing */
}

static void op_set_int64(fuzz_input *in, part *p, uint8_t how) {
  size_t len = dike_array_len(&p->a), k = fuzz_byte(in) % (len + 2);
  int64_t v = how & 0x80 ? (int64_t)fuzz_u64(in) : edge_int64(in);
  int rc = dike_array_set_int64(&p->a, k, v);
  if (k >= len)
    check(rc == DIKE_EINDEX);
  else if (!fits_int64(p->a.type, v))
    check(rc == DIKE_ERANGE);
  else {
    check(rc == 0);
    if (is_int_type(p->a.type)) {
      p->iv[k] = v; /* exact, beyond 2^53 too */
    } else {
      double d = 0;
      check(dike_array_get(&p->a, k, &d) == 0);
      /* Rounded to the type, directly or through double. */
      if (p->a.type == DIKE_FLOAT)
        check(d == (double)(float)v || d == (double)(float)(double)v);
      else
        check(d == (double)v);
      p->dv[k] = d;
    }
  }
  check_part(p);
}

/* A buffer of exactly `caprows` rows of malloc'd memory (ASan guards its
 * end), `nrows` in use. */
static void new_buffer(dike_array *b, int type, size_t width, size_t nrows,
                       size_t caprows) {
  size_t nbytes = 0;
  void *mem;
  check(dike_array_nbytes(type, width, caprows, &nbytes) == 0);
  mem = nbytes != 0 ? malloc(nbytes) : NULL;
  check(nbytes == 0 || mem != NULL);
  check(dike_array_view(b, type, width, nrows, caprows, mem) == 0);
}

/* dike_array_grow_rows: doubled from caprows (at least 8) until it holds
 * need; here (small sizes) it never falls back to `need`. */
static size_t grown(size_t caprows, size_t need) {
  size_t n = caprows < 8 ? 8 : caprows;
  if (caprows >= need)
    return caprows;
  while (n < need)
    n *= 2;
  return n;
}

/* A batch buffer's life: made for rows like `like`'s, calls' arrays
 * appended (grown when full, as the binding does), cancelled calls' rows
 * removed, then split into the callers' results. */
static void op_buffer(fuzz_input *in, part *parts) {
  static flat want;
  const part *like = &parts[fuzz_byte(in) % NPARTS];
  size_t caprows = fuzz_byte(in) % MAX_ROWS + 1, steps = fuzz_byte(in) % (MAX_LIST + 1);
  size_t i, w = like->a.width, at;
  dike_array buf;
  new_buffer(&buf, like->a.type, w, 0, caprows);
  flat_start(&want, &like->a);
  check_flat(&buf, &want);
  for (i = 0; i < steps; i++) {
    uint8_t b = fuzz_byte(in);
    if ((b & 0xc0) == 0xc0) { /* a cancelled call's rows leave */
      size_t first = fuzz_byte(in) % (want.nrows + 2), n = fuzz_byte(in) % (want.nrows + 2);
      int rc = dike_array_remove_rows(&buf, first, n);
      if (first > want.nrows || n > want.nrows - first) {
        check(rc == DIKE_EINDEX);
      } else {
        size_t after = (want.nrows - first - n) * w;
        check(rc == 0);
        memmove(want.iv + first * w, want.iv + (first + n) * w, after * sizeof *want.iv);
        memmove(want.dv + first * w, want.dv + (first + n) * w, after * sizeof *want.dv);
        want.nrows -= n;
      }
    } else { /* a call's array arrives */
      const part *p = &parts[b % NPARTS];
      size_t room = buf.caprows - buf.nrows;
      int rc = dike_array_append(&buf, &p->a);
      if (p->a.type != want.type || p->a.width != w) {
        check(rc == DIKE_EMISMATCH);
      } else {
        if (p->a.nrows > room) {
          size_t need = buf.nrows + p->a.nrows, cap;
          dike_array bigger;
          check(rc == DIKE_EFULL);
          cap = dike_array_grow_rows(buf.type, w, buf.caprows, need);
          check(cap == grown(buf.caprows, need) && cap >= need);
          new_buffer(&bigger, buf.type, w, buf.nrows, cap);
          check(dike_array_copy_rows(&bigger, 0, &buf, 0, buf.nrows) == 0);
          free(buf.data);
          buf = bigger;
          rc = dike_array_append(&buf, &p->a);
        }
        check(rc == 0);
        flat_append(&want, p, 0, p->a.nrows);
      }
    }
    check_flat(&buf, &want); /* a refused step changes nothing */
  }
  /* The result split among callers: consecutive slices of input-chosen
   * sizes (the last takes the rest). */
  at = 0;
  while (at < want.nrows) {
    static flat sub;
    size_t n = fuzz_byte(in) % (want.nrows - at) + 1;
    dike_array s;
    new_buffer(&s, want.type, w, n, n);
    check(dike_array_copy_rows(&s, 0, &buf, at, n) == 0);
    sub.type = want.type;
    sub.width = w;
    sub.nrows = n;
    memcpy(sub.iv, want.iv + at * w, n * w * sizeof *sub.iv);
    memcpy(sub.dv, want.dv + at * w, n * w * sizeof *sub.dv);
    check_flat(&s, &sub);
    check(dike_array_copy_rows(&s, 0, &buf, at, n + 1) == DIKE_EINDEX);
    free(s.data);
    at += n;
  }
  free(buf.data);
}

static void op_copy_rows(fuzz_input *in, part *parts) {
  part *dst = &parts[fuzz_byte(in) % NPARTS];
  const part *src = &parts[fuzz_byte(in) % NPARTS];
  size_t df = fuzz_byte(in) % (MAX_ROWS + 2), sf = fuzz_byte(in) % (MAX_ROWS + 2);
  size_t n = fuzz_byte(in) % (MAX_ROWS + 2), w = src->a.width;
  int rc = dike_array_copy_rows(&dst->a, df, &src->a, sf, n);
  if (dst->a.type != src->a.type || dst->a.width != src->a.width)
    check(rc == DIKE_EMISMATCH);
  else if (df > dst->a.nrows || n > dst->a.nrows - df || sf > src->a.nrows ||
           n > src->a.nrows - sf)
    check(rc == DIKE_EINDEX);
  else {
    /* memmove semantics: dst and src may be the same array. */
    int64_t iv[MAX_ROWS * MAX_WIDTH];
    double dv[MAX_ROWS * MAX_WIDTH];
    check(rc == 0);
    memcpy(iv, src->iv + sf * w, n * w * sizeof *iv);
    memcpy(dv, src->dv + sf * w, n * w * sizeof *dv);
    memcpy(dst->iv + df * w, iv, n * w * sizeof *iv);
    memcpy(dst->dv + df * w, dv, n * w * sizeof *dv);
  }
  check_part(dst);
  check_part(src);
}

static void op_index(fuzz_input *in, const part *p) {
  size_t row = fuzz_byte(in) % (MAX_ROWS + 2), col = fuzz_byte(in) % (MAX_WIDTH + 2);
  size_t idx = (size_t)-1;
  int rc = dike_array_index(&p->a, row, col, &idx);
  if (row < p->a.nrows && col < p->a.width)
    check(rc == 0 && idx == row * p->a.width + col);
  else
    check(rc == DIKE_EINDEX && idx == (size_t)-1);
}

static void op_nbytes(fuzz_input *in) {
  int type = fuzz_byte(in) % (DIKE_ELEMTYPE_COUNT_ + 1);
  size_t width = (size_t)fuzz_u64(in), nrows = (size_t)fuzz_u64(in), nb = 0, elems, bytes;
  int rc = dike_array_nbytes(type, width, nrows, &nb);
  if (type >= DIKE_ELEMTYPE_COUNT_ || width == 0 || width > DIKE_ARRAY_MAX_WIDTH)
    check(rc == DIKE_EINVAL);
  else if (__builtin_mul_overflow(nrows, width, &elems) ||
           __builtin_mul_overflow(elems, dike_elemtype_size(type), &bytes))
    check(rc == DIKE_EOVERFLOW);
  else
    check(rc == 0 && nb == bytes);
}

static void op_view(fuzz_input *in) {
  static double buf[MAX_ROWS * MAX_WIDTH];
  int type = fuzz_byte(in) % DIKE_ELEMTYPE_COUNT_, null = fuzz_byte(in) & 1;
  size_t width = fuzz_byte(in) % (MAX_WIDTH + 1), caprows = fuzz_byte(in) % (MAX_ROWS + 1);
  size_t nrows = fuzz_byte(in) % (MAX_ROWS + 1);
  dike_array v;
  int rc = dike_array_view(&v, type, width, nrows, caprows, null ? NULL : buf);
  if (width == 0 || nrows > caprows || (null && caprows != 0))
    check(rc == DIKE_EINVAL);
  else {
    check(rc == 0 && v.nrows == nrows && v.caprows == caprows && v.width == width);
    check(v.data == (caprows == 0 ? NULL : (void *)buf));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static part parts[NPARTS];
  fuzz_input in;
  int i;
  fuzz_input_init(&in, data, size);
  for (i = 0; i < NPARTS; i++)
    make_part(&in, &parts[i]);
  while (!fuzz_input_done(&in)) {
    uint8_t op = fuzz_byte(&in);
    part *p = &parts[fuzz_byte(&in) % NPARTS];
    switch (op % 11) {
    case 0:
    case 1:
      op_set(&in, p, op >> 4);
      break;
    case 2:
      op_set_int64(&in, p, op);
      break;
    case 3:
    case 4:
    case 5:
      op_buffer(&in, parts);
      break;
    case 6:
      op_copy_rows(&in, parts);
      break;
    case 7:
      op_index(&in, p);
      break;
    case 8:
      op_nbytes(&in);
      break;
    case 9:
      op_view(&in);
      break;
    default: /* replace a part with a fresh shape */
      make_part(&in, p);
      break;
    }
  }
  return 0;
}
