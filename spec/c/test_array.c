/* test_array.c - element types, checked values, access, batch buffers
 * (append, remove, growth), copy_rows. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../../csrc/dike.h"
#include "test.h"

static const int all_types[] = {DIKE_DOUBLE, DIKE_FLOAT, DIKE_INT32,
                                DIKE_INT64, DIKE_UINT8};
#define NTYPES 5

/* An array of `type`, `width` over malloc'd memory for caprows rows (the
 * binding keeps it inside a userdata), nrows of them in use. */
static dike_array make_buffer(int type, size_t width, size_t nrows,
                              size_t caprows) {
  dike_array a;
  size_t nbytes = 0;
  void *mem;
  memset(&a, 0, sizeof a);
  CHECK_INT(dike_array_nbytes(type, width, caprows, &nbytes), 0);
  mem = nbytes != 0 ? calloc(1, nbytes) : NULL;
  CHECK(nbytes == 0 || mem != NULL);
  CHECK_INT(dike_array_view(&a, type, width, nrows, caprows, mem), 0);
  return a;
}

/* A full array, filled with base + i (flat index i). */
static dike_array make(int type, size_t width, size_t nrows, int base) {
  dike_array a = make_buffer(type, width, nrows, nrows);
  size_t i;
  for (i = 0; i < nrows * width; i++)
    CHECK_INT(dike_array_set(&a, i, (double)base + (double)i), 0);
  return a;
}

static void release(dike_array *a) {
  free(a->data);
  a->data = NULL;
}

static double at(const dike_array *a, size_t i) {
  double v = -12345;
  CHECK_INT(dike_array_get(a, i, &v), 0);
  return v;
}

TEST(elemtype_names) {
  static const char *names[] = {"double", "float", "int32", "int64", "uint8"};
  static const size_t sizes[] = {8, 4, 4, 8, 1};
  int i;
  for (i = 0; i < NTYPES; i++) {
    CHECK_STR(dike_elemtype_name(all_types[i]), names[i]);
    CHECK_INT(dike_elemtype_lookup(names[i]), all_types[i]);
    CHECK_INT(dike_elemtype_size(all_types[i]), sizes[i]);
  }
  CHECK(dike_elemtype_name(-1) == NULL);
  CHECK(dike_elemtype_name(DIKE_ELEMTYPE_COUNT_) == NULL);
  CHECK_INT(dike_elemtype_size(-1), 0);
  CHECK_INT(dike_elemtype_size(99), 0);
  CHECK_INT(dike_elemtype_lookup("int16"), DIKE_EINVAL);
  CHECK_INT(dike_elemtype_lookup("Double"), DIKE_EINVAL);
  CHECK_INT(dike_elemtype_lookup("doublex"), DIKE_EINVAL);
  CHECK_INT(dike_elemtype_lookup(""), DIKE_EINVAL);
  CHECK_INT(dike_elemtype_lookup(NULL), DIKE_EINVAL);
}

TEST(value_checks) {
  /* double: anything. */
  CHECK_INT(dike_elemtype_check(DIKE_DOUBLE, NAN), 0);
  CHECK_INT(dike_elemtype_check(DIKE_DOUBLE, -INFINITY), 0);
  CHECK_INT(dike_elemtype_check(DIKE_DOUBLE, DBL_MAX), 0);
  /* float: within +-FLT_MAX, or inf/NaN; rounding is fine. */
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, 0.1), 0);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, (double)FLT_MAX), 0);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, -(double)FLT_MAX), 0);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, INFINITY), 0);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, NAN), 0);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, 1e300), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_FLOAT, -1e39), DIKE_ERANGE);
  /* int32 */
  CHECK_INT(dike_elemtype_check(DIKE_INT32, 2147483647.0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, -2147483648.0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, -0.0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, 2147483648.0), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, -2147483649.0), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, 1.5), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, NAN), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT32, INFINITY), DIKE_ERANGE);
  /* int64 */
  CHECK_INT(dike_elemtype_check(DIKE_INT64, -9223372036854775808.0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, 9007199254740993.0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, 9223372036854775808.0),
            DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, 1e300), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, 0.5), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, NAN), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_INT64, -INFINITY), DIKE_ERANGE);
  /* uint8 */
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, 0), 0);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, 255), 0);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, 256), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, 300), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, -1), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, 0.5), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check(DIKE_UINT8, NAN), DIKE_ERANGE);
  /* unknown type */
  CHECK_INT(dike_elemtype_check(-1, 0), DIKE_EINVAL);
  CHECK_INT(dike_elemtype_check(DIKE_ELEMTYPE_COUNT_, 0), DIKE_EINVAL);
}

