/* test_array.c - element types, checked values, access, concat, slice. */
#include <float.h>
#include <math.h>

#include "../../csrc/dike.h"
#include "test.h"

static const int all_types[] = {DIKE_DOUBLE, DIKE_FLOAT, DIKE_INT32,
                                DIKE_INT64, DIKE_UINT8};
#define NTYPES 5

/* An owned array of `type`, `width`, filled with base + i (flat index i). */
static dike_array make(int type, size_t width, size_t nrows, int base) {
  dike_array a;
  size_t i;
  memset(&a, 0, sizeof a);
  CHECK_INT(dike_array_init(&a, type, width, nrows), 0);
  for (i = 0; i < nrows * width; i++)
    CHECK_INT(dike_array_set(&a, i, (double)base + (double)i), 0);
  return a;
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

TEST(init_refuses_bad_shapes) {
  dike_array a, orig;
  memset(&a, 0x5A, sizeof a);
  orig = a;
  CHECK_INT(dike_array_init(&a, DIKE_DOUBLE, 0, 1), DIKE_EINVAL);
  CHECK_INT(dike_array_init(&a, 42, 1, 1), DIKE_EINVAL);
  CHECK_INT(dike_array_init(&a, DIKE_DOUBLE, 2, SIZE_MAX / 2), DIKE_EOVERFLOW);
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
    dike_array_free(&a);
    CHECK(a.data == NULL);
    CHECK_INT(a.nrows, 0);
    dike_array_free(&a);
  }
}

TEST(set_refuses_values_and_keeps_old) {
  dike_array a = make(DIKE_UINT8, 1, 2, 7);
  CHECK_INT(dike_array_set(&a, 0, 300), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, -1), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, NAN), DIKE_ERANGE);
  CHECK_INT(dike_array_set_int64(&a, 0, 256), DIKE_ERANGE);
  CHECK_SAME(at(&a, 0), 7.0);
  dike_array_free(&a);

  a = make(DIKE_INT32, 1, 1, 0);
  CHECK_INT(dike_array_set(&a, 0, 1.5), DIKE_ERANGE);
  CHECK_INT(dike_array_set_int64(&a, 0, INT64_C(1) << 40), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, -2147483648.0), 0);
  CHECK_SAME(at(&a, 0), -2147483648.0);
  dike_array_free(&a);

  a = make(DIKE_FLOAT, 1, 1, 0);
  CHECK_INT(dike_array_set(&a, 0, 1e300), DIKE_ERANGE);
  CHECK_INT(dike_array_set(&a, 0, 0.1), 0);
  CHECK_SAME(at(&a, 0), (double)0.1f);
  CHECK_INT(dike_array_set(&a, 0, NAN), 0);
  CHECK(isnan(at(&a, 0)));
  dike_array_free(&a);
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
  dike_array_free(&a);
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
  dike_array_free(&a);
}

TEST(views) {
  int32_t buf[6] = {1, 2, 3, 4, 5, 6};
  dike_array v;
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 3, buf), 0);
  CHECK_INT(v.owned, 0);
  CHECK_SAME(at(&v, 5), 6.0);
  CHECK_INT(dike_array_set(&v, 0, 9), 0);
  CHECK_INT(buf[0], 9);
  dike_array_free(&v); /* must not free buf */
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 3, NULL), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 0, 3, buf), DIKE_EINVAL);
  CHECK_INT(dike_array_view(&v, DIKE_INT32, 2, 0, NULL), 0);
  CHECK(v.data == NULL);
  CHECK_INT(dike_array_len(&v), 0);
}

TEST(empty_arrays) {
  dike_array a;
  double d;
  CHECK_INT(dike_array_init(&a, DIKE_DOUBLE, 4, 0), 0);
  CHECK(a.data == NULL);
  CHECK_INT(dike_array_len(&a), 0);
  CHECK_INT(dike_array_get(&a, 0, &d), DIKE_EINDEX);
  dike_array_free(&a);
}

