/* bench_run.c - one benchmark migration between two local daemons.
 *
 * In a directory of its own under the work dir: a source and a destination
 * postcopyd (separate processes, private control and VMM sockets), a
 * postcopy-guest on each side, the migration driven over the control RPC
 * (daemon/rpc.h, the client postcopyctl uses), Status polled for progress,
 * then the guest's JSON summary, both daemons' final Status and their
 * memory high-water marks. Every child is killed when the run ends, and
 * dies with us (PR_SET_PDEATHSIG) if we are killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "control.pb-c.h"
#include "log.h"
#include "rpc_client.h"
#include "util.h"

#define BENCH_POLL_MS		25
#define BENCH_RPC_TIMEOUT_MS	10000
#define BENCH_START_TIMEOUT_MS	10000
#define BENCH_ID		"bench"

struct bench_side {
	const char	*name;		/* "source" | "destination" */
	char		 dir[PATH_MAX];
	char		 control[PATH_MAX];
	char		 vmm[PATH_MAX];
	pid_t		 daemon;
	pid_t		 guest;
	bool		 guest_done;
	int		 guest_status;
	struct rpc_client *rpc;
};

struct bench_ctx {
	const struct bench_opts	*o;
	enum bench_mode		 mode;
	char			 dir[PATH_MAX];
	struct bench_side	 src, dst;
	struct bench_cpu_track	 cpu_src, cpu_dst;
	char			*err;
	size_t			 errlen;
};

void
bench_run_clear(struct bench_run *r)
{
	free(r->samples);
	r->samples = NULL;
	r->nsamples = r->samples_cap = 0;
}

/* --- processes --------------------------------------------------------- */

/* Starts argv[0] with stdout to out and stderr to log (files). */
static int
bench_spawn(char *const argv[], const char *out, const char *log, pid_t *pid_out)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0644);
		int fl = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGPIPE, SIG_DFL);
		if (fo < 0 || fl < 0 || null < 0 ||
		    dup2(null, STDIN_FILENO) < 0 ||
		    dup2(fo, STDOUT_FILENO) < 0 || dup2(fl, STDERR_FILENO) < 0)
			_exit(126);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "postcopy-bench: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	*pid_out = pid;
	return 0;
}

/* Ends a child: SIGTERM, up to wait_ms for it to go, then SIGKILL. */
static int
bench_reap(pid_t pid, int wait_ms)
{
	int status = 0;
	uint64_t until = now_ns() + (uint64_t)wait_ms * 1000000;

	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ns() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(5000);
	}
	return status;
}

/* "exit 3" or "signal 9" for a wait status. */
static const char *
bench_wait_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "status 0x%x", status);
	return buf;
}

/* A child that exited on its own: true and its status. */
static bool
bench_exited(pid_t pid, int *status)
{
	return pid > 0 && waitpid(pid, status, WNOHANG) == pid;
}

/* VmHWM (or another field) of /proc/PID/status in KiB, 0 if unknown. */
static uint64_t
bench_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	unsigned long long v = 0;
	size_t flen = strlen(field);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			sscanf(line + flen + 1, "%llu", &v);
			break;
		}
	fclose(f);
	return v;
}

/* The daemon's own memory: resident anonymous and file pages, without
 * the guest memory it maps (RssShmem: the memfd's pages, which belong to
 * the VMM and are counted there). Keeps the largest value seen. */
static void
bench_rss_sample(pid_t pid, uint64_t *max_kib, uint64_t *max_anon_kib)
{
	uint64_t anon = bench_proc_kib(pid, "RssAnon");
	uint64_t v = anon + bench_proc_kib(pid, "RssFile");

	if (v > *max_kib)
		*max_kib = v;
	if (anon > *max_anon_kib)
		*max_anon_kib = anon;
}

