/* test_errors.c - every DIKE_E* code has a distinct value and message. */
#include "../../csrc/dike.h"
#include "test.h"

static const struct {
  int code;
  const char *message;
} codes[] = {
#define ENTRY_(name, value, msg) {DIKE_##name, msg},
    DIKE_ERRNO_MAP(ENTRY_)
#undef ENTRY_
};
#define NCODES (sizeof codes / sizeof codes[0])

TEST(every_code_has_its_message) {
  size_t i;
  CHECK(NCODES >= 7);
  for (i = 0; i < NCODES; i++) {
    CHECK(codes[i].code < 0);
    CHECK_STR(dike_strerror(codes[i].code), codes[i].message);
    CHECK(strlen(dike_strerror(codes[i].code)) > 0);
    CHECK(strcmp(dike_strerror(codes[i].code), "unknown error") != 0);
  }
}

TEST(codes_and_messages_are_distinct) {
  size_t i, j;
  for (i = 0; i < NCODES; i++)
    for (j = i + 1; j < NCODES; j++) {
      CHECK(codes[i].code != codes[j].code);
      CHECK(strcmp(dike_strerror(codes[i].code),
                   dike_strerror(codes[j].code)) != 0);
    }
}

TEST(known_values_are_stable) {
  CHECK_INT(DIKE_OK, 0);
  CHECK_INT(DIKE_EINVAL, -1);
  CHECK_INT(DIKE_ENOMEM, -2);
  CHECK_INT(DIKE_ERANGE, -3);
  CHECK_INT(DIKE_EOVERFLOW, -4);
  CHECK_INT(DIKE_EINDEX, -5);
  CHECK_INT(DIKE_EMISMATCH, -6);
  CHECK_INT(DIKE_EFULL, -7);
  CHECK_INT(DIKE_ELIMITED, -8);
  CHECK_STR(dike_strerror(DIKE_EINVAL), "invalid argument");
  CHECK_STR(dike_strerror(DIKE_ENOMEM), "out of memory");
  CHECK_STR(dike_strerror(DIKE_EFULL), "no room for the rows");
  CHECK_STR(dike_strerror(DIKE_ELIMITED), "rate limit exceeded: try again later");
}

TEST(zero_and_unknown_codes) {
  CHECK_STR(dike_strerror(0), "success");
  CHECK_STR(dike_strerror(-1000), "unknown error");
  CHECK_STR(dike_strerror(1), "unknown error");
  CHECK_STR(dike_strerror(INT32_MIN), "unknown error");
  CHECK_STR(dike_strerror(INT32_MAX), "unknown error");
}

int main(void) {
  RUN(every_code_has_its_message);
  RUN(codes_and_messages_are_distinct);
  RUN(known_values_are_stable);
  RUN(zero_and_unknown_codes);
  return test_report();
}
