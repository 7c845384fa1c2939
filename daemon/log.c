/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Set once by log_init before threads start; read-only afterwards except for
 * the level, which is atomic so SIGHUP reloads can change it. */
static const char *log_ident = "postcopyd";
static atomic_int log_level = LOG_LVL_INFO;
static bool log_to_journal;

void
log_init(const char *ident, int level)
{
	if (ident != NULL)
		log_ident = ident;
	atomic_store(&log_level, level);
	log_to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(int level)
{
	atomic_store(&log_level, level);
}

bool
log_journal(void)
{
	return log_to_journal;
}

int
log_level_parse(const char *s)
{
	static const struct { const char *name; int level; } names[] = {
		{ "error", LOG_LVL_ERR }, { "warning", LOG_LVL_WARNING },
		{ "notice", LOG_LVL_NOTICE }, { "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	return -1;
}

static void PCD_PRINTF(3, 0)
log_vlog(int level, int errnum, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n = 0;
	int r;

	if (level > atomic_load(&log_level))
		return;
	if (log_to_journal)
		r = snprintf(line, sizeof(line), "<%d>", level);
	else
		r = snprintf(line, sizeof(line), "%s: ", log_ident);
	n = r > 0 ? (size_t)r : 0;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (errnum != 0) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* One write per line so lines of different threads never interleave. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

#define LOG_BODY(level, errnum)				\
	do {						\
		va_list ap;				\
		va_start(ap, fmt);			\
		log_vlog((level), (errnum), fmt, ap);	\
		va_end(ap);				\
	} while (0)

void log_warn(const char *fmt, ...)   { int e = errno; LOG_BODY(LOG_LVL_WARNING, e); errno = e; }
void log_warnx(const char *fmt, ...)  { LOG_BODY(LOG_LVL_WARNING, 0); }
void log_notice(const char *fmt, ...) { LOG_BODY(LOG_LVL_NOTICE, 0); }
void log_info(const char *fmt, ...)   { LOG_BODY(LOG_LVL_INFO, 0); }
void log_debug(const char *fmt, ...)  { LOG_BODY(LOG_LVL_DEBUG, 0); }

void
log_timeline(const char *id, const char *fmt, ...)
{
	struct timespec ts;
	char text[512];
	va_list ap;

	if (atomic_load(&log_level) < LOG_LVL_DEBUG)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("migration %s: switchover timeline @%lld.%03ld ms: %s", id,
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
	    (ts.tv_nsec / 1000) % 1000, text);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERR, 0);
	exit(1);
}