TEST(concat_in_order) {
  int t;
  for (t = 0; t < NTYPES; t++) {
    dike_array a = make(all_types[t], 2, 1, 0);   /* 0 1 */
    dike_array e = make(all_types[t], 2, 0, 0);   /* empty */
    dike_array b = make(all_types[t], 2, 3, 2);   /* 2..7 */
    dike_array c = make(all_types[t], 2, 2, 8);   /* 8..11 */
    const dike_array *parts[] = {&a, &e, &b, &c};
    dike_array out;
    int type = -1;
    size_t width = 0, nrows = 0, i;
    CHECK_INT(dike_array_concat_shape(parts, 4, &type, &width, &nrows, NULL),
              0);
    CHECK_INT(type, all_types[t]);
    CHECK_INT(width, 2);
    CHECK_INT(nrows, 6);
    CHECK_INT(dike_array_concat(&out, parts, 4), 0);
    CHECK_INT(out.nrows, 6);
    CHECK_INT(out.width, 2);
    CHECK_INT(out.type, all_types[t]);
    CHECK_INT(out.owned, 1);
    for (i = 0; i < 12; i++)
      CHECK_SAME(at(&out, i), (double)i);
    dike_array_free(&out);
    /* A single part is a copy. */
    CHECK_INT(dike_array_concat(&out, parts + 2, 1), 0);
    CHECK_INT(out.nrows, 3);
    CHECK(out.data != b.data);
    CHECK_SAME(at(&out, 5), 7.0);
    dike_array_free(&out);
    dike_array_free(&a);
    dike_array_free(&e);
    dike_array_free(&b);
    dike_array_free(&c);
  }
}

TEST(concat_refuses_mismatch) {
  dike_array d = make(DIKE_DOUBLE, 1, 2, 0);
  dike_array d2 = make(DIKE_DOUBLE, 2, 1, 0);
  dike_array i = make(DIKE_INT32, 1, 2, 0);
  const dike_array *by_type[] = {&d, &d, &i};
  const dike_array *by_width[] = {&d, &d2};
  const dike_array *with_null[] = {&d, NULL};
  dike_array out;
  size_t bad = 99;
  memset(&out, 0x33, sizeof out);
  CHECK_INT(dike_array_concat_shape(by_type, 3, NULL, NULL, NULL, &bad),
            DIKE_EMISMATCH);
  CHECK_INT(bad, 2);
  CHECK_INT(dike_array_concat_shape(by_width, 2, NULL, NULL, NULL, &bad),
            DIKE_EMISMATCH);
  CHECK_INT(bad, 1);
  CHECK_INT(dike_array_concat(&out, by_type, 3), DIKE_EMISMATCH);
  CHECK_INT(dike_array_concat(&out, by_width, 2), DIKE_EMISMATCH);
  CHECK_INT(dike_array_concat(&out, by_type, 0), DIKE_EINVAL);
  CHECK_INT(dike_array_concat(&out, NULL, 2), DIKE_EINVAL);
  CHECK_INT(dike_array_concat(&out, with_null, 2), DIKE_EINVAL);
  CHECK_INT(out.owned, 0x33333333); /* untouched */
  dike_array_free(&d);
  dike_array_free(&d2);
  dike_array_free(&i);
}

TEST(concat_into_checks_the_destination) {
  dike_array a = make(DIKE_INT64, 1, 2, 0), b = make(DIKE_INT64, 1, 2, 2);
  dike_array small = make(DIKE_INT64, 1, 3, 0), right = make(DIKE_INT64, 1, 4, 0);
  dike_array other = make(DIKE_INT32, 1, 4, 0);
  const dike_array *parts[] = {&a, &b};
  CHECK_INT(dike_array_concat_into(&small, parts, 2), DIKE_EMISMATCH);
  CHECK_INT(dike_array_concat_into(&other, parts, 2), DIKE_EMISMATCH);
  CHECK_INT(dike_array_concat_into(&right, parts, 2), 0);
  CHECK_SAME(at(&right, 3), 3.0);
  dike_array_free(&a);
  dike_array_free(&b);
  dike_array_free(&small);
  dike_array_free(&right);
  dike_array_free(&other);
}

