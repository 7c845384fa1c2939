/* migration.h - the table of migrations and the interface the control plane
 * drives them through. Every function here is called on the event-loop
 * thread; the data-path threads of a migration never call back into the
 * control plane directly (they post to the loop).
 *
 * Errors: 0 or -errno; on error `err` (if not NULL) holds a message for a
 * human that names what was wrong.
 */
#ifndef PCD_MIGRATION_H
#define PCD_MIGRATION_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mig_table;

#define MIG_ID_MAX	64		/* [A-Za-z0-9._-], 1..64 bytes */
#define MIG_LAT_BUCKETS	32		/* bucket i: latency < 2^i us */

enum mig_role { MIG_ROLE_SOURCE = 1, MIG_ROLE_DEST = 2 };

/* The states of a migration, both roles (DESIGN.md "The migration state
 * machine" has the table; daemon/state.c is the table). */
enum mig_state {
	MIG_STATE_WAITING,	/* registered: waiting for the VMM to attach
				 * and/or for Prepare/Migrate */
	MIG_STATE_SETUP,	/* data path started: the source connects, the
				 * destination waits for its source */
	MIG_STATE_PRECOPY,	/* channels up, the guest runs on the source */
	MIG_STATE_PRECOPY_PAUSED,	/* channels lost before switchover,
				 * recovering; the guest runs on the source */
	MIG_STATE_SWITCHOVER,	/* source: the VMM is asked to pause; the
				 * guest has not left the source yet */
	MIG_STATE_POSTCOPY,	/* switched over: guest runs on destination */
	MIG_STATE_POSTCOPY_PAUSED,	/* switched over, channels lost,
				 * recovering; the guest waits for its pages */
	MIG_STATE_COMPLETED,
	MIG_STATE_FAILED,
	MIG_STATE_CANCELLED,
	MIG_STATE_COUNT
};

const char *mig_state_name(enum mig_state s);
const char *mig_role_name(enum mig_role r);
bool mig_id_valid(const char *id);
/* The one check of a peer-supplied id (control calls, VMM attach, wire
 * Hello): 0, or -EINVAL with err saying what is wrong, the id quoted with
 * str_quote (never raw bytes: err may go into a protobuf string). what
 * names where it came from ("Prepare", "Attach", "Hello"). Strings that
 * went through pbcheck_unpack carry no NUL and are valid UTF-8; this adds
 * the syntax. */
int mig_id_check(const char *id, const char *what, char *err, size_t errlen);

/* Questions about states, answered by the state machine (state.c). */
bool mig_terminal(enum mig_state s);	/* completed, failed, cancelled */
/* The guest has left the source: postcopy (paused or not) or completed. */
bool mig_switched_over(enum mig_state s);
/* Whether Cancel is allowed in state s; if not, *why (if why is not NULL)
 * says why. Allowed in every live state before switchover. */
bool mig_can_cancel(enum mig_role r, enum mig_state s, const char **why);

/* TLS profile: a directory laid out like QEMU's tls-creds-x509 directory:
 * ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
 * client-key.pem. */
struct mig_tls {
	char	dir[PATH_MAX];
	char	peer_name[256];		/* expected SAN of the peer; "" = any */
};

struct mig_prepare_args {		/* destination side */
	const char	*id;
	const char	*listen;	/* "host:port"; port 0 = pick one */
	struct mig_tls	 tls;
	const char	*libvirt_uri;	/* optional: resume this domain ... */
	const char	*libvirt_domain;/* ... when the guest may run */
};

struct mig_migrate_args {		/* source side */
	const char	*id;
	const char	*dest;		/* "host:port" */
	struct mig_tls	 tls;
	uint64_t	 bandwidth_bps;	/* bulk stream limit; 0 = unlimited */
	const char	*libvirt_uri;	/* optional: suspend this domain ... */
	const char	*libvirt_domain;/* ... at switchover */
	/* Precopy: 0 = the table's default (config), 1 = postcopy-only, 2 =
	 * precopy rounds (pcd.MigrateMode); rounds/auto_switch/
	 * max_downtime_ms 0/false = the default. */
	int		 mode;
	uint32_t	 rounds;
	bool		 auto_switch;
	uint32_t	 max_downtime_ms;
	uint32_t	 bulk_channels;	/* 0 = the default (config) */
};

