/* log.h - the daemon's one logger.
 *
 * The calls of OpenBSD daemons: log_warn (appends strerror of errno),
 * log_warnx, fatalx (log_warnx then exit), log_notice, log_info and
 * log_debug. Under systemd (JOURNAL_STREAM set) lines carry "<N>" syslog
 * priority prefixes that journald reads; otherwise they are plain.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef PCD_LOG_H
#define PCD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_NOTICE = 5,
		 LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

#define PCD_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *ident, int level);
void log_set_level(int level);
bool log_journal(void);
int log_level_parse(const char *s);	/* "debug" -> 7, -1 if unknown */

void log_warn(const char *fmt, ...) PCD_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) PCD_PRINTF(1, 2);
void log_notice(const char *fmt, ...) PCD_PRINTF(1, 2);
void log_info(const char *fmt, ...) PCD_PRINTF(1, 2);
void log_debug(const char *fmt, ...) PCD_PRINTF(1, 2);
/* A step of a switchover at debug level, stamped with the wall clock in
 * ms (three decimals): both daemons' lines can be lined up. */
void log_timeline(const char *id, const char *fmt, ...) PCD_PRINTF(2, 3);
_Noreturn void fatalx(const char *fmt, ...) PCD_PRINTF(1, 2);

#endif