TEST(int64_value_checks) {
  CHECK_INT(dike_elemtype_check_int64(DIKE_DOUBLE, INT64_MAX), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_FLOAT, INT64_MIN), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_INT64, INT64_MIN), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_INT32, INT32_MAX), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_INT32, INT32_MIN), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_INT32, (int64_t)INT32_MAX + 1),
            DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check_int64(DIKE_INT32, (int64_t)INT32_MIN - 1),
            DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check_int64(DIKE_UINT8, 255), 0);
  CHECK_INT(dike_elemtype_check_int64(DIKE_UINT8, 256), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check_int64(DIKE_UINT8, -1), DIKE_ERANGE);
  CHECK_INT(dike_elemtype_check_int64(7, 0), DIKE_EINVAL);
}

TEST(nbytes_is_checked) {
  size_t nb = 99;
  CHECK_INT(dike_array_nbytes(DIKE_INT32, 2, 3, &nb), 0);
  CHECK_INT(nb, 24);
  CHECK_INT(dike_array_nbytes(DIKE_DOUBLE, 1, 0, &nb), 0);
  CHECK_INT(nb, 0);
  nb = 99;
  CHECK_INT(dike_array_nbytes(DIKE_DOUBLE, 0, 3, &nb), DIKE_EINVAL);
  CHECK_INT(dike_array_nbytes(DIKE_DOUBLE, (size_t)DIKE_ARRAY_MAX_WIDTH + 1,
                              0, &nb),
            DIKE_EINVAL);
  CHECK_INT(dike_array_nbytes(-1, 1, 3, &nb), DIKE_EINVAL);
  CHECK_INT(dike_array_nbytes(DIKE_UINT8, 2, SIZE_MAX / 2 + 1, &nb),
            DIKE_EOVERFLOW);
  CHECK_INT(dike_array_nbytes(DIKE_DOUBLE, 1, SIZE_MAX / 8 + 1, &nb),
            DIKE_EOVERFLOW);
  CHECK_INT(dike_array_nbytes(DIKE_DOUBLE, DIKE_ARRAY_MAX_WIDTH, SIZE_MAX, &nb),
            DIKE_EOVERFLOW);
  CHECK_INT(nb, 99); /* untouched on failure */
  CHECK_INT(dike_array_nbytes(DIKE_UINT8, 1, SIZE_MAX, &nb), 0);
  CHECK(nb == SIZE_MAX);
}

TEST(view_refuses_bad_shapes) {
  static double mem[4];
  dike_array a, orig;
  memset(&a, 0x5A, sizeof a);
  orig = a;
  CHECK_INT(dike_array_view(&a, DIKE_DOUBLE, 0, 1, 1, mem), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&a, 42, 1, 1, 1, mem), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&a, DIKE_DOUBLE, 2, 0, SIZE_MAX / 2, mem),
            DIKE_EOVERFLOW);
  CHECK_INT(dike_array_view(&a, DIKE_DOUBLE, 1, 3, 2, mem), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&a, DIKE_DOUBLE, 1, 0, 2, NULL), DIKE_EINVAL);
  CHECK(memcmp(&a, &orig, sizeof a) == 0);
}

TEST(every_type_round_trips_with_width) {
  int t;
  for (t = 0; t < NTYPES; t++) {
    dike_array a = make(all_types[t], 3, 4, 10);
    size_t i, idx = 99;
    CHECK_INT(a.nrows, 4);
    CHECK_INT(a.width, 3);
    CHECK_INT(dike_array_len(&a), 12);
    for (i = 0; i < 12; i++) {
      int64_t v = -1;
      CHECK_SAME(at(&a, i), 10.0 + (double)i);
      CHECK_INT(dike_array_get_int64(&a, i, &v), 0);
      CHECK_INT(v, 10 + (int64_t)i);
    }
    CHECK_INT(dike_array_index(&a, 2, 1, &idx), 0);
    CHECK_INT(idx, 7);
    CHECK_INT(dike_array_index(&a, 3, 2, &idx), 0);
    CHECK_INT(idx, 11);
    CHECK_INT(dike_array_index(&a, 4, 0, &idx), DIKE_EINDEX);
    CHECK_INT(dike_array_index(&a, 0, 3, &idx), DIKE_EINDEX);
    CHECK_INT(dike_array_index(&a, SIZE_MAX, 0, &idx), DIKE_EINDEX);
    CHECK_INT(idx, 11);
    {
      double v = 7;
      CHECK_INT(dike_array_get(&a, 12, &v), DIKE_EINDEX);
      CHECK_SAME(v, 7.0);
      CHECK_INT(dike_array_set(&a, 12, 1), DIKE_EINDEX);
      CHECK_INT(dike_array_set_int64(&a, 12, 1), DIKE_EINDEX);
    }
    release(&a);
  }
}