static char *
bench_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* The last lines of a log, for an error message. */
static void
bench_tail(const char *path, char *out, size_t outlen)
{
	char *buf = bench_slurp(path), *p;
	int lines = 0;

	out[0] = '\0';
	if (buf == NULL)
		return;
	p = buf + strlen(buf);
	while (p > buf && (p[-1] == '\n' || p[-1] == ' '))
		*--p = '\0';
	while (p > buf && lines < 3)
		if (*--p == '\n')
			lines++;
	snprintf(out, outlen, "%s", p + (*p == '\n'));
	for (p = out; *p; p++)
		if (*p == '\n')
			*p = '|';
	free(buf);
}

/* --- RPC --------------------------------------------------------------- */

static int
bench_connect(struct bench_ctx *c, struct bench_side *s)
{
	uint64_t until = now_ns() + BENCH_START_TIMEOUT_MS * 1000000ull;
	char log[PATH_MAX + 16], tail[512], ws[32];
	int rc, status;

	snprintf(log, sizeof(log), "%s/postcopyd.log", s->dir);
	for (;;) {
		rc = rpc_client_connect(s->control, NULL, &s->rpc, c->err,
		    c->errlen);
		if (rc == 0)
			return 0;
		if (bench_exited(s->daemon, &status)) {
			s->daemon = 0;
			bench_tail(log, tail, sizeof(tail));
			snprintf(c->err, c->errlen, "%s postcopyd exited (%s) "
			    "before its control socket came up: %s", s->name,
			    bench_wait_str(status, ws, sizeof(ws)), tail);
			return -ECHILD;
		}
		if (*c->o->stop) {
			snprintf(c->err, c->errlen, "interrupted");
			return -EINTR;
		}
		if (now_ns() > until) {
			snprintf(c->err, c->errlen, "%s postcopyd: no control "
			    "socket at %s after %d ms", s->name, s->control,
			    BENCH_START_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
}

/* A unary call; a non-OK status becomes an error naming the side. */
static int
bench_call(struct bench_ctx *c, struct bench_side *s, unsigned method,
    const ProtobufCMessage *req, struct rpc_answer *a)
{
	char why[256];
	int rc;

	rc = rpc_client_call(s->rpc, method, req, BENCH_RPC_TIMEOUT_MS, a, why,
	    sizeof(why));
	if (rc != 0) {
		snprintf(c->err, c->errlen, "%s: %s call: %s", s->name,
		    rpc_method_get(method)->name, why);
		return rc;
	}
	if (a->code != STATUS_OK) {
		snprintf(c->err, c->errlen, "%s: %s refused: %s (%s)", s->name,
		    rpc_method_get(method)->name, a->message ? a->message : "",
		    status_name(a->code));
		rc = a->code == STATUS_NOT_FOUND ? -ENOENT : -EPROTO;
		rpc_answer_clear(a);
		return rc;
	}
	return 0;
}

/* Status of our migration on one side; *info is valid until a is cleared. */
static int
bench_status(struct bench_ctx *c, struct bench_side *s, struct rpc_answer *a,
    const Pcd__MigrationInfo **info)
{
	Pcd__StatusRequest req = PCD__STATUS_REQUEST__INIT;
	const Pcd__StatusReply *rep;
	int rc;

	req.id = (char *)BENCH_ID;
	if ((rc = bench_call(c, s, RPC_M_STATUS, &req.base, a)) != 0)
		return rc;
	rep = (const Pcd__StatusReply *)a->msg;
	if (rep->n_migrations < 1 || rep->migrations[0] == NULL) {
		snprintf(c->err, c->errlen, "%s: Status lists no migration %s",
		    s->name, BENCH_ID);
		rpc_answer_clear(a);
		return -ENOENT;
	}
	*info = rep->migrations[0];
	return 0;
}

static bool
bench_state_final(const char *state)
{
	return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
	    strcmp(state, "cancelled") == 0;
}

/* --- the run ----------------------------------------------------------- */

static int
bench_side_init(struct bench_ctx *c, struct bench_side *s, const char *name,
    const char *sub)
{
	s->name = name;
	if (snprintf(s->dir, sizeof(s->dir), "%s/%s", c->dir, sub) >=
	    (int)sizeof(s->dir) ||
	    snprintf(s->control, sizeof(s->control), "%s/control.sock",
	    s->dir) >= 108 ||
	    snprintf(s->vmm, sizeof(s->vmm), "%s/vmm.sock", s->dir) >= 108) {
		snprintf(c->err, c->errlen, "work dir %s: too long for a Unix "
		    "socket path (set TMPDIR)", c->dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(s->dir, 0700) != 0) {
		snprintf(c->err, c->errlen, "mkdir %s: %s", s->dir,
		    strerror(errno));
		return -errno;
	}
	return 0;
}

static int
bench_start_daemon(struct bench_ctx *c, struct bench_side *s)
{
	char conf[PATH_MAX + 16], log[PATH_MAX + 16];
	char *argv[16];
	int n = 0, rc;
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/postcopyd.conf", s->dir);
	snprintf(log, sizeof(log), "%s/postcopyd.log", s->dir);
	if ((f = fopen(conf, "w")) == NULL) {
		snprintf(c->err, c->errlen, "cannot write %s: %s", conf,
		    strerror(errno));
		return -errno;
	}
	fprintf(f, "# written by postcopy-bench for one run\n");
	if (c->o->demand_spin_us > 0)
		fprintf(f, "demand_spin_us = %u\n", c->o->demand_spin_us);
	if (c->o->demand_spin_always)
		fprintf(f, "demand_spin_always = yes\n");
	if (c->o->demand_realtime != NULL)
		fprintf(f, "demand_realtime = %s\n", c->o->demand_realtime);
	if (c->o->page_write != NULL)
		fprintf(f, "page_write = %s\n", c->o->page_write);
	fclose(f);
	argv[n++] = (char *)c->o->postcopyd;
	argv[n++] = (char *)"--config";
	argv[n++] = conf;
	argv[n++] = (char *)"--control-socket";
	argv[n++] = s->control;
	argv[n++] = (char *)"--vmm-socket";
	argv[n++] = s->vmm;
	argv[n++] = (char *)"--log-level";
	argv[n++] = (char *)(c->o->verbose > 1 ? "debug" : c->o->verbose ?
	    "info" : "notice");
	argv[n] = NULL;
	log_info("starting %s postcopyd: %s", s->name, log);
	if ((rc = bench_spawn(argv, log, log, &s->daemon)) != 0) {
		snprintf(c->err, c->errlen, "cannot start %s: %s",
		    c->o->postcopyd, strerror(-rc));
		return rc;
	}
	return bench_connect(c, s);
}

static int
bench_start_guest(struct bench_ctx *c, struct bench_side *s, bool dest)
{
	const struct bench_opts *o = c->o;
	char size[32], seed[32], zero[32], threads[16], log[PATH_MAX + 16];
	char out[PATH_MAX + 16], timeout[16], rate[32];
	char *argv[40];
	int n = 0, rc;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)o->size);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)o->seed);
	snprintf(zero, sizeof(zero), "%g", o->zero_fraction);
	snprintf(rate, sizeof(rate), "%g", o->dirty_rate);
	snprintf(threads, sizeof(threads), "%u", o->threads);
	snprintf(timeout, sizeof(timeout), "%u", o->timeout_s);
	snprintf(log, sizeof(log), "%s/guest.log", s->dir);
	argv[n++] = (char *)o->guest_bin;
	argv[n++] = (char *)"--role";
	argv[n++] = (char *)(dest ? "dest" : "source");
	argv[n++] = (char *)"--vmm-socket";
	argv[n++] = s->vmm;
	argv[n++] = (char *)"--id";
	argv[n++] = (char *)BENCH_ID;
	argv[n++] = (char *)"--size";
	argv[n++] = size;
	argv[n++] = (char *)"--timeout";
	argv[n++] = timeout;
	argv[n++] = (char *)"--json";
	if (!o->verbose)
		argv[n++] = (char *)"--quiet";
	if (o->huge != 0) {
		argv[n++] = (char *)"--hugepages";
		argv[n++] = (char *)(o->huge == 1ull << 30 ? "1G" : "2M");
	}
	if (!dest) {
		/* The content; it reaches the destination guest in the
		 * device state. */
		argv[n++] = (char *)"--seed";
		argv[n++] = seed;
		argv[n++] = (char *)"--zero-fraction";
		argv[n++] = zero;
		if (o->dirty_rate > 0) {
			argv[n++] = (char *)"--dirty-rate";
			argv[n++] = rate;
		}
	} else {
		argv[n++] = (char *)"--workload";
		argv[n++] = (char *)o->guest;	/* threads | kvm */
		argv[n++] = (char *)"--threads";
		argv[n++] = threads;
		if (strcmp(o->guest, "threads") == 0) {
			argv[n++] = (char *)"--pattern";
			argv[n++] = (char *)o->workload;
		}
		if (c->mode == BENCH_COPY)
			argv[n++] = (char *)"--copy";
	}
	argv[n] = NULL;
	log_info("starting %s postcopy-guest: %s", s->name, log);
	/* stdout is the guest's JSON summary. */
	snprintf(out, sizeof(out), "%s/summary.json", s->dir);
	if ((rc = bench_spawn(argv, out, log, &s->guest)) != 0) {
		snprintf(c->err, c->errlen, "cannot start %s: %s", o->guest_bin,
		    strerror(-rc));
		return rc;
	}
	return 0;
}

