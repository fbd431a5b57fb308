/* array.c - typed arrays and batch buffers: checked access, append, remove, copy (dike.h). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "dike.h"

static const struct {
  const char *name;
  size_t size;
} elemtypes[DIKE_ELEMTYPE_COUNT_] = {
    {"double", sizeof(double)}, {"float", sizeof(float)},
    {"int32", sizeof(int32_t)}, {"int64", sizeof(int64_t)},
    {"uint8", sizeof(uint8_t)},
};

static int valid_type(int type) {
  return type >= 0 && type < DIKE_ELEMTYPE_COUNT_;
}

const char *dike_elemtype_name(int type) {
  return valid_type(type) ? elemtypes[type].name : NULL;
}

int dike_elemtype_lookup(const char *name) {
  int i;
  if (name == NULL)
    return DIKE_EINVAL;
  for (i = 0; i < DIKE_ELEMTYPE_COUNT_; i++)
    if (strcmp(elemtypes[i].name, name) == 0)
      return i;
  return DIKE_EINVAL;
}

size_t dike_elemtype_size(int type) {
  return valid_type(type) ? elemtypes[type].size : 0;
}

/* Range tests come first so that the casts below are always defined (a
 * double-to-integer cast out of range is undefined behaviour); they also
 * reject NaN, which fails every comparison. */
int dike_elemtype_check(int type, double v) {
  switch (type) {
  case DIKE_DOUBLE:
    return 0;
  case DIKE_FLOAT:
    /* Finite values beyond FLT_MAX cannot be converted; inf and NaN can. */
    return isinf(v) || isnan(v) || (v >= -(double)FLT_MAX &&
                                    v <= (double)FLT_MAX)
               ? 0
               : DIKE_ERANGE;
  case DIKE_INT32:
    return v >= -2147483648.0 && v <= 2147483647.0 &&
                   (double)(int32_t)v == v
               ? 0
               : DIKE_ERANGE;
  case DIKE_INT64:
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 &&
                   (double)(int64_t)v == v
               ? 0
               : DIKE_ERANGE;
  case DIKE_UINT8:
    return v >= 0 && v <= 255 && (double)(uint8_t)v == v ? 0 : DIKE_ERANGE;
  default:
    return DIKE_EINVAL;
  }
}

int dike_elemtype_check_int64(int type, int64_t v) {
  switch (type) {
  case DIKE_DOUBLE: /* rounds beyond 2^53, as any integer-to-double does */
  case DIKE_FLOAT:  /* |v| < 2^63 < FLT_MAX */
  case DIKE_INT64:
    return 0;
  case DIKE_INT32:
    return v >= INT32_MIN && v <= INT32_MAX ? 0 : DIKE_ERANGE;
  case DIKE_UINT8:
    return v >= 0 && v <= UINT8_MAX ? 0 : DIKE_ERANGE;
  default:
    return DIKE_EINVAL;
  }
}

int dike_array_nbytes(int type, size_t width, size_t nrows, size_t *nbytes) {
  size_t es = dike_elemtype_size(type), n;
  if (es == 0 || width == 0 || width > DIKE_ARRAY_MAX_WIDTH)
    return DIKE_EINVAL;
  if (nrows > SIZE_MAX / width)
    return DIKE_EOVERFLOW;
  n = nrows * width;
  if (n > SIZE_MAX / es)
    return DIKE_EOVERFLOW;
  *nbytes = n * es;
  return 0;
}

int dike_array_view(dike_array *a, int type, size_t width, size_t nrows,
                    size_t caprows, void *data) {
  size_t nbytes;
  int rc = dike_array_nbytes(type, width, caprows, &nbytes);
  if (rc != 0)
    return rc;
  if (nrows > caprows || (data == NULL && nbytes != 0))
    return DIKE_EINVAL;
  a->data = nbytes != 0 ? data : NULL;
  a->nrows = nrows;
  a->caprows = caprows;
  a->width = width;
  a->type = type;
  return 0;
}

size_t dike_array_len(const dike_array *a) {
  return a->nrows * a->width;
}

int dike_array_index(const dike_array *a, size_t row, size_t col,
                     size_t *index) {
  if (row >= a->nrows || col >= a->width)
    return DIKE_EINDEX;
  *index = row * a->width + col;
  return 0;
}

static void store(dike_array *a, size_t i, double v) {
  switch (a->type) {
  case DIKE_DOUBLE:
    ((double *)a->data)[i] = v;
    break;
  case DIKE_FLOAT:
    ((float *)a->data)[i] = (float)v;
    break;
  case DIKE_INT32:
    ((int32_t *)a->data)[i] = (int32_t)v;
    break;
  case DIKE_INT64:
    ((int64_t *)a->data)[i] = (int64_t)v;
    break;
  default:
    ((uint8_t *)a->data)[i] = (uint8_t)v;
    break;
  }
}