TEST(set_refuses_values_and_keeps_old) {
  dike_array a = make(DIKE_UINT8, 1, 2, 7);
  CHECK_INT(dike_array_set(&a, 0, 300), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, -1), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, NAN), DIKE_ERANGE);
  CHECK_INT(dike_array_set_int64(&a, 0, 256), DIKE_ERANGE);
  CHECK_SAME(at(&a, 0), 7.0);
  release(&a);

  a = make(DIKE_INT32, 1, 1, 0);
  CHECK_INT(dike_array_set(&a, 0, 1.5), DIKE_ERANGE);
  CHECK_INT(dike_array_set_int64(&a, 0, INT64_C(1) << 40), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, -2147483648.0), 0);
  CHECK_SAME(at(&a, 0), -2147483648.0);
  release(&a);

  a = make(DIKE_FLOAT, 1, 1, 0);
  CHECK_INT(dike_array_set(&a, 0, 1e300), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, 0.1), 0);
  CHECK_SAME(at(&a, 0), (double)0.1f);
  CHECK_INT(dike_array_set(&a, 0, NAN), 0);
  CHECK(isnan(at(&a, 0)));
  release(&a);
}

TEST(int64_is_exact_beyond_2_53) {
  dike_array a = make(DIKE_INT64, 1, 3, 0);
  int64_t big = (INT64_C(1) << 62) + 1, v = 0;
  CHECK_INT(dike_array_set_int64(&a, 0, big), 0);
  CHECK_INT(dike_array_get_int64(&a, 0, &v), 0);
  CHECK(v == big);
  CHECK_INT(dike_array_set_int64(&a, 1, INT64_MIN), 0);
  CHECK_INT(dike_array_get_int64(&a, 1, &v), 0);
  CHECK(v == INT64_MIN);
  CHECK_INT(dike_array_set_int64(&a, 2, INT64_MAX), 0);
  CHECK_INT(dike_array_get_int64(&a, 2, &v), 0);
  CHECK(v == INT64_MAX);
  release(&a);
}

TEST(get_int64_of_floating_types) {
  dike_array a = make(DIKE_DOUBLE, 1, 4, 0);
  int64_t v = 5;
  CHECK_INT(dike_array_set(&a, 0, 3.0), 0);
  CHECK_INT(dike_array_set(&a, 1, 3.5), 0);
  CHECK_INT(dike_array_set(&a, 2, NAN), 0);
  CHECK_INT(dike_array_set(&a, 3, 1e300), 0);
  CHECK_INT(dike_array_get_int64(&a, 0, &v), 0);
  CHECK_INT(v, 3);
  CHECK_INT(dike_array_get_int64(&a, 1, &v), DIKE_ERANGE);
  CHECK_INT(dike_array_get_int64(&a, 2, &v), DIKE_ERANGE);
  CHECK_INT(dike_array_get_int64(&a, 3, &v), DIKE_ERANGE);
  CHECK_INT(dike_array_get_int64(&a, 4, &v), DIKE_EINDEX);
  CHECK_INT(v, 3);
  release(&a);
}

TEST(views) {
  int32_t buf[6] = {1, 2, 3, 4, 5, 6};
  dike_array v;
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 3, 3, buf), 0);
  CHECK_SAME(at(&v, 5), 6.0);
  CHECK_INT(dike_array_set(&v, 0, 9), 0);
  CHECK_INT(buf[0], 9);
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 3, 3, NULL), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 0, 3, 3, buf), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 0, 0, NULL), 0);
  CHECK(v.data == NULL);
  CHECK_INT(dike_array_len(&v), 0);
  /* Rows beyond nrows are capacity: not elements. */
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 1, 3, buf), 0);
  CHECK_INT(dike_array_len(&v), 2);
  CHECK_INT(dike_array_get(&v, 2, &(double){0}), DIKE_EINDEX);
  CHECK_INT(dike_array_set(&v, 2, 1), DIKE_EINDEX);
}