static void
bench_progress(struct bench_ctx *c, const Pcd__MigrationInfo *d, double t)
{
	double frac = d->pages_total ? (double)d->pages_valid /
	    (double)d->pages_total : 0;
	double gbps = t > 0 ? (double)d->bytes_transferred * 8 / t / 1e9 : 0;
	char bar[31];
	int i, w = (int)(frac * 30);

	for (i = 0; i < 30; i++)
		bar[i] = i < w ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r\033[K%-5s [%s] %5.1f%% %6.2f Gbit/s faults %llu "
	    "remote %llu local %5.1fs %s", bench_mode_name(c->mode), bar,
	    frac * 100, gbps, (unsigned long long)d->faults_remote,
	    (unsigned long long)d->faults_local, t, d->state);
}

static int
bench_sample_add(struct bench_run *r, double t, uint64_t bytes, uint64_t valid)
{
	if (r->nsamples == r->samples_cap) {
		size_t cap = r->samples_cap ? r->samples_cap * 2 : 256;
		struct bench_sample *ns = realloc(r->samples,
		    cap * sizeof(*ns));

		if (ns == NULL)
			return -ENOMEM;
		r->samples = ns;
		r->samples_cap = cap;
	}
	r->samples[r->nsamples++] = (struct bench_sample){ t, bytes, valid };
	return 0;
}

