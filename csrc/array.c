/* array.c - typed arrays: checked creation, access, concat, slice (dike.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
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

int dike_array_init(dike_array *a, int type, size_t width, size_t nrows) {
  size_t nbytes;
  void *data = NULL;
  int rc = dike_array_nbytes(type, width, nrows, &nbytes);
  if (rc != 0)
    return rc;
  if (nbytes != 0) {
    data = calloc(nrows * width, dike_elemtype_size(type));
    if (data == NULL)
      return DIKE_ENOMEM;
  }
  a->data = data;
  a->nrows = nrows;
  a->width = width;
  a->type = type;
  a->owned = 1;
  return 0;
}

int dike_array_view(dike_array *a, int type, size_t width, size_t nrows,
                    void *data) {
  size_t nbytes;
  int rc = dike_array_nbytes(type, width, nrows, &nbytes);
  if (rc != 0)
    return rc;
  if (data == NULL && nbytes != 0)
    return DIKE_EINVAL;
  a->data = nbytes != 0 ? data : NULL;
  a->nrows = nrows;
  a->width = width;
  a->type = type;
  a->owned = 0;
  return 0;
}

void dike_array_free(dike_array *a) {
  if (a->owned)
    free(a->data);
  a->data = NULL;
  a->nrows = 0;
  a->owned = 0;
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

int dike_array_concat_shape(const dike_array *const *parts, size_t n,
                            int *type, size_t *width, size_t *nrows,
                            size_t *bad) {
  size_t i, total = 0, nbytes;
  int rc;
  if (n == 0 || parts == NULL)
    return DIKE_EINVAL;
  for (i = 0; i < n; i++) {
    if (parts[i] == NULL)
      return DIKE_EINVAL;
    if (parts[i]->type != parts[0]->type ||
        parts[i]->width != parts[0]->width) {
      if (bad != NULL)
        *bad = i;
      return DIKE_EMISMATCH;
    }
    if (parts[i]->nrows > SIZE_MAX - total)
      return DIKE_EOVERFLOW;
    total += parts[i]->nrows;
  }
  rc = dike_array_nbytes(parts[0]->type, parts[0]->width, total, &nbytes);
  if (rc != 0)
    return rc;
  if (type != NULL)
    *type = parts[0]->type;
  if (width != NULL)
    *width = parts[0]->width;
  if (nrows != NULL)
    *nrows = total;
  return 0;
}

int dike_array_concat_into(dike_array *out, const dike_array *const *parts,
                           size_t n) {
  size_t i, width, nrows, at = 0;
  int type;
  int rc = dike_array_concat_shape(parts, n, &type, &width, &nrows, NULL);
  if (rc != 0)
    return rc;
  if (out->type != type || out->width != width || out->nrows != nrows)
    return DIKE_EMISMATCH;
  for (i = 0; i < n; i++) {
    rc = dike_array_copy_rows(out, at, parts[i], 0, parts[i]->nrows);
    if (rc != 0)
      return rc; /* not reached: the shapes were checked */
    at += parts[i]->nrows;
  }
  return 0;
}

int dike_array_concat(dike_array *out, const dike_array *const *parts,
                      size_t n) {
  dike_array tmp;
  size_t width, nrows;
  int type;
  int rc = dike_array_concat_shape(parts, n, &type, &width, &nrows, NULL);
  if (rc != 0)
    return rc;
  rc = dike_array_init(&tmp, type, width, nrows);
  if (rc != 0)
    return rc;
  rc = dike_array_concat_into(&tmp, parts, n);
  if (rc != 0) {
    dike_array_free(&tmp);
    return rc;
  }
  *out = tmp;
  return 0;
}

int dike_array_slice_check(const dike_array *a, size_t first, size_t nrows) {
  if (first > a->nrows || nrows > a->nrows - first)
    return DIKE_EINDEX;
  return 0;
}

int dike_array_slice(dike_array *out, const dike_array *a, size_t first,
                     size_t nrows) {
  dike_array tmp;
  int rc = dike_array_slice_check(a, first, nrows);
  if (rc != 0)
    return rc;
  rc = dike_array_init(&tmp, a->type, a->width, nrows);
  if (rc != 0)
    return rc;
  (void)dike_array_copy_rows(&tmp, 0, a, first, nrows);
  *out = tmp;
  return 0;
}

int dike_array_copy_rows(dike_array *dst, size_t dst_first,
                         const dike_array *src, size_t src_first,
                         size_t nrows) {
  size_t rowbytes;
  if (dst->type != src->type || dst->width != src->width)
    return DIKE_EMISMATCH;
  if (dike_array_slice_check(dst, dst_first, nrows) != 0 ||
      dike_array_slice_check(src, src_first, nrows) != 0)
    return DIKE_EINDEX;
  if (nrows == 0)
    return 0; /* data may be NULL, and memmove(NULL, ..., 0) is undefined */
  /* Both arrays are valid, so their byte sizes (and these products) fit. */
  rowbytes = src->width * dike_elemtype_size(src->type);
  memmove((char *)dst->data + dst_first * rowbytes,
          (const char *)src->data + src_first * rowbytes, nrows * rowbytes);
  return 0;
}