TEST(empty_arrays) {
  dike_array a = make_buffer(DIKE_DOUBLE, 4, 0, 0);
  double d;
  CHECK(a.data == NULL);
  CHECK_INT(dike_array_len(&a), 0);
  CHECK_INT(dike_array_get(&a, 0, &d), DIKE_EINDEX);
}

/* Rows of a as base + flat index? */
static void check_rows(const dike_array *a, size_t from_elem, size_t n,
                       double first) {
  size_t i;
  for (i = 0; i < n; i++)
    CHECK_SAME(at(a, from_elem + i), first + (double)i);
}

TEST(append_fills_a_buffer_in_order) {
  int t;
  for (t = 0; t < NTYPES; t++) {
    dike_array buf = make_buffer(all_types[t], 2, 0, 6);
    dike_array a = make(all_types[t], 2, 1, 0);   /* 0 1 */
    dike_array e = make(all_types[t], 2, 0, 0);   /* empty */
    dike_array b = make(all_types[t], 2, 3, 2);   /* 2..7 */
    dike_array c = make(all_types[t], 2, 2, 8);   /* 8..11 */
    CHECK_INT(dike_array_append(&buf, &a), 0);
    CHECK_INT(dike_array_append(&buf, &e), 0);
    CHECK_INT(dike_array_append(&buf, &b), 0);
    CHECK_INT(buf.nrows, 4);
    CHECK_INT(dike_array_append(&buf, &c), 0); /* exactly full */
    CHECK_INT(buf.nrows, 6);
    CHECK_INT(buf.caprows, 6);
    check_rows(&buf, 0, 12, 0.0);
    CHECK_INT(dike_array_append(&buf, &e), 0); /* nothing fits nothing */
    CHECK_INT(dike_array_append(&buf, &a), DIKE_EFULL);
    CHECK_INT(buf.nrows, 6);
    check_rows(&buf, 0, 12, 0.0);
    release(&buf);
    release(&a);
    release(&b);
    release(&c);
  }
}

TEST(append_refuses_and_changes_nothing) {
  dike_array buf = make_buffer(DIKE_DOUBLE, 2, 0, 4);
  dike_array d = make(DIKE_DOUBLE, 2, 1, 5), f = make(DIKE_FLOAT, 2, 1, 0);
  dike_array w = make(DIKE_DOUBLE, 1, 2, 0), big = make(DIKE_DOUBLE, 2, 3, 0);
  CHECK_INT(dike_array_append(&buf, &d), 0);
  CHECK_INT(dike_array_append(&buf, &f), DIKE_EMISMATCH);
  CHECK_INT(dike_array_append(&buf, &w), DIKE_EMISMATCH);
  CHECK_INT(dike_array_append(&buf, &big), 0);
  CHECK_INT(buf.nrows, 4); /* 1 + 3 rows: fits exactly */
  CHECK_INT(dike_array_append(&buf, &d), DIKE_EFULL);
  CHECK_SAME(at(&buf, 0), 5.0);
  CHECK_SAME(at(&buf, 1), 6.0);
  release(&buf);
  release(&d);
  release(&f);
  release(&w);
  release(&big);
}

