/* testlib.h - small helpers the C tests share. Header only: each test is
 * one program, so the statics here are its own. */
#ifndef PCD_TESTLIB_H
#define PCD_TESTLIB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Failed CHECKs so far; a test exits non-zero when there are any. */
static int failures __attribute__((unused));

/* Counts a failure, says where and what, and goes on. */
#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		failures++;						\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__,	\
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
	}								\
} while (0)

/* Whether the smaps VmFlags of this process's mapping that starts at p
 * carry flag ("uw": registered for uffd-wp; "nh": no huge pages): 1 or 0;
 * -1 when /proc/self/smaps has no such mapping or cannot be read. */
static inline int
testlib_vmflag(const void *p, const char *flag)
{
	char line[512], want[32], f2[8];
	bool in = false;
	int has = -1;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (f == NULL)
		return -1;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	snprintf(f2, sizeof(f2), " %s", flag);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, want, strlen(want)) == 0)
			in = true;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			has = strstr(line, f2) != NULL;
			break;
		}
	}
	fclose(f);
	return has;
}

#endif
