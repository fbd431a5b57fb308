/* test_errors.c - every DIKE_E* code has a distinct name and message. */
#include "../../csrc/dike.h"
#include "test.h"

static const struct {
  int code;
  const char *name;
} codes[] = {
#define ENTRY_(name, value, msg) {DIKE_##name, #name},
    DIKE_ERRNO_MAP(ENTRY_)
#undef ENTRY_
};
#define NCODES (sizeof codes / sizeof codes[0])

TEST(every_code_has_name_and_message) {
  size_t i;
  CHECK(NCODES >= 6);
  for (i = 0; i < NCODES; i++) {
    CHECK(codes[i].code < 0);
    CHECK_STR(dike_errname(codes[i].code), codes[i].name);
    CHECK(dike_strerror(codes[i].code) != NULL);
    CHECK(strlen(dike_strerror(codes[i].code)) > 0);
    CHECK(strcmp(dike_strerror(codes[i].code), "unknown error") != 0);
  }
}

TEST(codes_names_and_messages_are_distinct) {
  size_t i, j;
  for (i = 0; i < NCODES; i++)
    for (j = i + 1; j < NCODES; j++) {
      CHECK(codes[i].code != codes[j].code);
      CHECK(strcmp(dike_errname(codes[i].code),
                   dike_errname(codes[j].code)) != 0);
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
  CHECK_STR(dike_strerror(DIKE_EINVAL), "invalid argument");
  CHECK_STR(dike_strerror(DIKE_ENOMEM), "out of memory");
}

TEST(zero_and_unknown_codes) {
  CHECK_STR(dike_errname(0), "OK");
  CHECK_STR(dike_strerror(0), "success");
  CHECK_STR(dike_errname(-1000), "EUNKNOWN");
  CHECK_STR(dike_strerror(-1000), "unknown error");
  CHECK_STR(dike_errname(1), "EUNKNOWN");
  CHECK_STR(dike_errname(INT32_MIN), "EUNKNOWN");
  CHECK_STR(dike_strerror(INT32_MAX), "unknown error");
}

int main(void) {
  RUN(every_code_has_name_and_message);
  RUN(codes_names_and_messages_are_distinct);
  RUN(known_values_are_stable);
  RUN(zero_and_unknown_codes);
  return test_report();
}