#define MIG_MODE_DEFAULT	0
#define MIG_MODE_POSTCOPY_ONLY	1
#define MIG_MODE_PRECOPY	2

/* Migrate defaults (postcopyd.conf: precopy, precopy_rounds,
 * precopy_auto, max_downtime_ms, bulk_channels) and the data path's
 * demand_spin_us (both roles) and page_write (destination). */
struct mig_precopy_defaults {
	bool		 precopy;
	uint32_t	 rounds;
	bool		 auto_switch;
	uint32_t	 max_downtime_ms;
	uint32_t	 bulk_channels;		/* 1 .. WIRE_BULK_CHANNELS_MAX */
	uint32_t	 demand_spin_us;	/* 0: off */
	bool		 page_write_alias;	/* dest: MINOR through the alias,
						 * not pwrite (place.h) */
};

/* A consistent snapshot of one migration, for Status/Watch/metrics. */
struct mig_stats {
	char		 id[MIG_ID_MAX + 1];
	enum mig_role	 role;
	enum mig_state	 state;
	char		 listen[128];	/* dest: the address actually bound */
	char		 errmsg[256];	/* why failed / *-paused, "" otherwise */
	uint64_t	 page_size;
	uint64_t	 pages_total;
	uint64_t	 pages_valid;	/* dest: received and written; src: sent */
	uint64_t	 pages_zero;
	uint64_t	 pages_sent_bulk;
	uint64_t	 pages_sent_urgent;
	uint64_t	 bytes_transferred;
	uint64_t	 faults_remote;	/* dest: faults that needed the network */
	uint64_t	 faults_local;	/* dest: faults on pages already here */
	uint64_t	 lat_hist[MIG_LAT_BUCKETS];
	uint64_t	 lat_max_us;
	uint64_t	 lat_sum_us;	/* of every latency in lat_hist */
	uint64_t	 bandwidth_bps;	/* configured limit, 0 = none */
	uint64_t	 start_ms;	/* CLOCK_REALTIME ms when created */
	uint64_t	 elapsed_ms;
	uint64_t	 setup_ms;	/* until channels were up */
	uint64_t	 downtime_ms;	/* source pause -> destination resume */
	bool		 vmm_attached;
	/* Added by the data path: */
	char		 refused[256];	/* last peer turned away, and why */
	uint64_t	 page_requests;	/* dest: PageRequests sent; src: served */
	uint64_t	 pages_verified;	/* dest: digest matched the source */
	uint64_t	 pages_mismatched;
	/* Added for reliability: */
	uint64_t	 reconnects;	/* channel sessions resumed after a loss */
	bool		 switched_over;	/* the guest left the source (it stays
					 * true after the end) */
	/* Precopy (source): see pcd.MigrationInfo. */
	char		 phase[32];
	uint32_t	 iteration;
	uint64_t	 precopy_pages_sent;
	uint64_t	 precopy_last_round;
	uint64_t	 pages_redirtied;
	uint64_t	 dirty_rate;
	uint64_t	 remaining;
	uint64_t	 final_dirty;
	char		 precopy_note[256];
	char		 draining[192];	/* "" or why and how long (SIGTERM) */
};

typedef void (*mig_notify_fn)(void *arg, const char *id);

/* vmm_fd: the VMM socket from socket activation (owned from here on), or
 * -1 to create vmm_socket. */
int mig_table_new(struct event_base *base, const char *vmm_socket, int vmm_fd,
    struct mig_table **out);
void mig_table_free(struct mig_table *t);
/* Called on the loop thread whenever a migration changes state (and at most
 * every 100 ms while it makes progress). */
