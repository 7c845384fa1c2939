/* fuzz.h - shared bits of the libFuzzer targets. */
#ifndef PCD_FUZZ_H
#define PCD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of an accepted input: a violation is a bug, not bad input. */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond))							\
		__builtin_trap();					\
} while (0)

/* A refusal must say why: a non-empty, terminated message. */
#define FUZZ_CHECK_ERR(err, len) do {					\
	FUZZ_CHECK((err)[0] != '\0');					\
	FUZZ_CHECK(memchr((err), '\0', (len)) != NULL);			\
} while (0)

static inline uint64_t
fuzz_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
