/* config.h - postcopyd.conf: parsing builds a struct config; applying it is
 * the caller's business (main.c), so `postcopyd -n` can check a file without
 * touching anything and SIGHUP can parse before it changes a thing.
 *
 * Format: `key = value` lines; '#' starts a comment (at the start of a line
 * or after blanks); values may be "double-quoted". Keys: see config_dump()
 * and daemon/postcopyd.conf.example.
 */
#ifndef PCD_CONFIG_H
#define PCD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_SPIN_US_MAX	1000	/* demand_spin_us cap */

struct config {
	char		control_socket[108];	/* sockaddr_un.sun_path */
	char		vmm_socket[108];
	int		log_level;
	char		metrics_listen[128];	/* "" = no metrics endpoint */
	char		control_tcp_listen[128];/* "" = Unix socket only */
	char		control_tls_dir[PATH_MAX];
	char		tls_dir[PATH_MAX];	/* default migration TLS profile */
	unsigned	max_migrations;
	unsigned	max_connections;	/* over the Unix socket */
	unsigned	max_tcp_connections;	/* over control_tcp_listen */
	unsigned	control_handshake_timeout;	/* s, TCP+TLS */
	unsigned	control_idle_timeout;	/* s without a call */
	uint32_t	max_frame;
	unsigned	max_inflight;
	/* VMMs attached for ids not (yet) prepared or migrated here: how
	 * many are held, and for how long (s). */
	unsigned	vmm_unclaimed_max;
	unsigned	vmm_unclaimed_timeout;
	/* s a Prepare'd or Migrate'd migration waits for its VMM. */
	unsigned	vmm_wait_timeout;
	/* s a completed destination answers its source's reconnects as
	 * completed (a cut lost its Complete); 0 = not at all. */
	unsigned	completed_grace;
	/* s SIGTERM waits for migrations past switchover (the drain); then
	 * a destination with page state is left resumable. */
	unsigned	drain_timeout;
	/* Where a destination keeps each migration's page state (so a
	 * restarted daemon picks the migration up); "auto" = the directory of
	 * vmm_socket, "off" = nowhere. */
	char		state_dir[PATH_MAX];
	/* Migrate defaults (a request may override each): precopy rounds
	 * before postcopy, a round limit, switching on a stall, and the
	 * downtime within which precopy counts as converged. */
	bool		precopy;
	unsigned	precopy_rounds;
	bool		precopy_auto;
	unsigned	max_downtime_ms;
	/* Migrate default: parallel bulk channels (1 .. 16). */
	unsigned	bulk_channels;
	/* Both roles: microseconds to poll the urgent channel and the
	 * userfaultfd before sleeping (0 = off; off by itself while the load
	 * average is above the CPU count). */
	unsigned	demand_spin_us;
	/* ... also while the load average is above the CPU count. */
	bool		demand_spin_always;
	/* Both roles: the demand path's threads run SCHED_FIFO (prio.h). */
	bool		demand_realtime;
	/* Destination, base-page memfd guests: how received pages reach the
	 * page cache: false = pwrite from a bounce buffer (page_write =
	 * pwrite, the default), true = read straight through the alias. */
	bool		page_write_alias;
};

void config_defaults(struct config *c);
/* Sets one key from text. 0 or -EINVAL/-ENOENT with a reason in err. */
int config_set(struct config *c, const char *key, const char *value,
    char *err, size_t errlen);
/* Parses a file over *c (start from config_defaults). On error err holds
 * "FILE:LINE: reason". -ENOENT if the file does not exist. */
int config_parse_file(const char *path, struct config *c, char *err,
    size_t errlen);
/* Checks the relations between keys (e.g. a TCP listener needs a TLS dir
 * with its three files). */
int config_check(const struct config *c, char *err, size_t errlen);
/* Writes the effective configuration as `key = value` lines. */
void config_dump(const struct config *c, FILE *f);

#endif