/* Latency quantile from the power-of-two histogram (bucket i: < 2^i us),
 * linear inside a bucket. */
static double
bench_hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, cum = 0;
	unsigned i;

	for (i = 0; i < MIG_LAT_BUCKETS; i++)
		total += hist[i];
	if (total == 0)
		return NAN;
	for (i = 0; i < MIG_LAT_BUCKETS; i++) {
		double lo = i == 0 ? 0 : (double)(1ull << (i - 1));
		double hi = (double)(1ull << i);
		double want = q * (double)total;

		if (hist[i] > 0 && (double)(cum + hist[i]) >= want)
			return lo + (hi - lo) * (want - (double)cum) /
			    (double)hist[i];
		cum += hist[i];
	}
	return (double)(1ull << (MIG_LAT_BUCKETS - 1));
}

static void
bench_fill_stats(struct bench_run *r, const Pcd__MigrationInfo *src,
    const Pcd__MigrationInfo *dst)
{
	uint64_t faults;
	size_t i;

	r->pages_total = dst->pages_total;
	/* The destination counts each zero page once; the source counts zero
	 * records sent, a page twice when bulk and urgent both sent it. */
	r->pages_zero = dst->pages_zero ? dst->pages_zero : src->pages_zero;
	r->sent_bulk = src->pages_sent_bulk;
	r->sent_urgent = src->pages_sent_urgent;
	r->bytes_transferred = src->bytes_transferred > dst->bytes_transferred ?
	    src->bytes_transferred : dst->bytes_transferred;
	r->digest_verified = dst->pages_verified;
	r->digest_mismatched = dst->pages_mismatched;
	r->page_requests = dst->page_requests;
	r->faults_remote = dst->faults_remote;
	r->faults_local = dst->faults_local;
	r->switchover_ms = (double)(dst->downtime_ms ? dst->downtime_ms :
	    src->downtime_ms);
	r->pc_rounds = src->iteration;
	r->pc_pages_sent = src->precopy_pages_sent;
	r->pc_redirtied = src->pages_redirtied;
	r->pc_final_dirty = src->final_dirty;
	for (i = 0; i < MIG_LAT_BUCKETS && i < dst->n_lat_hist; i++)
		r->lat_hist[i] = dst->lat_hist[i];
	r->p50_us = bench_hist_quantile(r->lat_hist, 0.50);
	r->p99_us = bench_hist_quantile(r->lat_hist, 0.99);
	r->p999_us = bench_hist_quantile(r->lat_hist, 0.999);
	r->max_us = (double)dst->lat_max_us;
	/* Interpolation inside the top bucket may overshoot the maximum. */
	if (r->max_us > 0) {
		r->p50_us = fmin(r->p50_us, r->max_us);
		r->p99_us = fmin(r->p99_us, r->max_us);
		r->p999_us = fmin(r->p999_us, r->max_us);
	}
	/* The daemon keeps one histogram for both kinds of fault. A local
	 * fault (one UFFDIO_CONTINUE) is faster than any remote one (a
	 * network round trip), so the local faults are the histogram's
	 * lower part: their median is its (local/2)-th fault, the remote
	 * median its (local + remote/2)-th. */
	faults = r->faults_remote + r->faults_local;
	r->local_p50_us = r->remote_p50_us = r->remote_p99_us = NAN;
	if (faults > 0 && r->faults_local > 0)
		r->local_p50_us = bench_hist_quantile(r->lat_hist,
		    0.5 * (double)r->faults_local / (double)faults);
	if (faults > 0 && r->faults_remote > 0)
		r->remote_p50_us = bench_hist_quantile(r->lat_hist,
		    ((double)r->faults_local + 0.5 * (double)r->faults_remote) /
		    (double)faults);
	if (faults > 0 && r->faults_remote > 0)
		r->remote_p99_us = fmin(bench_hist_quantile(r->lat_hist,
		    ((double)r->faults_local + 0.99 *
		    (double)r->faults_remote) / (double)faults),
		    r->max_us > 0 ? r->max_us : INFINITY);
}

