/* bench.h - the parts of postcopy-bench: raw baselines (bench_tls.c,
 * bench_uffd.c), test certificates (bench_certs.c), the migration runs
 * (bench_run.c) and the report (postcopy-bench.c).
 *
 * Errors: 0 or -errno, with a message for a human in err.
 */
#ifndef PCD_BENCH_H
#define PCD_BENCH_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "migration.h"

/* --- CPU accounting (bench_cpu.c) ------------------------------------- */

#define BENCH_CPU_TIDS	256	/* threads followed per process */
#define BENCH_CPU_NAMES	16	/* distinct thread names reported */
#define BENCH_CPU_NAME	16	/* a thread name with its NUL (TASK_COMM_LEN) */

struct bench_cpu_tid {
	pid_t		tid;
	bool		seen;
	uint64_t	first, last;	/* utime + stime, clock ticks */
	bool		rt;		/* seen SCHED_FIFO or SCHED_RR */
	char		name[BENCH_CPU_NAME];
};

/* Follows one process over a window: begin, sample as it runs, end. */
struct bench_cpu_track {
	pid_t			pid;
	bool			ok;
	uint64_t		start;	/* the process's ticks at begin */
	struct bench_cpu_tid	tids[BENCH_CPU_TIDS];
	unsigned		ntids;
};

/* CPU seconds in the window: the process (exact, exited threads
 * included) and by thread name (sampled: a lower bound). */
struct bench_cpu {
	double		total_s;
	struct {
		char	name[BENCH_CPU_NAME];
		double	s;
		bool	rt;	/* one of them ran real-time */
	} threads[BENCH_CPU_NAMES];
	unsigned	nthreads;
};

void bench_cpu_begin(struct bench_cpu_track *t, pid_t pid);
void bench_cpu_sample(struct bench_cpu_track *t);
int bench_cpu_end(struct bench_cpu_track *t, struct bench_cpu *out);
/* The calling thread's CPU seconds so far (CLOCK_THREAD_CPUTIME_ID). */
double bench_cpu_thread_now(void);

/* --- certificates (bench_certs.c) ------------------------------------- */

/* Writes a CA and a server and a client certificate signed by it into dir,
 * laid out like QEMU's tls-creds-x509 directory (ca-cert.pem,
 * server-cert.pem, server-key.pem, client-cert.pem, client-key.pem), with
 * the SANs DNS:localhost and IP:127.0.0.1. */
int bench_certs_generate(const char *dir, char *err, size_t errlen);

/* --- raw TLS baselines (bench_tls.c) ---------------------------------- */

struct bench_tls_opts {
	const char	*tls_dir;	/* laid out as above */
	const char	*ciphersuite;	/* TLS 1.3 suite name */
	uint64_t	 bytes;		/* stream length */
	size_t		 record;	/* payload bytes per frame on the stream */
	size_t		 frame_hdr;	/* header bytes before each payload */
	size_t		 rtt_request;	/* bytes of one RTT request */
	size_t		 rtt_response;	/* bytes of one RTT response */
	unsigned	 rtt_rounds;
	unsigned	 rtt_warmup;	/* untimed rounds first (0: 50) */
	/* Run while the loaded round trips' stream still flows, so that a
	 * baseline can be measured under the same load as a migration (the
	 * userfaultfd floor); its result lands in alongside_rc. */
	int		(*alongside)(void *arg);
	void		*alongside_arg;
};

struct bench_tls_result {
	double		stream_gbps;	/* payload Gbit/s, handshake excluded */
	double		stream_s;
	double		rtt_p50_us;
	double		rtt_p99_us;
	double		rtt_loaded_p50_us;	/* while a stream runs */
	double		rtt_loaded_p99_us;
	double		stream_tx_cpu_s;	/* sender thread's CPU seconds */
	double		stream_rx_cpu_s;	/* receiver thread's CPU seconds */
	int		alongside_rc;
	char		cipher[64];	/* what the handshake negotiated */
};

int bench_tls_run(const struct bench_tls_opts *o, struct bench_tls_result *r,
    char *err, size_t errlen);

/* --- raw userfaultfd baseline (bench_uffd.c) -------------------------- */

struct bench_uffd_result {
	double		fault_p50_us;	/* access -> data, as the toucher sees it */
	double		fault_p99_us;
	double		handler_p50_us;	/* read(uffd) -> UFFDIO_CONTINUE returned */
	uint64_t	faults;
};

/* MINOR faults on a memfd whose pages are in the page cache, each resolved
 * by a handler thread with UFFDIO_CONTINUE; pages faults per round. */
int bench_uffd_minor(uint64_t pages, unsigned rounds,
    struct bench_uffd_result *r, char *err, size_t errlen);

/* --- reaching a page (bench_touch.c) ----------------------------------- */

struct bench_touch_result {
	double		first_rw_us;	/* first read, writable mapping */
	double		again_rw_us;	/* the same pages again */
	double		first_ro_us;	/* first read, read-only mapping */
	double		again_ro_us;
	double		pwrite_us;	/* per page, 64-page pwrites */
	double		pread_us;	/* per page, 64-page preads */
	uint64_t	pages;
};

/* Per-page costs over a memfd of len bytes, 4 KiB pages. */
int bench_touch(uint64_t len, struct bench_touch_result *r, char *err,
    size_t errlen);

/* --- migration runs (bench_run.c) ------------------------------------- */

enum bench_mode { BENCH_MINOR = 1, BENCH_COPY = 2 };

