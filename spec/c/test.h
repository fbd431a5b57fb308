/*
 * test.h - a tiny unit test framework for dike's C core.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_INT(rc, DIKE_EINVAL); }
 *   int main(void) { RUN(name); return test_report(); }
 *
 * A failed check prints file:line and the test name to stderr and lets the
 * test go on. test_report() prints "N passed, N failed" alone on a line
 * (the line CI reads) and returns the exit status: non-zero on any failure.
 */
#ifndef DIKE_TEST_H
#define DIKE_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test_passed_, test_failed_, test_ok_;
static const char *test_name_ = "?";

#define TEST(name) static void name(void)

#define RUN(name) test_run_(#name, name)

static void test_run_(const char *name, void (*fn)(void)) {
  test_name_ = name;
  test_ok_ = 1;
  fn();
  if (test_ok_)
    test_passed_++;
  else
    test_failed_++;
}

static void test_fail_(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: %s: %s\n", file, line, test_name_, what);
  test_ok_ = 0;
}

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond))                                                           \
      test_fail_(__FILE__, __LINE__, "CHECK(" #cond ") failed");           \
  } while (0)

/* Integers (codes, counts, ids) compared as long long, both printed. */
#define CHECK_INT(got, want)                                               \
  do {                                                                     \
    long long g_ = (long long)(got), w_ = (long long)(want);               \
    if (g_ != w_) {                                                        \
      char m_[160];                                                        \
      snprintf(m_, sizeof m_, "%s == %lld, expected %lld", #got, g_, w_);  \
      test_fail_(__FILE__, __LINE__, m_);                                  \
    }                                                                      \
  } while (0)

/* Doubles compared bit for bit (so -0.0 != 0.0 and NaN == same NaN). */
#define CHECK_SAME(got, want)                                              \
  do {                                                                     \
    double g_ = (got), w_ = (want);                                        \
    if (memcmp(&g_, &w_, sizeof g_) != 0) {                                \
      char m_[160];                                                        \
      snprintf(m_, sizeof m_, "%s == %.17g, expected %.17g", #got, g_,     \
               w_);                                                        \
      test_fail_(__FILE__, __LINE__, m_);                                  \
    }                                                                      \
  } while (0)

#define CHECK_STR(got, want)                                               \
  do {                                                                     \
    const char *g_ = (got), *w_ = (want);                                  \
    if (g_ == NULL || w_ == NULL ? g_ != w_ : strcmp(g_, w_) != 0) {       \
      char m_[200];                                                        \
      snprintf(m_, sizeof m_, "%s == \"%s\", expected \"%s\"", #got,       \
               g_ ? g_ : "(null)", w_ ? w_ : "(null)");                    \
      test_fail_(__FILE__, __LINE__, m_);                                  \
    }                                                                      \
  } while (0)

static int test_report(void) {
  printf("%d passed, %d failed\n", test_passed_, test_failed_);
  return test_failed_ != 0;
}

#endif /* DIKE_TEST_H */