TEST(remove_rows_moves_the_rest_down) {
  dike_array buf = make_buffer(DIKE_INT32, 1, 0, 8);
  dike_array src = make(DIKE_INT32, 1, 6, 0); /* 0..5 */
  CHECK_INT(dike_array_append(&buf, &src), 0);
  CHECK_INT(dike_array_remove_rows(&buf, 1, 2), 0); /* 0 3 4 5 */
  CHECK_INT(buf.nrows, 4);
  CHECK_SAME(at(&buf, 0), 0.0);
  CHECK_SAME(at(&buf, 1), 3.0);
  CHECK_SAME(at(&buf, 3), 5.0);
  CHECK_INT(dike_array_remove_rows(&buf, 3, 1), 0); /* the last: 0 3 4 */
  CHECK_INT(dike_array_remove_rows(&buf, 0, 1), 0); /* the first: 3 4 */
  CHECK_INT(buf.nrows, 2);
  CHECK_SAME(at(&buf, 0), 3.0);
  CHECK_SAME(at(&buf, 1), 4.0);
  CHECK_INT(dike_array_remove_rows(&buf, 2, 0), 0);
  CHECK_INT(dike_array_remove_rows(&buf, 2, 1), DIKE_EINDEX);
  CHECK_INT(dike_array_remove_rows(&buf, 1, 2), DIKE_EINDEX);
  CHECK_INT(dike_array_remove_rows(&buf, SIZE_MAX, 1), DIKE_EINDEX);
  CHECK_INT(dike_array_remove_rows(&buf, 1, SIZE_MAX), DIKE_EINDEX);
  CHECK_INT(buf.nrows, 2);
  /* The freed rows take appends again. */
  CHECK_INT(dike_array_append(&buf, &src), 0);
  CHECK_INT(buf.nrows, 8);
  CHECK_SAME(at(&buf, 2), 0.0);
  CHECK_SAME(at(&buf, 7), 5.0);
  CHECK_INT(dike_array_remove_rows(&buf, 0, 8), 0);
  CHECK_INT(buf.nrows, 0);
  release(&buf);
  release(&src);
}

TEST(grow_rows_doubles_and_never_overflows) {
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 100, 100), 100);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 100, 50), 100);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 100, 101), 200);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 100, 450), 800);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 0, 1), 8);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 3, 9), 16);
  /* Doubling would not fit the type's bytes: exactly what is needed. */
  CHECK(dike_array_grow_rows(DIKE_UINT8, 1, SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2)
        == SIZE_MAX / 2 + 2);
  CHECK(dike_array_grow_rows(DIKE_DOUBLE, 1, SIZE_MAX / 16 + 1, SIZE_MAX / 16 + 2)
        == SIZE_MAX / 16 + 2);
  /* Not even that: 0. */
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 1, 8, SIZE_MAX / 8 + 1), 0);
  CHECK_INT(dike_array_grow_rows(DIKE_DOUBLE, 0, 8, 9), 0);
}

TEST(copy_rows_checks) {
  dike_array a = make(DIKE_INT32, 2, 3, 0), b = make(DIKE_INT32, 2, 2, 100);
  dike_array c = make(DIKE_INT32, 1, 6, 0), d = make(DIKE_UINT8, 2, 3, 0);
  CHECK_INT(dike_array_copy_rows(&a, 1, &b, 0, 2), 0);
  CHECK_SAME(at(&a, 1), 1.0);
  CHECK_SAME(at(&a, 2), 100.0);
  CHECK_SAME(at(&a, 5), 103.0);
  CHECK_INT(dike_array_copy_rows(&a, 2, &b, 0, 2), DIKE_EINDEX);
  CHECK_INT(dike_array_copy_rows(&a, 0, &b, 1, 2), DIKE_EINDEX);
  CHECK_INT(dike_array_copy_rows(&a, 0, &c, 0, 1), DIKE_EMISMATCH);
  CHECK_INT(dike_array_copy_rows(&a, 0, &d, 0, 1), DIKE_EMISMATCH);
  CHECK_INT(dike_array_copy_rows(&a, 3, &b, 2, 0), 0);
  /* Overlapping copy within one array (memmove). */
  CHECK_INT(dike_array_copy_rows(&a, 1, &a, 0, 2), 0);
  CHECK_SAME(at(&a, 2), 0.0);
  CHECK_SAME(at(&a, 4), 100.0);
  release(&a);
  release(&b);
  release(&c);
  release(&d);
}

int main(void) {
  RUN(elemtype_names);
  RUN(value_checks);
  RUN(int64_value_checks);
  RUN(nbytes_is_checked);
  RUN(view_refuses_bad_shapes);
  RUN(every_type_round_trips_with_width);
  RUN(set_refuses_values_and_keeps_old);
  RUN(int64_is_exact_beyond_2_53);
  RUN(get_int64_of_floating_types);
  RUN(views);
  RUN(empty_arrays);
  RUN(append_fills_a_buffer_in_order);
  RUN(append_refuses_and_changes_nothing);
  RUN(remove_rows_moves_the_rest_down);
  RUN(grow_rows_doubles_and_never_overflows);
  RUN(copy_rows_checks);
  return test_report();
}