TEST(concat_overflow) {
  /* Views over a dummy buffer: sizes are checked before any access. */
  static uint8_t dummy[8];
  dike_array big, huge;
  const dike_array *rows_overflow[] = {&big, &big, &big};
  const dike_array *bytes_overflow[] = {&huge, &huge};
  CHECK_INT(dike_array_view(&big, DIKE_UINT8, 1, SIZE_MAX / 2 + 1, dummy), 0);
  CHECK_INT(dike_array_concat_shape(rows_overflow, 3, NULL, NULL, NULL, NULL),
            DIKE_EOVERFLOW);
  CHECK_INT(dike_array_view(&huge, DIKE_DOUBLE, 1, SIZE_MAX / 8, dummy), 0);
  CHECK_INT(dike_array_concat_shape(bytes_overflow, 2, NULL, NULL, NULL, NULL),
            DIKE_EOVERFLOW);
}

TEST(slice_edges) {
  int t;
  for (t = 0; t < NTYPES; t++) {
    dike_array a = make(all_types[t], 2, 4, 0), s;
    /* Whole array, first row, last row, empty at either end. */
    CHECK_INT(dike_array_slice(&s, &a, 0, 4), 0);
    CHECK_INT(s.nrows, 4);
    CHECK_SAME(at(&s, 7), 7.0);
    dike_array_free(&s);
    CHECK_INT(dike_array_slice(&s, &a, 0, 1), 0);
    CHECK_INT(s.nrows, 1);
    CHECK_SAME(at(&s, 0), 0.0);
    CHECK_SAME(at(&s, 1), 1.0);
    dike_array_free(&s);
    CHECK_INT(dike_array_slice(&s, &a, 3, 1), 0);
    CHECK_SAME(at(&s, 0), 6.0);
    CHECK_SAME(at(&s, 1), 7.0);
    CHECK_INT(s.type, all_types[t]);
    CHECK_INT(s.width, 2);
    dike_array_free(&s);
    CHECK_INT(dike_array_slice(&s, &a, 1, 2), 0);
    CHECK_SAME(at(&s, 0), 2.0);
    CHECK_SAME(at(&s, 3), 5.0);
    dike_array_free(&s);
    CHECK_INT(dike_array_slice(&s, &a, 4, 0), 0);
    CHECK_INT(s.nrows, 0);
    dike_array_free(&s);
    CHECK_INT(dike_array_slice(&s, &a, 0, 0), 0);
    dike_array_free(&s);
    /* Out of range. */
    CHECK_INT(dike_array_slice_check(&a, 5, 0), DIKE_EINDEX);
    CHECK_INT(dike_array_slice_check(&a, 4, 1), DIKE_EINDEX);
    CHECK_INT(dike_array_slice_check(&a, 0, 5), DIKE_EINDEX);
    CHECK_INT(dike_array_slice_check(&a, 2, 3), DIKE_EINDEX);
    CHECK_INT(dike_array_slice_check(&a, SIZE_MAX, 2), DIKE_EINDEX);
    CHECK_INT(dike_array_slice_check(&a, 2, SIZE_MAX), DIKE_EINDEX);
    CHECK_INT(dike_array_slice(&s, &a, 3, 2), DIKE_EINDEX);
    dike_array_free(&a);
  }
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
  dike_array_free(&a);
  dike_array_free(&b);
  dike_array_free(&c);
  dike_array_free(&d);
}

int main(void) {
  RUN(elemtype_names);
  RUN(value_checks);
  RUN(int64_value_checks);
  RUN(nbytes_is_checked);
  RUN(init_refuses_bad_shapes);
  RUN(every_type_round_trips_with_width);
  RUN(set_refuses_values_and_keeps_old);
  RUN(int64_is_exact_beyond_2_53);
  RUN(get_int64_of_floating_types);
  RUN(views);
  RUN(empty_arrays);
  RUN(concat_in_order);
  RUN(concat_refuses_mismatch);
  RUN(concat_into_checks_the_destination);
  RUN(concat_overflow);
  RUN(slice_edges);
  RUN(copy_rows_checks);
  return test_report();
}
