/* errors.c - messages for the DIKE_E* codes (see dike.h). */
#include "dike.h"

const char *dike_strerror(int code) {
  switch (code) {
  case DIKE_OK:
    return "success";
#define DIKE_STRERROR_CASE_(name, value, msg) \
  case DIKE_##name:                           \
    return msg;
    DIKE_ERRNO_MAP(DIKE_STRERROR_CASE_)
#undef DIKE_STRERROR_CASE_
  default:
    return "unknown error";
  }
}