struct bench_opts {
	uint64_t	 size;
	uint64_t	 page_size;
	uint64_t	 huge;		/* --hugepages: bytes (0: none) */
	const char	*workload;	/* random|sequential|hotset */
	const char	*guest;		/* threads|kvm */
	unsigned	 threads;
	double		 zero_fraction;
	uint64_t	 seed;
	uint64_t	 bandwidth_bps;	/* 0 = unlimited */
	unsigned	 bulk_channels;	/* Migrate bulk_channels; 0: default */
	unsigned	 demand_spin_us;	/* both daemons' config; 0: off */
	bool		 demand_spin_always;	/* ... whatever the load */
	const char	*demand_realtime;	/* "yes", "no"; NULL: default */
	const char	*page_write;	/* "pwrite", "alias"; NULL: default */
	/* --precopy: rounds before postcopy, switching after rounds (0: no
	 * limit) or on a stall (auto_switch); the source guest writes
	 * dirty_rate pages/s until the pause. */
	bool		 precopy;
	unsigned	 rounds;
	bool		 auto_switch;
	/* --max-downtime: precopy converges when the dirty set takes under
	 * this at the measured bandwidth (the daemon's default, 300 ms like
	 * QEMU's downtime-limit, lets round 0 converge with ~150 ms of pages
	 * left at 2000 pages/s; the target is 10 ms). */
	unsigned	 max_downtime_ms;
	double		 dirty_rate;
	unsigned	 modes;		/* BENCH_MINOR | BENCH_COPY */
	unsigned	 repeat;
	unsigned	 timeout_s;	/* per migration run */
	bool		 json;
	bool		 progress;	/* progress bar on stderr */
	bool		 keep;		/* keep the work dir (logs) */
	unsigned	 verbose;	/* -v: 1, -vv: daemons at debug */
	/* Set by SIGINT/SIGTERM: every wait gives up, the run is cleaned. */
	const volatile sig_atomic_t *stop;
	const char	*plot;
	const char	*tls_dir;	/* certificates (generated if NULL) */
	char		 work_dir[PATH_MAX];	/* temp dir of this run */
	char		 cert_dir[PATH_MAX];
	char		 bin_dir[PATH_MAX];	/* where our tools live */
	char		 postcopyd[PATH_MAX];
	char		 guest_bin[PATH_MAX];
};

/* Progress over time, sampled from the destination's Status. */
struct bench_sample {
	double		t_s;		/* since Migrate */
	uint64_t	bytes;		/* transferred so far */
	uint64_t	pages_valid;
};

struct bench_run {
	enum bench_mode	 mode;
	unsigned	 index;		/* repeat number, from 0 */
	double		 total_s;	/* Migrate -> both sides completed */
	double		 switchover_ms;
	/* --precopy: the source's rounds, pages they sent, pages its scans
	 * reported written, and pages dirty at the pause. */
	uint32_t	 pc_rounds;
	uint64_t	 pc_pages_sent, pc_redirtied, pc_final_dirty;
	double		 throughput_gbps;	/* wire bytes / total_s */
	double		 effective_gbps;	/* guest bytes / total_s */
	uint64_t	 bytes_transferred;
	uint64_t	 pages_total, pages_zero, sent_bulk, sent_urgent;
	uint64_t	 verified, mismatched;	/* guest's check (and daemon's) */
	uint64_t	 digest_verified, digest_mismatched;	/* daemon's xxh3 */
	uint64_t	 page_requests;
	uint64_t	 faults_remote, faults_local;
	double		 p50_us, p99_us, p999_us, max_us;
	/* by kind of fault, NAN when the daemon does not split them */
	double		 remote_p50_us, local_p50_us;
	double		 remote_p99_us;	/* a huge page's, on huge pages */
	uint64_t	 lat_hist[MIG_LAT_BUCKETS];
	/* Daemons' peak RssAnon + RssFile (guest memory they map excluded;
	 * RssFile is mostly shared libraries), sampled while the migration
	 * runs; their peak RssAnon alone; and VmHWM (guest pages included). */
	uint64_t	 rss_src_kib, rss_dst_kib;
	uint64_t	 anon_src_kib, anon_dst_kib;
	uint64_t	 hwm_src_kib, hwm_dst_kib;
	double		 guest_s;	/* the workload's own run time */
	double		 touch_p50_us;	/* guest's first touch of a page */
	double		 touch_p99_us;
	/* CPU seconds of each daemon from Migrate to completion. */
	struct bench_cpu cpu_src, cpu_dst;
	struct bench_sample *samples;
	size_t		 nsamples, samples_cap;
};

/* Runs one migration as o says, fills r; r->index (the repeat number,
 * set by the caller) names the run's directory. */
int bench_run_migration(const struct bench_opts *o, enum bench_mode mode,
    struct bench_run *r, char *err, size_t errlen);
void bench_run_clear(struct bench_run *r);
const char *bench_mode_name(enum bench_mode m);

/* --- tiny JSON reader (bench_json.c) ---------------------------------- */

/* The value at a dotted path ("a.b.0.c"; numbers index arrays) or NULL. */
const char *bench_json_find(const char *json, const char *path);
int bench_json_num(const char *json, const char *path, double *out);
int bench_json_u64(const char *json, const char *path, uint64_t *out);

/* --- statistics -------------------------------------------------------- */

/* Sorts v in place and returns its q-quantile (0..1); 0 when n == 0. */
double bench_quantile(double *v, size_t n, double q);

#endif
