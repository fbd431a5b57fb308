/*
 * fuzz_input.h - reading a libFuzzer input as a stream of values, for the
 * fuzz_*.c targets. Reads past the end give zeros, so every input (the
 * empty one included) is a complete, valid program for a target.
 */
#ifndef DIKE_FUZZ_INPUT_H
#define DIKE_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
  const uint8_t *data;
  size_t size, pos;
} fuzz_input;

static inline void fuzz_input_init(fuzz_input *in, const uint8_t *data, size_t size) {
  in->data = data;
  in->size = size;
  in->pos = 0;
}

static inline int fuzz_input_done(const fuzz_input *in) {
  return in->pos >= in->size;
}

static inline uint8_t fuzz_byte(fuzz_input *in) {
  return in->pos < in->size ? in->data[in->pos++] : 0;
}

/* 8 bytes, little-endian. */
static inline uint64_t fuzz_u64(fuzz_input *in) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < 8; i++)
    v |= (uint64_t)fuzz_byte(in) << (8 * i);
  return v;
}

/* 8 bytes as a double: every bit pattern, NaNs and infinities included. */
static inline double fuzz_double(fuzz_input *in) {
  uint64_t bits = fuzz_u64(in);
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

#endif /* DIKE_FUZZ_INPUT_H */