int dike_array_set(dike_array *a, size_t i, double v) {
  int rc;
  if (i >= dike_array_len(a))
    return DIKE_EINDEX;
  rc = dike_elemtype_check(a->type, v);
  if (rc != 0)
    return rc;
  store(a, i, v);
  return 0;
}

int dike_array_set_int64(dike_array *a, size_t i, int64_t v) {
  int rc;
  if (i >= dike_array_len(a))
    return DIKE_EINDEX;
  rc = dike_elemtype_check_int64(a->type, v);
  if (rc != 0)
    return rc;
  if (a->type == DIKE_INT64)
    ((int64_t *)a->data)[i] = v; /* exact, even beyond 2^53 */
  else
    store(a, i, (double)v);
  return 0;
}

int dike_array_get(const dike_array *a, size_t i, double *v) {
  if (i >= dike_array_len(a))
    return DIKE_EINDEX;
  switch (a->type) {
  case DIKE_DOUBLE:
    *v = ((const double *)a->data)[i];
    break;
  case DIKE_FLOAT:
    *v = (double)((const float *)a->data)[i];
    break;
  case DIKE_INT32:
    *v = (double)((const int32_t *)a->data)[i];
    break;
  case DIKE_INT64:
    *v = (double)((const int64_t *)a->data)[i];
    break;
  default:
    *v = (double)((const uint8_t *)a->data)[i];
    break;
  }
  return 0;
}

int dike_array_get_int64(const dike_array *a, size_t i, int64_t *v) {
  double d;
  int rc;
  if (i >= dike_array_len(a))
    return DIKE_EINDEX;
  switch (a->type) {
  case DIKE_INT32:
    *v = ((const int32_t *)a->data)[i];
    return 0;
  case DIKE_INT64:
    *v = ((const int64_t *)a->data)[i];
    return 0;
  case DIKE_UINT8:
    *v = ((const uint8_t *)a->data)[i];
    return 0;
  default:
    (void)dike_array_get(a, i, &d);
    rc = dike_elemtype_check(DIKE_INT64, d);
    if (rc != 0)
      return rc;
    *v = (int64_t)d;
    return 0;
  }
}

/* Rows [first, first + nrows) lie within the rows in use. */
static int rows_in_use(const dike_array *a, size_t first, size_t nrows) {
  return first <= a->nrows && nrows <= a->nrows - first;
}

static size_t row_bytes(const dike_array *a) {
  /* A valid array's byte size fits, so this product does too. */
  return a->width * dike_elemtype_size(a->type);
}

int dike_array_copy_rows(dike_array *dst, size_t dst_first,
                         const dike_array *src, size_t src_first,
                         size_t nrows) {
  size_t rb;
  if (dst->type != src->type || dst->width != src->width)
    return DIKE_EMISMATCH;
  if (!rows_in_use(dst, dst_first, nrows) || !rows_in_use(src, src_first, nrows))
    return DIKE_EINDEX;
  if (nrows == 0)
    return 0; /* data may be NULL, and memmove(NULL, ..., 0) is undefined */
  rb = row_bytes(src);
  memmove((char *)dst->data + dst_first * rb,
          (const char *)src->data + src_first * rb, nrows * rb);
  return 0;
}

int dike_array_append(dike_array *a, const dike_array *src) {
  size_t rb;
  if (a->type != src->type || a->width != src->width)
    return DIKE_EMISMATCH;
  if (src->nrows > a->caprows - a->nrows)
    return DIKE_EFULL;
  if (src->nrows == 0)
    return 0;
  rb = row_bytes(a);
  /* memcpy: src is another array, so the blocks never overlap. */
  memcpy((char *)a->data + a->nrows * rb, src->data, src->nrows * rb);
  a->nrows += src->nrows;
  return 0;
}

int dike_array_remove_rows(dike_array *a, size_t first, size_t nrows) {
  size_t rb, after;
  if (!rows_in_use(a, first, nrows))
    return DIKE_EINDEX;
  if (nrows == 0)
    return 0;
  rb = row_bytes(a);
  after = a->nrows - first - nrows;
  if (after != 0)
    memmove((char *)a->data + first * rb,
            (const char *)a->data + (first + nrows) * rb, after * rb);
  a->nrows -= nrows;
  return 0;
}

size_t dike_array_grow_rows(int type, size_t width, size_t caprows,
                            size_t need) {
  size_t n = caprows, nbytes;
  if (n >= need)
    return caprows;
  if (n < 8)
    n = 8;
  while (n < need)
    n = n <= SIZE_MAX / 2 ? n * 2 : need;
  if (dike_array_nbytes(type, width, n, &nbytes) == 0)
    return n;
  /* Doubling passed what fits: settle for exactly what is needed. */
  return dike_array_nbytes(type, width, need, &nbytes) == 0 ? need : 0;
}