static int
bench_read_summary(struct bench_ctx *c, struct bench_run *r)
{
	char path[PATH_MAX + 16], log[PATH_MAX + 16], tail[512];
	char *js;
	double d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/summary.json", c->dst.dir);
	js = bench_slurp(path);
	const char *obj = js ? strchr(js, '{') : NULL;
	uint64_t checked;

	/* postcopy-guest's summary: pages_verified is how many pages it
	 * compared (all of them), mismatched how many of those were wrong. */
	if (obj == NULL ||
	    bench_json_u64(obj, "pages_verified", &checked) != 0 ||
	    bench_json_u64(obj, "mismatched", &r->mismatched) != 0) {
		snprintf(log, sizeof(log), "%s/guest.log", c->dst.dir);
		bench_tail(log, tail, sizeof(tail));
		snprintf(c->err, c->errlen, "destination postcopy-guest left no "
		    "summary with pages_verified/mismatched in %s: %s", path,
		    tail);
		rc = -EPROTO;
	} else {
		/* The daemon's digest check counts too. */
		if (r->digest_mismatched > r->mismatched)
			r->mismatched = r->digest_mismatched;
		r->verified = checked > r->mismatched ? checked - r->mismatched :
		    0;
	}
	if (obj != NULL && bench_json_num(obj, "wall_s", &d) == 0)
		r->guest_s = d;
	if (obj != NULL && bench_json_num(obj, "first_touch_us.p50", &d) == 0)
		r->touch_p50_us = d;
	if (obj != NULL && bench_json_num(obj, "first_touch_us.p99", &d) == 0)
		r->touch_p99_us = d;
	free(js);
	return rc;
}

