/* util.h - small helpers shared by the daemon and the tools. */
#ifndef PCD_UTIL_H
#define PCD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* Invariants checked in debug builds (PCD_DEBUG: the ASan and TSan builds);
 * compiled out otherwise, the expression is not evaluated. */
#ifdef PCD_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define PCD_ASSERT(x)	((x) ? (void)0 : \
	(fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
	#x), abort()))
#else
#define PCD_ASSERT(x)	((void)sizeof(x))
#endif

/* "4096", "64K", "1G", "1.5G" (binary units) -> bytes. 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* "host:port", "[v6]:port" -> host and port. 0 or -EINVAL. */
int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);
/* Copies like strlcpy; returns -ENAMETOOLONG when src did not fit. */
int str_copy(char *dst, const char *src, size_t dstlen);
/* snprintf into a caller's (err, errlen) message buffer; does nothing when
 * err is NULL or errlen 0. */
void str_printf(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether p[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
bool utf8_valid(const uint8_t *p, size_t n);
/* Makes s well-formed UTF-8 in place: every byte of an ill-formed
 * sequence (e.g. a multi-byte character cut by a "%.64s") becomes '?'.
 * Returns s. For text the daemon puts into a protobuf string. */
char *utf8_sanitize(char *s);
/* Copies peer-supplied text for an error message or log line: printable
 * ASCII as is, every other byte as \xNN, cut with "..." to fit dst. The
 * result is always ASCII (valid UTF-8), whatever src holds. */
const char *str_quote(char *dst, size_t dstlen, const char *src);

static inline uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The calling thread's time spent runnable but not running, in ns (the
 * run_delay of /proc/thread-self/schedstat); 0 where the kernel keeps no
 * such count. */
uint64_t thread_run_delay_ns(void);

static inline uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