void mig_table_set_notify(struct mig_table *t, mig_notify_fn fn, void *arg);
/* Called on the loop thread on every state transition (from != to), before
 * the notify hook. main.c drives the libvirt domain from it. */
typedef void (*mig_transition_fn)(void *arg, const char *id,
    enum mig_role role, enum mig_state from, enum mig_state to);
void mig_table_set_transition_hook(struct mig_table *t, mig_transition_fn fn,
    void *arg);
/* Where destinations keep page state for a restart: dir, or "auto" (or
 * "") for the directory of vmm_socket, or "off". */
void mig_table_set_state_dir(struct mig_table *t, const char *dir,
    const char *vmm_socket);
/* vmm_unclaimed_max, vmm_unclaimed_timeout (the pool of VMMs attached for
 * ids nobody prepared here: vmm.h) and vmm_wait_timeout (how long a
 * prepared or migrated migration waits for its VMM before it fails). */
void mig_table_set_vmm_limits(struct mig_table *t, unsigned unclaimed_max,
    unsigned unclaimed_timeout_s, unsigned wait_timeout_s);

/* completed_grace: how long a completed destination answers its source's
 * reconnects as completed (0: not at all; dest_done.c). */
#define MIG_COMPLETED_GRACE_DEFAULT	600
void mig_table_set_completed_grace(struct mig_table *t, unsigned s);

/* SIGTERM: the daemon stops within s seconds; Status says "draining"
 * for every migration it waits for. */
void mig_table_drain(struct mig_table *t, unsigned s);

int mig_prepare(struct mig_table *t, const struct mig_prepare_args *a,
    char *err, size_t errlen);
int mig_migrate(struct mig_table *t, const struct mig_migrate_args *a,
    char *err, size_t errlen);
/* Cancels migration id if the state machine allows it (before switchover):
 * 0; -ENOENT; -EALREADY when it is over; -EBUSY with the reason when it has
 * switched over. */
int mig_cancel(struct mig_table *t, const char *id, char *err, size_t errlen);
/* Cancel destination_completed: a source after switchover whose
 * destination completed (the operator says so) ends as completed and its
 * VMM is told so. 0; -ENOENT; -EALREADY over; -EINVAL a destination or
 * before switchover (err: why). */
int mig_end_dest_completed(struct mig_table *t, const char *id, char *err,
    size_t errlen);
/* SIGTERM: cancels every migration that may be cancelled (see
 * mig_can_cancel); returns how many were. */
size_t mig_cancel_on_shutdown(struct mig_table *t);
/* Recover a migration's channels by hand: on a source, reconnect now (to
 * addr if not NULL/empty: the destination moved); on a destination, drop
 * the channels so the source reconnects. Paused or running migrations
 * only. */
int mig_resume(struct mig_table *t, const char *id, const char *addr,
    char *err, size_t errlen);
/* Source in precopy: stop the rounds and switch to postcopy now. 0;
 * -ENOENT; -EINVAL (a destination, or no precopy runs: err says why);
 * -EBUSY when the state does not allow it (err: why). */
int mig_start_postcopy(struct mig_table *t, const char *id, char *err,
    size_t errlen);
void mig_table_set_precopy(struct mig_table *t,
    const struct mig_precopy_defaults *d);
int mig_set_bandwidth(struct mig_table *t, const char *id, uint64_t bps,
    char *err, size_t errlen);
/* One migration, or a VMM held for that id before its Prepare/Migrate
 * (state waiting, vmm_attached; vmm.h's pool): not in mig_list. */
int mig_get_stats(struct mig_table *t, const char *id, struct mig_stats *out);
/* Fills up to max entries, returns how many migrations exist. */
size_t mig_list(struct mig_table *t, struct mig_stats *out, size_t max);
size_t mig_count_active(struct mig_table *t);

/* Latency percentile (0 < q < 1) in us from a power-of-two histogram. */
uint64_t mig_lat_percentile(const uint64_t *hist, double q);

#endif
