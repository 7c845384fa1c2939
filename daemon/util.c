/* util.c - see util.h. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	uint64_t mult = 1;

	if (s == NULL || *s == '\0' || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':	break;
	case 'K':	mult = 1ull << 10; end++; break;
	case 'M':	mult = 1ull << 20; end++; break;
	case 'G':	mult = 1ull << 30; end++; break;
	case 'T':	mult = 1ull << 40; end++; break;
	default:	return -EINVAL;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (v * (double)mult >= 18446744073709551616.0)
		return -ERANGE;
	*out = (uint64_t)(v * (double)mult);
	return 0;
}

int
parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long p;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || strchr(s, ':') != colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int
str_copy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);

	if (dstlen == 0)
		return -ENAMETOOLONG;
	if (n >= dstlen) {
		memcpy(dst, src, dstlen - 1);
		dst[dstlen - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

void
str_printf(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (dst == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

/* Length of the well-formed UTF-8 character at p[0..n), or 0. */
static size_t
utf8_char(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	uint32_t cp, min;
	size_t k;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		k = 1, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		k = 2, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		k = 3, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n <= k)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((p[j] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[j] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k + 1;
}

bool
utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_char(p + i, n - i)) == 0)
			return false;
	return true;
}

char *
utf8_sanitize(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0, k; i < n; i += k) {
		if ((k = utf8_char((const uint8_t *)s + i, n - i)) == 0) {
			s[i] = '?';
			k = 1;
		}
	}
	return s;
}

const char *
str_quote(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (const char *s = src != NULL ? src : ""; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		size_t need = c >= 0x20 && c < 0x7f ? 1 : 4;

		if (o + need + 4 > dstlen) {	/* room for "..." and NUL */
			if (o + 4 <= dstlen) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

/* ---- per-thread runqueue wait ------------------------------------------ */

/* Each thread keeps its schedstat file open, closed when the thread ends:
 * its key holds fd + 2 (0: not opened yet; 1: not available). */
static pthread_key_t	run_delay_key;
static bool		run_delay_keyed;
static pthread_once_t	run_delay_once = PTHREAD_ONCE_INIT;

static void
run_delay_close(void *v)
{
	intptr_t fd = (intptr_t)v - 2;

	if (fd >= 0)
		close((int)fd);
}

static void
run_delay_init(void)
{
	run_delay_keyed = pthread_key_create(&run_delay_key,
	    run_delay_close) == 0;
}

static int
run_delay_fd(void)
{
	intptr_t v;
	int fd;

	pthread_once(&run_delay_once, run_delay_init);
	if (!run_delay_keyed)
		return -1;
	if ((v = (intptr_t)pthread_getspecific(run_delay_key)) != 0)
		return (int)(v - 2);
	fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (pthread_setspecific(run_delay_key, (void *)(intptr_t)(fd + 2)) != 0 &&
	    fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

uint64_t
thread_run_delay_ns(void)
{
	unsigned long long run, delay;
	char buf[96];
	int fd = run_delay_fd();
	ssize_t n;

	if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &run, &delay) != 2)
		return 0;
	return delay;
}