static int
bench_run_inner(struct bench_ctx *c, struct bench_run *r)
{
	const struct bench_opts *o = c->o;
	Pcd__PrepareRequest prep = PCD__PREPARE_REQUEST__INIT;
	Pcd__MigrateRequest mig = PCD__MIGRATE_REQUEST__INIT;
	Pcd__TlsProfile tls = PCD__TLS_PROFILE__INIT;
	struct rpc_answer a = { 0 }, as = { 0 }, ad = { 0 };
	const Pcd__MigrationInfo *si, *di;
	struct bench_side *gone;
	char listen[128], tail[512], log[PATH_MAX + 16], ws[32];
	uint64_t t0, deadline;
	double t;
	int rc, status;

	if (o->progress)
		fprintf(stderr, "\r\033[K%s: starting two postcopyd and two "
		    "postcopy-guest...", bench_mode_name(c->mode));
	if ((rc = bench_side_init(c, &c->src, "source", "src")) != 0 ||
	    (rc = bench_side_init(c, &c->dst, "destination", "dst")) != 0 ||
	    (rc = bench_start_daemon(c, &c->dst)) != 0 ||
	    (rc = bench_start_daemon(c, &c->src)) != 0)
		return rc;

	tls.dir = (char *)o->cert_dir;
	tls.peer_name = (char *)"localhost";
	prep.id = (char *)BENCH_ID;
	prep.listen = (char *)"127.0.0.1:0";
	prep.tls = &tls;
	if ((rc = bench_call(c, &c->dst, RPC_M_PREPARE, &prep.base, &a)) != 0)
		return rc;
	snprintf(listen, sizeof(listen), "%s",
	    ((const Pcd__PrepareReply *)a.msg)->listen);
	rpc_answer_clear(&a);
	log_info("destination listens on %s", listen);

	if ((rc = bench_start_guest(c, &c->dst, true)) != 0 ||
	    (rc = bench_start_guest(c, &c->src, false)) != 0)
		return rc;

	if (o->progress)
		fprintf(stderr, "\r\033[K%s: waiting for the guests to attach "
		    "(the source fills its memory)...", bench_mode_name(c->mode));
	/* Both VMMs attached before Migrate, so that the time measured is
	 * the migration's, not the source guest's filling its memory. The
	 * source daemon knows the migration once its VMM attached. */
	deadline = now_ns() + (uint64_t)o->timeout_s * 1000000000ull;
	for (;;) {
		bool ready = false;

		rc = bench_status(c, &c->src, &as, &si);
		if (rc != 0 && rc != -ENOENT)
			return rc;
		if (rc == 0) {
			ready = si->vmm_attached;
			rpc_answer_clear(&as);
		}
		if ((rc = bench_status(c, &c->dst, &ad, &di)) != 0)
			return rc;
		ready = ready && di->vmm_attached;
		rpc_answer_clear(&ad);
		if (ready)
			break;
		gone = bench_exited(c->src.guest, &status) ? &c->src :
		    bench_exited(c->dst.guest, &status) ? &c->dst : NULL;
		if (gone != NULL) {
			gone->guest = 0;	/* reaped */
			snprintf(log, sizeof(log), "%s/guest.log", gone->dir);
			bench_tail(log, tail, sizeof(tail));
			snprintf(c->err, c->errlen, "the %s postcopy-guest "
			    "exited (%s) before attaching: %s", gone->name,
			    bench_wait_str(status, ws, sizeof(ws)), tail);
			return -ECHILD;
		}
		if (*o->stop) {
			snprintf(c->err, c->errlen, "interrupted");
			return -EINTR;
		}
		if (now_ns() > deadline) {
			snprintf(c->err, c->errlen, "the guests did not attach "
			    "within %u s (--timeout)", o->timeout_s);
			return -ETIMEDOUT;
		}
		usleep(BENCH_POLL_MS * 1000);
	}

	mig.id = (char *)BENCH_ID;
	mig.dest = listen;
	mig.tls = &tls;
	mig.bandwidth_bps = o->bandwidth_bps;
	mig.bulk_channels = o->bulk_channels;
	if (o->precopy) {
		mig.mode = PCD__MIGRATE_MODE__MIGRATE_MODE_PRECOPY;
		mig.rounds = o->rounds;
		mig.auto_switch = o->auto_switch;
		mig.max_downtime_ms = o->max_downtime_ms;
	}
	bench_cpu_begin(&c->cpu_src, c->src.daemon);
	bench_cpu_begin(&c->cpu_dst, c->dst.daemon);
	t0 = now_ns();
	if ((rc = bench_call(c, &c->src, RPC_M_MIGRATE, &mig.base, &a)) != 0)
		return rc;
	rpc_answer_clear(&a);

	/* Progress until both sides are done. */
	deadline = t0 + (uint64_t)o->timeout_s * 1000000000ull;
	for (;;) {
		bool done;

		if ((rc = bench_status(c, &c->src, &as, &si)) != 0)
			return rc;
		if ((rc = bench_status(c, &c->dst, &ad, &di)) != 0) {
			rpc_answer_clear(&as);
			return rc;
		}
		t = (double)(now_ns() - t0) / 1e9;
		bench_sample_add(r, t, di->bytes_transferred, di->pages_valid);
		bench_rss_sample(c->src.daemon, &r->rss_src_kib,
		    &r->anon_src_kib);
		bench_rss_sample(c->dst.daemon, &r->rss_dst_kib,
		    &r->anon_dst_kib);
		bench_cpu_sample(&c->cpu_src);
		bench_cpu_sample(&c->cpu_dst);
		if (o->progress)
			bench_progress(c, di, t);
		if (strcmp(si->state, "failed") == 0 ||
		    strcmp(di->state, "failed") == 0 ||
		    strcmp(si->state, "cancelled") == 0 ||
		    strcmp(di->state, "cancelled") == 0) {
			const Pcd__MigrationInfo *x =
			    strcmp(di->state, "failed") == 0 ? di : si;

			snprintf(c->err, c->errlen, "migration %s on the %s: %s",
			    x->state, x == di ? "destination" : "source",
			    x->errmsg);
			rpc_answer_clear(&as);
			rpc_answer_clear(&ad);
			rc = -EIO;
			break;
		}
		done = bench_state_final(si->state) &&
		    bench_state_final(di->state);
		if (done) {
			/* The source's own clock runs from Migrate to the
			 * destination's Complete: finer than our polling. */
			r->total_s = si->elapsed_ms > 0 && si->elapsed_ms <=
			    t * 1000 + 1000 ? (double)si->elapsed_ms / 1000 : t;
			bench_fill_stats(r, si, di);
		}
		rpc_answer_clear(&as);
		rpc_answer_clear(&ad);
		if (done)
			break;
		if (*o->stop) {
			snprintf(c->err, c->errlen, "interrupted");
			rc = -EINTR;
			break;
		}
		if (now_ns() > deadline) {
			snprintf(c->err, c->errlen, "migration not done after %u s "
			    "(--timeout)", o->timeout_s);
			rc = -ETIMEDOUT;
			break;
		}
		usleep(BENCH_POLL_MS * 1000);
	}
	if (o->progress)
		fputs("\r\033[K", stderr);
	/* Memory high-water marks while the daemons still run. */
	bench_rss_sample(c->src.daemon, &r->rss_src_kib, &r->anon_src_kib);
	bench_rss_sample(c->dst.daemon, &r->rss_dst_kib, &r->anon_dst_kib);
	r->hwm_src_kib = bench_proc_kib(c->src.daemon, "VmHWM");
	r->hwm_dst_kib = bench_proc_kib(c->dst.daemon, "VmHWM");
	bench_cpu_end(&c->cpu_src, &r->cpu_src);
	bench_cpu_end(&c->cpu_dst, &r->cpu_dst);
	if (rc != 0)
		return rc;
	r->throughput_gbps = r->total_s > 0 ? (double)r->bytes_transferred *
	    8 / r->total_s / 1e9 : 0;
	r->effective_gbps = r->total_s > 0 ? (double)o->size * 8 /
	    r->total_s / 1e9 : 0;

	/* The destination guest verifies every page and exits. */
	deadline = now_ns() + (uint64_t)o->timeout_s * 1000000000ull;
	while (!bench_exited(c->dst.guest, &status)) {
		if (*o->stop) {
			snprintf(c->err, c->errlen, "interrupted");
			return -EINTR;
		}
		if (now_ns() > deadline) {
			snprintf(c->err, c->errlen, "destination postcopy-guest "
			    "still runs %u s after the migration", o->timeout_s);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
	c->dst.guest = 0;
	if ((rc = bench_read_summary(c, r)) != 0)
		return rc;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(log, sizeof(log), "%s/guest.log", c->dst.dir);
		bench_tail(log, tail, sizeof(tail));
		snprintf(c->err, c->errlen, "destination postcopy-guest failed "
		    "(%s): %s", bench_wait_str(status, ws, sizeof(ws)), tail);
		return -EIO;
	}
	if (r->verified + r->mismatched != r->pages_total && r->pages_total) {
		snprintf(c->err, c->errlen, "guest verified %llu + %llu "
		    "mismatched pages of %llu", (unsigned long long)r->verified,
		    (unsigned long long)r->mismatched,
		    (unsigned long long)r->pages_total);
		return -EIO;
	}
	return 0;
}

int
bench_run_migration(const struct bench_opts *o, enum bench_mode mode,
    struct bench_run *r, char *err, size_t errlen)
{
	unsigned index = r->index;
	struct bench_ctx c = { .o = o, .mode = mode, .err = err,
	    .errlen = errlen };
	int rc;

	memset(r, 0, sizeof(*r));
	r->mode = mode;
	r->index = index;
	r->touch_p50_us = r->touch_p99_us = NAN;
	r->p50_us = r->p99_us = r->p999_us = r->max_us = NAN;
	r->local_p50_us = r->remote_p50_us = r->remote_p99_us = NAN;
	err[0] = '\0';
	if (snprintf(c.dir, sizeof(c.dir), "%s/run%u-%s", o->work_dir, index,
	    bench_mode_name(mode)) >= (int)sizeof(c.dir) ||
	    mkdir(c.dir, 0700) != 0) {
		snprintf(err, errlen, "cannot make %s: %s", c.dir,
		    strerror(errno));
		return -EIO;
	}
	rc = bench_run_inner(&c, r);
	if (o->progress)
		fputs("\r\033[K", stderr);
	rpc_client_close(c.src.rpc);
	rpc_client_close(c.dst.rpc);
	bench_reap(c.src.guest, 2000);
	bench_reap(c.dst.guest, 2000);
	bench_reap(c.src.daemon, 5000);
	bench_reap(c.dst.daemon, 5000);
	if (rc != 0 && err[0] == '\0')
		snprintf(err, errlen, "%s", strerror(-rc));
	return rc;
}
