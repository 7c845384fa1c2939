/* postcopy-bench - measure postcopyd against its baselines in one run.
 *
 * Every repeat measures the raw baselines (TLS stream, TLS round trip,
 * userfaultfd MINOR floor) and then the migrations (MINOR and/or COPY
 * mode) on this machine, back to back, so the ratios hold on a noisy
 * host. The report is a table for people or one JSON object (--json).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "log.h"
#include "util.h"

#define BENCH_CIPHER		"TLS_AES_256_GCM_SHA384"
#define BENCH_RTT_ROUNDS	2000
#define BENCH_UFFD_PAGES	8192
#define BENCH_UFFD_ROUNDS	4
#define BENCH_MAX_DOWNTIME_MS	10	/* --precopy: the downtime target */
/* The daemons' frames (daemon/wire.h): a 24-byte header, then up to 64
 * pages on the bulk channel; a page request is a header and a small
 * protobuf body, its answer a header and one page. */
#define BENCH_FRAME_HDR		24
#define BENCH_FRAME_PAGES	64
#define BENCH_REQUEST_BODY	16
/* The huge-page round trip (--hugepages): rounds that move about this much
 * (at least 4, at most 100). */
#define BENCH_HUGE_RTT_BYTES	(256ull << 20)
/* The page-touch baseline's memfd (at most the guest's size). */
#define BENCH_TOUCH_BYTES	(64ull << 20)

struct bench_base {
	double		tls_gbps;
	double		tls_s;
	double		rtt_us;
	double		rtt_p99_us;
	double		rtt_loaded_us;
	double		rtt_loaded_p99_us;
	double		uffd_us;
	double		uffd_p99_us;
	double		uffd_handler_us;
	/* The same floor while a raw TLS stream runs alongside: the
	 * conditions a migration's local faults meet. */
	double		uffd_loaded_us;
	double		uffd_loaded_p99_us;
	double		tls_tx_cpu_s;	/* raw stream's sender, CPU seconds */
	double		tls_rx_cpu_s;	/* and its receiver */
	/* --hugepages: a request answered by one huge page on raw TLS,
	 * quiet and while a stream runs (NAN without --hugepages). */
	double		tls_huge_us;
	double		tls_huge_p99_us;
	double		tls_huge_loaded_us;
	/* Reaching a 4 KiB page (bench_touch.c), per page. */
	double		touch_rw_us;	/* first read, writable mapping */
	double		touch_ro_us;	/* first read, read-only mapping */
	double		touch_again_us;	/* a page already touched */
	double		pwrite_page_us;
	double		pread_page_us;
	char		cipher[64];
};

struct bench {
	struct bench_opts	 o;
	bool			 baselines_only;
	size_t			 record;
	size_t			 rtt_request;
	size_t			 rtt_response;
	const char		*cipher;
	struct bench_base	*base;
	unsigned		 nbase;
	struct bench_run	*runs;
	unsigned		 nruns;
	unsigned		 failed;
	bool			 run_failed;	/* a migration: keep its logs */
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: postcopy-bench [options]\n"
"\n"
"Runs postcopy migrations between two local postcopyd daemons over TLS on\n"
"loopback, and the raw baselines they are judged against, in one run.\n"
"\n"
"Guest and workload:\n"
"  -s, --size SIZE          guest memory (default 1G; K, M, G suffixes)\n"
"  -w, --workload W         random|sequential|hotset (default random); the\n"
"                           threads guest's access pattern\n"
"  -t, --threads N          workload threads (default 2)\n"
"  -g, --guest G            threads|kvm (default threads); kvm: a vCPU reads\n"
"                           every page and checksums it\n"
"  -z, --zero-fraction F    share of all-zero pages, 0..1 (default 0.25)\n"
"      --seed N             guest content seed (default 1)\n"
"      --hugepages SIZE     2M or 1G: both guests on huge pages of that\n"
"                           size (hugetlbfs memfds; in copy mode the\n"
"                           destination's are anonymous, MAP_HUGETLB, 2M\n"
"                           only; exit 77 when fewer than 2 x --size of\n"
"                           them are free); adds the baseline tls_2m_us\n"
"                           (tls_1g_us): a request answered by one huge\n"
"                           page on raw TLS\n"
"Migration:\n"
"  -m, --mode M             minor|copy|both (default minor)\n"
"  -b, --bandwidth RATE     bulk stream limit in bytes/s, e.g. 500M (default\n"
"                           unlimited; demand pages are never limited)\n"
"      --bulk-channels N    N parallel bulk TLS channels, 1..16 (default 1)\n"
"      --demand-spin US     both daemons poll the urgent channel and the\n"
"                           userfaultfd US microseconds (1..1000) before\n"
"                           sleeping (demand_spin_us; default off)\n"
"      --demand-spin-always the daemons spin also while the load average is\n"
"                           above the CPU count (demand_spin_always)\n"
"      --demand-realtime Y  yes|no: the daemons' demand-path threads run\n"
"                           SCHED_FIFO (demand_realtime; default the\n"
"                           daemon's, no)\n"
"      --page-write HOW     pwrite|alias: how the destination writes\n"
"                           received pages of a memfd guest on base pages\n"
"                           (page_write; default the daemon's, pwrite)\n"
"      --precopy            precopy rounds before postcopy\n"
"      --rounds N           --precopy: switch to postcopy after N rounds\n"
"      --max-downtime MS    --precopy: converge when the rest takes under\n"
"                           MS at the measured bandwidth (default 10)\n"
"      --auto               --precopy: switch on a stall (a round under 10%%\n"
"                           progress); otherwise only when it converges\n"
"      --dirty-rate R       the source guest writes R pages/s until the pause\n"
"  -r, --repeat N           run everything N times, report medians and range\n"
"      --timeout SEC        give up on one migration after SEC (default 600)\n"
"      --tls-dir DIR        certificates (ca-cert.pem, server-cert.pem, ...)\n"
"                           instead of generating them in a temp dir\n"
"      --bindir DIR         where postcopyd and postcopy-guest are\n"
"                           (default: next to this program, then $PATH)\n"
"Baselines:\n"
"      --baselines-only     measure only the baselines\n"
"      --cipher SUITE       TLS 1.3 suite (default %s, the daemon's)\n"
"      --record-size N      payload bytes per frame on the raw stream (default\n"
"                           %d: a bulk frame of 64 pages, as the daemon)\n"
"Output:\n"
"  -j, --json               one JSON object on stdout\n"
"  -p, --plot FILE          fault-latency CDF and throughput over time,\n"
"                           drawn by gnuplot (FILE.svg or FILE.png)\n"
"      --keep               keep the work dir (daemon and guest logs; kept\n"
"                           anyway when a run fails)\n"
"  -v, --verbose            say what is being started; twice: the daemons\n"
"                           log at debug level (the switchover timeline;\n"
"                           with --keep)\n"
"  -h, --help               this help\n",
	    BENCH_CIPHER, BENCH_FRAME_PAGES * 4096);
}

/* --- statistics -------------------------------------------------------- */

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
bench_quantile(double *v, size_t n, double q)
{
	double pos, frac;
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	pos = q * (double)(n - 1);
	i = (size_t)pos;
	frac = pos - (double)i;
	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (v[i + 1] - v[i]) * frac;
}

/* Median, min and max of a field across values; false if there are none. */
struct bench_range {
	double	med, min, max;
	size_t	n;
};

static struct bench_range
bench_range_of(const double *vals, size_t n)
{
	struct bench_range r = { NAN, NAN, NAN, 0 };
	double *tmp;
	size_t i, k = 0;

	if (n == 0 || (tmp = calloc(n, sizeof(*tmp))) == NULL)
		return r;
	for (i = 0; i < n; i++)
		if (!isnan(vals[i]))
			tmp[k++] = vals[i];
	if (k > 0) {
		r.med = bench_quantile(tmp, k, 0.5);
		r.min = tmp[0];
		r.max = tmp[k - 1];
		r.n = k;
	}
	free(tmp);
	return r;
}

const char *
bench_mode_name(enum bench_mode m)
{
	return m == BENCH_COPY ? "copy" : "minor";
}

/* --- the work dir ------------------------------------------------------ */

static int
bench_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void
bench_rm_rf(const char *dir)
{
	nftw(dir, bench_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Looks for a tool in bin_dir, its siblings of a build tree, then $PATH. */
static int
bench_find_tool(const struct bench_opts *o, const char *name, char *out,
    size_t outlen)
{
	static const char *const rel[] = { "", "../daemon/", "../client/",
	    "../sbin/", "../bin/" };
	const char *path = getenv("PATH");
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rel); i++) {
		if (snprintf(out, outlen, "%s/%s%s", o->bin_dir, rel[i],
		    name) < (int)outlen && access(out, X_OK) == 0)
			return 0;
	}
	while (path != NULL && *path != '\0') {
		size_t len = strcspn(path, ":");

		if (snprintf(out, outlen, "%.*s/%s", (int)len, path, name) <
		    (int)outlen && len > 0 && access(out, X_OK) == 0)
			return 0;
		path += len;
		if (*path == ':')
			path++;
	}
	out[0] = '\0';
	return -ENOENT;
}

static const char *
bench_size_str(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, d == floor(d) ? "%.0f %s" : "%.2f %s", d, unit[u]);
	return buf;
}

/* Certificates into o->cert_dir: the project's postcopy-gencerts when it is
 * found (the same script users and tests run), else made here in C. */
static int
bench_make_certs(const struct bench_opts *o, char *err, size_t errlen)
{
	char tool[PATH_MAX];
	pid_t pid;
	int status;

	if (bench_find_tool(o, "postcopy-gencerts", tool, sizeof(tool)) == 0) {
		if ((pid = fork()) < 0)
			return -errno;
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0)
				dup2(null, STDOUT_FILENO);
			execl(tool, tool, o->cert_dir, "localhost", (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			return 0;
		log_warnx("%s %s failed; making the certificates in C", tool,
		    o->cert_dir);
	}
	return bench_certs_generate(o->cert_dir, err, errlen);
}

/* --- baselines --------------------------------------------------------- */

struct bench_uffd_job {
	uint64_t			pages;
	struct bench_uffd_result	r;
	char				err[512];
};

static int
bench_uffd_alongside(void *arg)
{
	struct bench_uffd_job *j = arg;

	return bench_uffd_minor(j->pages, BENCH_UFFD_ROUNDS, &j->r, j->err,
	    sizeof(j->err));
}

/* "2m" or "1g": the huge page size in the baseline's JSON name. */
static const char *
bench_huge_name(const struct bench_opts *o)
{
	return o->huge == 1ull << 30 ? "1g" : "2m";
}

/* --hugepages: the floor of a huge-page demand fault, a small request
 * answered by one huge page on raw TLS (quiet and loaded). */
static int
bench_baseline_huge(struct bench *b, struct bench_base *out)
{
	uint64_t rounds = BENCH_HUGE_RTT_BYTES / (b->o.huge ? b->o.huge : 1);
	struct bench_tls_opts to = {
		.tls_dir = b->o.cert_dir,
		.ciphersuite = b->cipher,
		.bytes = 16 * (uint64_t)b->record,	/* not reported */
		.record = b->record,
		.frame_hdr = BENCH_FRAME_HDR,
		.rtt_request = b->rtt_request,
		.rtt_response = b->o.huge,
		.rtt_rounds = rounds < 4 ? 4 : rounds > 100 ? 100 :
		    (unsigned)rounds,
		.rtt_warmup = 2,
	};
	struct bench_tls_result tr;
	char err[512];
	int rc;

	out->tls_huge_us = out->tls_huge_p99_us = NAN;
	out->tls_huge_loaded_us = NAN;
	if (b->o.huge == 0)
		return 0;
	if (b->o.progress)
		fprintf(stderr, "\r\033[Kbaselines: raw TLS round trip of one "
		    "huge page...");
	if ((rc = bench_tls_run(&to, &tr, err, sizeof(err))) != 0) {
		log_warnx("%s", err);
		return rc;
	}
	out->tls_huge_us = tr.rtt_p50_us;
	out->tls_huge_p99_us = tr.rtt_p99_us;
	out->tls_huge_loaded_us = tr.rtt_loaded_p50_us;
	return 0;
}

static int
bench_baselines(struct bench *b, struct bench_base *out)
{
	struct bench_uffd_job loaded = { 0 };
	struct bench_tls_opts to = {
		.tls_dir = b->o.cert_dir,
		.ciphersuite = b->cipher,
		.bytes = b->o.size,
		.record = b->record,
		.frame_hdr = BENCH_FRAME_HDR,
		.rtt_request = b->rtt_request,
		.rtt_response = b->rtt_response,
		.rtt_rounds = BENCH_RTT_ROUNDS,
		.alongside = bench_uffd_alongside,
		.alongside_arg = &loaded,
	};
	struct bench_tls_result tr;
	struct bench_uffd_result ur;
	struct bench_touch_result tt;
	uint64_t pages = b->o.size / b->o.page_size;
	char err[512], sz[32];
	int rc;

	if (pages > BENCH_UFFD_PAGES)
		pages = BENCH_UFFD_PAGES;
	loaded.pages = pages;
	if (b->o.progress)
		fprintf(stderr, "\r\033[Kbaselines: raw TLS stream of %s...",
		    bench_size_str(b->o.size, sz, sizeof(sz)));
	if ((rc = bench_tls_run(&to, &tr, err, sizeof(err))) != 0) {
		log_warnx("%s", err);
		return rc;
	}
	if (tr.alongside_rc != 0) {
		log_warnx("%s", loaded.err);
		return tr.alongside_rc;
	}
	if (b->o.progress)
		fprintf(stderr, "\r\033[Kbaselines: userfaultfd MINOR floor...");
	if ((rc = bench_uffd_minor(pages, BENCH_UFFD_ROUNDS, &ur, err,
	    sizeof(err))) != 0) {
		log_warnx("%s", err);
		return rc;
	}
	if (b->o.progress)
		fprintf(stderr, "\r\033[Kbaselines: reaching a page...");
	if ((rc = bench_touch(b->o.size < BENCH_TOUCH_BYTES ? b->o.size :
	    BENCH_TOUCH_BYTES, &tt, err, sizeof(err))) != 0) {
		log_warnx("%s", err);
		return rc;
	}
	if ((rc = bench_baseline_huge(b, out)) != 0)
		return rc;
	if (b->o.progress)
		fprintf(stderr, "\r\033[K");
	out->tls_gbps = tr.stream_gbps;
	out->tls_s = tr.stream_s;
	out->rtt_us = tr.rtt_p50_us;
	out->rtt_p99_us = tr.rtt_p99_us;
	out->rtt_loaded_us = tr.rtt_loaded_p50_us;
	out->rtt_loaded_p99_us = tr.rtt_loaded_p99_us;
	out->uffd_us = ur.fault_p50_us;
	out->uffd_p99_us = ur.fault_p99_us;
	out->uffd_handler_us = ur.handler_p50_us;
	out->uffd_loaded_us = loaded.r.fault_p50_us;
	out->uffd_loaded_p99_us = loaded.r.fault_p99_us;
	out->touch_rw_us = tt.first_rw_us;
	out->touch_ro_us = tt.first_ro_us;
	out->touch_again_us = tt.again_rw_us;
	out->pwrite_page_us = tt.pwrite_us;
	out->pread_page_us = tt.pread_us;
	out->tls_tx_cpu_s = tr.stream_tx_cpu_s;
	out->tls_rx_cpu_s = tr.stream_rx_cpu_s;
	snprintf(out->cipher, sizeof(out->cipher), "%s", tr.cipher);
	return 0;
}

/* --- report ------------------------------------------------------------ */

#define BENCH_FIELD(name)	offsetof(struct bench_run, name)

static struct bench_range
bench_run_range(const struct bench *b, enum bench_mode m, size_t off)
{
	double vals[256];
	size_t n = 0;
	unsigned i;

	for (i = 0; i < b->nruns && n < ARRAY_SIZE(vals); i++)
		if (b->runs[i].mode == m)
			vals[n++] = *(const double *)((const char *)&b->runs[i] +
			    off);
	return bench_range_of(vals, n);
}

#define BENCH_BASE_FIELD(name)	offsetof(struct bench_base, name)

static struct bench_range
bench_base_range(const struct bench *b, size_t off)
{
	double vals[256];
	size_t n = 0;
	unsigned i;

	for (i = 0; i < b->nbase && n < ARRAY_SIZE(vals); i++)
		vals[n++] = *(const double *)((const char *)&b->base[i] + off);
	return bench_range_of(vals, n);
}

static void
bench_jnum(FILE *f, const char *name, double v, const char *sep)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "\"%s\":null%s", name, sep);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "\"%s\":%.0f%s", name, v, sep);
	else
		fprintf(f, "\"%s\":%.6g%s", name, v, sep);
}

static double
bench_ratio(double a, double b)
{
	if (isnan(a) || isnan(b) || b <= 0)
		return NAN;
	return a / b;
}

/* Each ratio compares against the baseline measured under the same
 * conditions as the migration: demand faults and local faults meet a
 * busy bulk stream, so the loaded round trip and the loaded userfaultfd
 * floor (idle vCPUs wake slowly here: 112-140 us idle RTT against 26 us
 * busy). The idle ones are kept beside them. */
struct bench_ratios {
	double	thr_vs_tls, remote_vs_rtt, local_vs_floor, minor_vs_copy;
	double	remote_vs_rtt_idle, local_vs_floor_idle;
	double	dst_cpu_vs_tls_rx;	/* CPU per GiB, destination/receiver */
	/* --hugepages: a remote fault waits for its whole huge page */
	double	huge_p50_vs_tls, huge_p99_vs_tls, huge_p50_vs_tls_loaded;
	enum bench_mode main_mode;
};

static double
bench_run_cpu_dst(const struct bench_run *r)
{
	return r->cpu_dst.total_s;
}

static struct bench_ratios
bench_ratios(const struct bench *b)
{
	struct bench_ratios q = { NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
	    NAN, NAN, BENCH_MINOR };
	double cpu[256], rx, huge;
	size_t n = 0;
	enum bench_mode m = (b->o.modes & BENCH_MINOR) ? BENCH_MINOR : BENCH_COPY;
	struct bench_range thr, rem, loc, copy;

	q.main_mode = m;
	thr = bench_run_range(b, m, BENCH_FIELD(throughput_gbps));
	rem = bench_run_range(b, m, BENCH_FIELD(remote_p50_us));
	loc = bench_run_range(b, m, BENCH_FIELD(local_p50_us));
	q.thr_vs_tls = bench_ratio(thr.med,
	    bench_base_range(b, BENCH_BASE_FIELD(tls_gbps)).med);
	q.remote_vs_rtt = bench_ratio(rem.med,
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_loaded_us)).med);
	q.remote_vs_rtt_idle = bench_ratio(rem.med,
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_us)).med);
	q.local_vs_floor = bench_ratio(loc.med,
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_loaded_us)).med);
	q.local_vs_floor_idle = bench_ratio(loc.med,
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_us)).med);
	huge = bench_base_range(b, BENCH_BASE_FIELD(tls_huge_us)).med;
	q.huge_p50_vs_tls = bench_ratio(rem.med, huge);
	q.huge_p99_vs_tls = bench_ratio(bench_run_range(b, m,
	    BENCH_FIELD(remote_p99_us)).med, huge);
	q.huge_p50_vs_tls_loaded = bench_ratio(rem.med, bench_base_range(b,
	    BENCH_BASE_FIELD(tls_huge_loaded_us)).med);
	/* The raw receiver and the destination both took in the guest's
	 * size, so their CPU seconds compare per GiB directly. */
	for (unsigned i = 0; i < b->nruns && n < ARRAY_SIZE(cpu); i++)
		if (b->runs[i].mode == m && b->runs[i].cpu_dst.total_s > 0)
			cpu[n++] = bench_run_cpu_dst(&b->runs[i]);
	rx = bench_base_range(b, BENCH_BASE_FIELD(tls_rx_cpu_s)).med;
	if (n > 0)
		q.dst_cpu_vs_tls_rx = bench_ratio(bench_range_of(cpu, n).med, rx);
	if ((b->o.modes & BENCH_MINOR) && (b->o.modes & BENCH_COPY)) {
		copy = bench_run_range(b, BENCH_COPY,
		    BENCH_FIELD(throughput_gbps));
		q.minor_vs_copy = bench_ratio(thr.med, copy.med);
	}
	return q;
}

static void
bench_json_range(FILE *f, const char *name, struct bench_range r,
    const char *sep)
{
	fprintf(f, "\"%s\":{", name);
	bench_jnum(f, "median", r.med, ",");
	bench_jnum(f, "min", r.min, ",");
	bench_jnum(f, "max", r.max, "}");
	fputs(sep, f);
}

/* "cpu_s": each daemon's CPU seconds from Migrate to completion, per GiB
 * of guest memory, and by thread name (sampled, a lower bound); with rt,
 * the names of the threads that ran real-time (demand_realtime). */
static void
bench_json_cpu_side(FILE *f, const char *name, const struct bench_cpu *c,
    bool rt, const char *sep)
{
	bool first = true;

	fprintf(f, rt ? "\"%s\":[" : "\"%s\":{", name);
	for (unsigned k = 0; k < c->nthreads; k++) {
		char key[BENCH_CPU_NAME + 8];

		if (rt && !c->threads[k].rt)
			continue;
		/* Thread names are the daemon's own: keep them JSON-safe. */
		snprintf(key, sizeof(key), "%s", c->threads[k].name);
		for (char *p = key; *p != '\0'; p++)
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
				*p = '_';
		if (rt)
			fprintf(f, "%s\"%s\"", first ? "" : ",", key);
		else
			bench_jnum(f, key, c->threads[k].s, "");
		if (!rt && k + 1 < c->nthreads)
			fputc(',', f);
		first = false;
	}
	fprintf(f, rt ? "]%s" : "}%s", sep);
}

static void
bench_json_cpu(FILE *f, const struct bench_run *r, uint64_t guest_bytes)
{
	double gib = (double)guest_bytes / (1 << 30);

	fputs("\"cpu_s\":{", f);
	bench_jnum(f, "source", r->cpu_src.total_s, ",");
	bench_jnum(f, "destination", r->cpu_dst.total_s, ",");
	bench_jnum(f, "source_per_gib", gib > 0 ? r->cpu_src.total_s / gib :
	    NAN, ",");
	bench_jnum(f, "destination_per_gib", gib > 0 ? r->cpu_dst.total_s /
	    gib : NAN, ",");
	fputs("\"threads\":{", f);
	bench_json_cpu_side(f, "source", &r->cpu_src, false, ",");
	bench_json_cpu_side(f, "destination", &r->cpu_dst, false, "");
	fputs("},\"realtime\":{", f);
	bench_json_cpu_side(f, "source", &r->cpu_src, true, ",");
	bench_json_cpu_side(f, "destination", &r->cpu_dst, true, "");
	fputs("}},", f);
}

/* The machine, so a reader can judge the numbers: CPUs, kernel and the
 * load average when the report was written. */
static void
bench_json_host(FILE *f)
{
	struct utsname u;
	double load[3] = { NAN, NAN, NAN };

	if (uname(&u) != 0)
		snprintf(u.release, sizeof(u.release), "?");
	getloadavg(load, 3);
	fprintf(f, "\"host\":{\"cpus\":%ld,\"kernel\":\"%s\",",
	    sysconf(_SC_NPROCESSORS_ONLN), u.release);
	bench_jnum(f, "loadavg_1m", load[0], ",");
	bench_jnum(f, "loadavg_5m", load[1], "},");
}

/* --hugepages: baselines.tls_2m_us (tls_1g_us), its p99 and its loaded
 * median. */
static void
bench_json_huge_base(const struct bench *b, FILE *f)
{
	const char *h = bench_huge_name(&b->o);
	char key[64];

	if (b->o.huge == 0)
		return;
	snprintf(key, sizeof(key), "tls_%s_us", h);
	bench_jnum(f, key, bench_base_range(b,
	    BENCH_BASE_FIELD(tls_huge_us)).med, ",");
	snprintf(key, sizeof(key), "tls_%s_p99_us", h);
	bench_jnum(f, key, bench_base_range(b,
	    BENCH_BASE_FIELD(tls_huge_p99_us)).med, ",");
	snprintf(key, sizeof(key), "tls_%s_loaded_us", h);
	bench_jnum(f, key, bench_base_range(b,
	    BENCH_BASE_FIELD(tls_huge_loaded_us)).med, ",");
}

/* --hugepages: the huge-page demand fault against the raw TLS round trip
 * of one huge page (targets: p50 <= 1.5, p99 <= 3). */
static void
bench_json_huge_ratios(const struct bench *b, const struct bench_ratios *q,
    FILE *f)
{
	const char *h = bench_huge_name(&b->o);
	char key[64];

	if (b->o.huge == 0)
		return;
	snprintf(key, sizeof(key), "remote_p50_vs_tls_%s", h);
	bench_jnum(f, key, q->huge_p50_vs_tls, ",");
	snprintf(key, sizeof(key), "remote_p99_vs_tls_%s", h);
	bench_jnum(f, key, q->huge_p99_vs_tls, ",");
	snprintf(key, sizeof(key), "remote_p50_vs_tls_%s_loaded", h);
	bench_jnum(f, key, q->huge_p50_vs_tls_loaded, ",");
}

static void
bench_report_json(const struct bench *b, FILE *f)
{
	const struct bench_opts *o = &b->o;
	struct bench_ratios q = bench_ratios(b);
	static const struct { const char *name; size_t off; } sum[] = {
		{ "total_s", BENCH_FIELD(total_s) },
		{ "switchover_ms", BENCH_FIELD(switchover_ms) },
		{ "throughput_gbps", BENCH_FIELD(throughput_gbps) },
		{ "remote_p50_us", BENCH_FIELD(remote_p50_us) },
		{ "local_p50_us", BENCH_FIELD(local_p50_us) },
		{ "p50_us", BENCH_FIELD(p50_us) },
		{ "p99_us", BENCH_FIELD(p99_us) },
		{ "p999_us", BENCH_FIELD(p999_us) },
	};
	unsigned i, k, m;
	const char *modes[2] = { NULL, NULL };

	fprintf(f, "{\"size_bytes\":%llu,\"page_size\":%llu,"
	    "\"hugepage_bytes\":%llu,\"mode\":\"%s\","
	    "\"workload\":\"%s\",\"guest\":\"%s\",\"threads\":%u,",
	    (unsigned long long)o->size, (unsigned long long)o->page_size,
	    (unsigned long long)o->huge,
	    o->modes == (BENCH_MINOR | BENCH_COPY) ? "both" :
	    o->modes == BENCH_COPY ? "copy" : "minor", o->workload, o->guest,
	    o->threads);
	bench_json_host(f);
	bench_jnum(f, "zero_fraction", o->zero_fraction, ",");
	bench_jnum(f, "bandwidth_bps", (double)o->bandwidth_bps, ",");
	if (o->precopy)
		fprintf(f, "\"max_downtime_ms\":%u,", o->max_downtime_ms);
	fprintf(f, "\"bulk_channels\":%u,\"demand_spin_us\":%u,"
	    "\"demand_spin_always\":%s,\"demand_realtime\":%s,"
	    "\"page_write\":\"%s\",",
	    o->bulk_channels ? o->bulk_channels : 1, o->demand_spin_us,
	    o->demand_spin_always ? "true" : "false",
	    o->demand_realtime != NULL && strcmp(o->demand_realtime, "yes") == 0 ?
	    "true" : "false",
	    o->page_write != NULL ? o->page_write : "pwrite");
	fprintf(f, "\"repeat\":%u,\"runs\":[", o->repeat);
	for (i = 0; i < b->nruns; i++) {
		const struct bench_run *r = &b->runs[i];

		fprintf(f, "%s{\"mode\":\"%s\",\"repeat\":%u,", i ? "," : "",
		    bench_mode_name(r->mode), r->index);
		bench_jnum(f, "total_s", r->total_s, ",");
		bench_jnum(f, "switchover_ms", r->switchover_ms, ",");
		bench_jnum(f, "downtime_ms", r->switchover_ms, ",");
		if (o->precopy)
			fprintf(f, "\"precopy\":{\"rounds\":%u,\"pages_sent\":"
			    "%llu,\"pages_redirtied\":%llu,\"final_dirty\":"
			    "%llu},", r->pc_rounds,
			    (unsigned long long)r->pc_pages_sent,
			    (unsigned long long)r->pc_redirtied,
			    (unsigned long long)r->pc_final_dirty);
		bench_jnum(f, "throughput_gbps", r->throughput_gbps, ",");
		bench_jnum(f, "effective_gbps", r->effective_gbps, ",");
		bench_jnum(f, "guest_s", r->guest_s, ",");
		fputs("\"guest_first_touch_us\":{", f);
		bench_jnum(f, "p50", r->touch_p50_us, ",");
		bench_jnum(f, "p99", r->touch_p99_us, "},");
		fprintf(f, "\"bytes_transferred\":%llu,",
		    (unsigned long long)r->bytes_transferred);
		fprintf(f, "\"pages\":{\"total\":%llu,\"zero\":%llu,"
		    "\"sent_bulk\":%llu,\"sent_urgent\":%llu,\"verified\":%llu,"
		    "\"mismatched\":%llu,\"digest_verified\":%llu,"
		    "\"digest_mismatched\":%llu,\"requests\":%llu},",
		    (unsigned long long)r->pages_total,
		    (unsigned long long)r->pages_zero,
		    (unsigned long long)r->sent_bulk,
		    (unsigned long long)r->sent_urgent,
		    (unsigned long long)r->verified,
		    (unsigned long long)r->mismatched,
		    (unsigned long long)r->digest_verified,
		    (unsigned long long)r->digest_mismatched,
		    (unsigned long long)r->page_requests);
		fprintf(f, "\"faults\":{\"remote\":%llu,\"local\":%llu,",
		    (unsigned long long)r->faults_remote,
		    (unsigned long long)r->faults_local);
		bench_jnum(f, "p50_us", r->p50_us, ",");
		bench_jnum(f, "p99_us", r->p99_us, ",");
		bench_jnum(f, "p999_us", r->p999_us, ",");
		bench_jnum(f, "max_us", r->max_us, ",");
		bench_jnum(f, "remote_p50_us", r->remote_p50_us, ",");
		bench_jnum(f, "remote_p99_us", r->remote_p99_us, ",");
		bench_jnum(f, "local_p50_us", r->local_p50_us, ",");
		fputs("\"latency_hist_us\":[", f);
		for (k = 0; k < MIG_LAT_BUCKETS; k++)
			fprintf(f, "%s%llu", k ? "," : "",
			    (unsigned long long)r->lat_hist[k]);
		fprintf(f, "]},\"daemon_rss_kib\":{\"source\":%llu,"
		    "\"destination\":%llu},\"daemon_anon_kib\":{"
		    "\"source\":%llu,\"destination\":%llu},"
		    "\"daemon_vmhwm_kib\":{"
		    "\"source\":%llu,\"destination\":%llu},",
		    (unsigned long long)r->rss_src_kib,
		    (unsigned long long)r->rss_dst_kib,
		    (unsigned long long)r->anon_src_kib,
		    (unsigned long long)r->anon_dst_kib,
		    (unsigned long long)r->hwm_src_kib,
		    (unsigned long long)r->hwm_dst_kib);
		bench_json_cpu(f, r, o->size);
		/* The target: 16 MiB + 3 bits per guest page. */
		bench_jnum(f, "rss_budget_kib", 16384 +
		    ceil((double)r->pages_total * 3 / 8 / 1024), "}");
	}
	fputs("],", f);

	/* Medians and ranges per mode. */
	if (o->modes & BENCH_MINOR)
		modes[0] = "minor";
	if (o->modes & BENCH_COPY)
		modes[modes[0] ? 1 : 0] = "copy";
	fputs("\"summary\":{", f);
	for (m = 0; m < 2 && modes[m] != NULL && !b->baselines_only; m++) {
		enum bench_mode bm = strcmp(modes[m], "copy") == 0 ?
		    BENCH_COPY : BENCH_MINOR;

		fprintf(f, "%s\"%s\":{", m ? "," : "", modes[m]);
		for (k = 0; k < ARRAY_SIZE(sum); k++)
			bench_json_range(f, sum[k].name,
			    bench_run_range(b, bm, sum[k].off),
			    k + 1 < ARRAY_SIZE(sum) ? "," : "");
		fputs("}", f);
	}
	fputs("},\"baselines\":{", f);
	bench_jnum(f, "tls_raw_gbps",
	    bench_base_range(b, BENCH_BASE_FIELD(tls_gbps)).med, ",");
	bench_jnum(f, "tls_rtt_us",
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_us)).med, ",");
	bench_jnum(f, "uffd_floor_us",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_us)).med, ",");
	bench_jnum(f, "tls_rtt_p99_us",
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_p99_us)).med, ",");
	bench_jnum(f, "tls_rtt_loaded_us",
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_loaded_us)).med, ",");
	bench_jnum(f, "tls_rtt_loaded_p99_us",
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_loaded_p99_us)).med, ",");
	bench_jnum(f, "uffd_floor_p99_us",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_p99_us)).med, ",");
	bench_jnum(f, "uffd_handler_us",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_handler_us)).med, ",");
	bench_jnum(f, "uffd_floor_loaded_us",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_loaded_us)).med, ",");
	bench_jnum(f, "uffd_floor_loaded_p99_us",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_loaded_p99_us)).med, ",");
	bench_jnum(f, "tls_tx_cpu_s",
	    bench_base_range(b, BENCH_BASE_FIELD(tls_tx_cpu_s)).med, ",");
	bench_jnum(f, "tls_rx_cpu_s",
	    bench_base_range(b, BENCH_BASE_FIELD(tls_rx_cpu_s)).med, ",");
	bench_jnum(f, "page_touch_rw_us",
	    bench_base_range(b, BENCH_BASE_FIELD(touch_rw_us)).med, ",");
	bench_jnum(f, "page_touch_ro_us",
	    bench_base_range(b, BENCH_BASE_FIELD(touch_ro_us)).med, ",");
	bench_jnum(f, "page_touch_again_us",
	    bench_base_range(b, BENCH_BASE_FIELD(touch_again_us)).med, ",");
	bench_jnum(f, "page_pwrite_us",
	    bench_base_range(b, BENCH_BASE_FIELD(pwrite_page_us)).med, ",");
	bench_jnum(f, "page_pread_us",
	    bench_base_range(b, BENCH_BASE_FIELD(pread_page_us)).med, ",");
	bench_jnum(f, "tls_rx_cpu_s_per_gib",
	    bench_base_range(b, BENCH_BASE_FIELD(tls_rx_cpu_s)).med /
	    ((double)o->size / (1 << 30)), ",");
	fprintf(f, "\"cipher\":\"%s\",\"record_bytes\":%zu,"
	    "\"rtt_request_bytes\":%zu,\"rtt_response_bytes\":%zu,",
	    b->nbase ? b->base[0].cipher : "", b->record, b->rtt_request,
	    b->rtt_response);
	bench_json_range(f, "tls_raw_gbps_range",
	    bench_base_range(b, BENCH_BASE_FIELD(tls_gbps)), ",");
	bench_json_range(f, "tls_rtt_us_range",
	    bench_base_range(b, BENCH_BASE_FIELD(rtt_us)), ",");
	bench_json_huge_base(b, f);
	bench_json_range(f, "uffd_floor_us_range",
	    bench_base_range(b, BENCH_BASE_FIELD(uffd_us)), "");
	fputs("},\"ratios\":{", f);
	bench_json_huge_ratios(b, &q, f);
	bench_jnum(f, "throughput_vs_tls_raw", q.thr_vs_tls, ",");
	bench_jnum(f, "remote_p50_vs_tls_rtt", q.remote_vs_rtt, ",");
	bench_jnum(f, "local_p50_vs_uffd_floor", q.local_vs_floor, ",");
	bench_jnum(f, "minor_vs_copy_throughput", q.minor_vs_copy, ",");
	bench_jnum(f, "remote_p50_vs_tls_rtt_idle", q.remote_vs_rtt_idle, ",");
	bench_jnum(f, "local_p50_vs_uffd_floor_idle", q.local_vs_floor_idle,
	    ",");
	bench_jnum(f, "dst_cpu_per_gib_vs_tls_rx", q.dst_cpu_vs_tls_rx, "");
	fprintf(f, "},\"ok\":%s}\n", b->failed ? "false" : "true");
}

static void
bench_report_text(const struct bench *b, FILE *f)
{
	char sz[32];
	const struct bench_opts *o = &b->o;
	struct bench_ratios q = bench_ratios(b);
	struct bench_range tls, rtt, rtl, uffd, ufl, rx;
	double load[1];
	unsigned i;

	tls = bench_base_range(b, BENCH_BASE_FIELD(tls_gbps));
	rtt = bench_base_range(b, BENCH_BASE_FIELD(rtt_us));
	rtl = bench_base_range(b, BENCH_BASE_FIELD(rtt_loaded_us));
	uffd = bench_base_range(b, BENCH_BASE_FIELD(uffd_us));
	ufl = bench_base_range(b, BENCH_BASE_FIELD(uffd_loaded_us));
	rx = bench_base_range(b, BENCH_BASE_FIELD(tls_rx_cpu_s));
	fprintf(f, "postcopy-bench: %s guest, %llu-byte pages, %s guest, "
	    "%s workload, %u threads, %.0f%% zero pages, %u repeat%s\n",
	    bench_size_str(o->size, sz, sizeof(sz)),
	    (unsigned long long)(o->huge != 0 ? o->huge : o->page_size),
	    o->guest, o->workload, o->threads, o->zero_fraction * 100,
	    o->repeat, o->repeat == 1 ? "" : "s");
	if (getloadavg(load, 1) == 1)
		fprintf(f, "host: %ld CPUs, load average %.2f\n",
		    sysconf(_SC_NPROCESSORS_ONLN), load[0]);
	fprintf(f, "\nbaselines (median [min..max]):\n");
	fprintf(f, "  tls_raw_gbps   %8.2f [%.2f..%.2f] Gbit/s  raw TLS 1.3 "
	    "stream, %s, %zu-byte writes\n", tls.med, tls.min, tls.max,
	    b->nbase ? b->base[0].cipher : "?", b->record);
	fprintf(f, "  tls_rtt_us     %8.1f [%.1f..%.1f] us      %zu-byte "
	    "request, %zu-byte response\n", rtt.med, rtt.min, rtt.max,
	    b->rtt_request, b->rtt_response);
	fprintf(f, "  (loaded)       %8.1f [%.1f..%.1f] us      the same while "
	    "a raw TLS stream runs\n", rtl.med, rtl.min, rtl.max);
	fprintf(f, "  uffd_floor_us  %8.2f [%.2f..%.2f] us      MINOR fault + "
	    "UFFDIO_CONTINUE, page in page cache\n", uffd.med, uffd.min,
	    uffd.max);
	fprintf(f, "  (loaded)       %8.2f [%.2f..%.2f] us      the same while "
	    "a raw TLS stream runs\n", ufl.med, ufl.min, ufl.max);
	fprintf(f, "  tls_rx_cpu_s   %8.3f [%.3f..%.3f] s       the raw stream "
	    "receiver's CPU\n", rx.med, rx.min, rx.max);
	fprintf(f, "  page_touch_us  %8.2f / %.2f / %.2f us first touch of a "
	    "4 KiB page: writable / read-only mapping / again\n",
	    bench_base_range(b, BENCH_BASE_FIELD(touch_rw_us)).med,
	    bench_base_range(b, BENCH_BASE_FIELD(touch_ro_us)).med,
	    bench_base_range(b, BENCH_BASE_FIELD(touch_again_us)).med);
	fprintf(f, "  page_pwrite_us %8.2f / %.2f us        pwrite / pread per "
	    "page, 64-page runs\n",
	    bench_base_range(b, BENCH_BASE_FIELD(pwrite_page_us)).med,
	    bench_base_range(b, BENCH_BASE_FIELD(pread_page_us)).med);
	if (o->huge != 0) {
		struct bench_range th = bench_base_range(b,
		    BENCH_BASE_FIELD(tls_huge_us));

		fprintf(f, "  tls_%s_us      %8.1f [%.1f..%.1f] us      %zu-byte "
		    "request, one huge page (%s) back\n", bench_huge_name(o),
		    th.med, th.min, th.max, b->rtt_request,
		    bench_size_str(o->huge, sz, sizeof(sz)));
	}
	if (b->baselines_only)
		return;

	fprintf(f, "\n%-5s %3s %8s %9s %7s %8s %8s %7s %7s %7s %8s %9s %5s "
	    "%8s %8s\n", "mode", "#", "total_s", "switch_ms", "Gbit/s",
	    "remote", "local", "p50_us", "p99_us", "p999_us", "max_us",
	    "verified", "bad", "rss_src", "rss_dst");
	for (i = 0; i < b->nruns; i++) {
		const struct bench_run *r = &b->runs[i];

		fprintf(f, "%-5s %3u %8.2f %9.1f %7.2f %8llu %8llu %7.0f %7.0f "
		    "%7.0f %8.0f %9llu %5llu %7lluK %7lluK\n",
		    bench_mode_name(r->mode), r->index, r->total_s,
		    r->switchover_ms, r->throughput_gbps,
		    (unsigned long long)r->faults_remote,
		    (unsigned long long)r->faults_local, r->p50_us, r->p99_us,
		    r->p999_us, r->max_us, (unsigned long long)r->verified,
		    (unsigned long long)r->mismatched,
		    (unsigned long long)r->rss_src_kib,
		    (unsigned long long)r->rss_dst_kib);
	}
	fprintf(f, "\nratios (medians; target in brackets):\n");
	fprintf(f, "  throughput_vs_tls_raw     %6.2f  [>= 0.9]\n", q.thr_vs_tls);
	fprintf(f, "  remote_p50_vs_tls_rtt     %6.2f  [<= 3]    (loaded RTT; "
	    "idle %.2f)\n", q.remote_vs_rtt, q.remote_vs_rtt_idle);
	fprintf(f, "  local_p50_vs_uffd_floor   %6.2f  [<= 1.5]  (loaded floor; "
	    "idle %.2f)\n", q.local_vs_floor, q.local_vs_floor_idle);
	fprintf(f, "  dst_cpu_per_gib_vs_tls_rx %6.2f  [<= 1.3]\n",
	    q.dst_cpu_vs_tls_rx);
	if (!isnan(q.minor_vs_copy))
		fprintf(f, "  minor_vs_copy_throughput  %6.2f  [>= 1.2]\n",
		    q.minor_vs_copy);
	if (o->huge != 0) {
		fprintf(f, "  remote_p50_vs_tls_%s      %6.2f  [<= 1.5]  (a fault "
		    "waits for its whole huge page; loaded %.2f)\n",
		    bench_huge_name(o), q.huge_p50_vs_tls,
		    q.huge_p50_vs_tls_loaded);
		fprintf(f, "  remote_p99_vs_tls_%s      %6.2f  [<= 3]\n",
		    bench_huge_name(o), q.huge_p99_vs_tls);
	}
}

/* --- plot -------------------------------------------------------------- */

static int
bench_plot(const struct bench *b, const char *file)
{
	char dat[PATH_MAX + 16], gp[PATH_MAX + 16], sz[32];
	const char *ext = strrchr(file, '.');
	bool png = ext != NULL && strcasecmp(ext, ".png") == 0;
	FILE *f;
	unsigned i, k, nplot = 0;
	pid_t pid;
	int status;

	snprintf(dat, sizeof(dat), "%s/plot.dat", b->o.work_dir);
	snprintf(gp, sizeof(gp), "%s/plot.gp", b->o.work_dir);
	if ((f = fopen(dat, "w")) == NULL) {
		log_warn("cannot write %s", dat);
		return -errno;
	}
	/* Per run two data blocks: the latency CDF (upper bucket bound in
	 * us, cumulative share) and throughput over time (s, Gbit/s). */
	for (i = 0; i < b->nruns; i++) {
		const struct bench_run *r = &b->runs[i];
		uint64_t total = 0, cum = 0;

		for (k = 0; k < MIG_LAT_BUCKETS; k++)
			total += r->lat_hist[k];
		fprintf(f, "# run %u %s cdf\n1 0\n", i, bench_mode_name(r->mode));
		for (k = 0; k < MIG_LAT_BUCKETS && total > 0; k++) {
			cum += r->lat_hist[k];
			if (r->lat_hist[k] > 0 || cum == total)
				fprintf(f, "%llu %.6f\n", 1ull << k,
				    (double)cum / (double)total);
			if (cum == total)
				break;
		}
		fprintf(f, "\n\n# run %u %s throughput\n", i,
		    bench_mode_name(r->mode));
		for (k = 1; k < r->nsamples; k++) {
			const struct bench_sample *s0 = &r->samples[k - 1];
			const struct bench_sample *s1 = &r->samples[k];
			double dt = s1->t_s - s0->t_s;

			if (dt > 0)
				fprintf(f, "%.3f %.3f\n", s1->t_s,
				    (double)(s1->bytes - s0->bytes) * 8 / dt / 1e9);
		}
		if (r->nsamples < 2)
			fputs("0 0\n", f);
		fputs("\n\n", f);
	}
	fclose(f);

	if ((f = fopen(gp, "w")) == NULL) {
		log_warn("cannot write %s", gp);
		return -errno;
	}
	fprintf(f, "set terminal %s size 1100,480 font 'sans,10'\n",
	    png ? "pngcairo" : "svg dynamic");
	fprintf(f, "set output '%s'\n", file);
	fprintf(f, "set multiplot layout 1,2 title 'postcopy-bench: %s guest, "
	    "%s workload, %s guest'\n", bench_size_str(b->o.size, sz,
	    sizeof(sz)), b->o.workload, b->o.guest);
	fputs("set title 'fault latency (CDF)'\nset logscale x 2\n"
	    "set xrange [1:*]\n"
	    "set xlabel 'latency (us, bucket upper bound)'\n"
	    "set ylabel 'share of faults'\nset yrange [0:1.05]\n"
	    "set key bottom right\nset grid\n", f);
	/* The floors the faults are judged against, as vertical lines. */
	if (b->nbase > 0) {
		double rtt = bench_base_range(b, BENCH_BASE_FIELD(rtt_us)).med;
		double uffd = bench_base_range(b, BENCH_BASE_FIELD(uffd_us)).med;

		fprintf(f, "set arrow from %.3f,0 to %.3f,1 nohead dt 2 "
		    "lc 'black'\nset label 'TLS RTT' at %.3f,1.02 center\n",
		    rtt, rtt, rtt);
		fprintf(f, "set arrow from %.3f,0 to %.3f,1 nohead dt 3 "
		    "lc 'gray40'\nset label 'uffd floor' at %.3f,1.02 center\n",
		    uffd, uffd, uffd);
	}
	fputs("plot ", f);
	for (i = 0; i < b->nruns; i++)
		fprintf(f, "%s'%s' index %u with steps lw 2 title '%s #%u'",
		    nplot++ ? ", " : "", dat, 2 * i, bench_mode_name(b->runs[i].mode),
		    b->runs[i].index);
	if (b->nruns == 0)
		fputs("NaN notitle", f);
	fputs("\nunset arrow\nunset label\nunset logscale x\n"
	    "set xrange [0:*]\nset title 'throughput over time'\n"
	    "set xlabel 'time since migrate (s)'\nset ylabel 'Gbit/s'\n"
	    "set yrange [0:*]\nset key top right\nplot ", f);
	for (i = 0, nplot = 0; i < b->nruns; i++)
		fprintf(f, "%s'%s' index %u with lines lw 2 title '%s #%u'",
		    nplot++ ? ", " : "", dat, 2 * i + 1,
		    bench_mode_name(b->runs[i].mode), b->runs[i].index);
	if (b->nbase > 0)
		fprintf(f, "%s%.3f with lines dt 2 lc 'black' title 'raw TLS "
		    "%.2f Gbit/s'", nplot ? ", " : "",
		    bench_base_range(b, BENCH_BASE_FIELD(tls_gbps)).med,
		    bench_base_range(b, BENCH_BASE_FIELD(tls_gbps)).med);
	else if (nplot == 0)
		fputs("NaN notitle", f);
	fputs("\nunset multiplot\n", f);
	fclose(f);

	if ((pid = fork()) < 0) {
		log_warn("fork");
		return -errno;
	}
	if (pid == 0) {
		execlp("gnuplot", "gnuplot", gp, (char *)NULL);
		fprintf(stderr, "postcopy-bench: cannot run gnuplot: %s\n",
		    strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		log_warnx("gnuplot failed on %s (script kept: run with --keep)",
		    gp);
		return -EIO;
	}
	return 0;
}

/* --- main -------------------------------------------------------------- */

/* SIGINT/SIGTERM: the waits in bench_run.c give up, the children are
 * ended and the work dir removed as after any failed run. */
static volatile sig_atomic_t bench_stop;

static void
bench_on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

/* --hugepages: the guests can be made (exit 2 if the options say they
 * cannot, 77 if the host lacks the huge pages), or 0. */
static int
bench_huge_check(const struct bench *b)
{
	const struct bench_opts *o = &b->o;
	char path[128], sz[32];
	unsigned long long free_hp = 0, resv = 0, need;
	FILE *f;

	if (o->huge == 0)
		return 0;
	if ((o->modes & BENCH_COPY) && o->huge != 2ull << 20) {
		fprintf(stderr, "postcopy-bench: --hugepages 1G runs minor "
		    "mode only (postcopyd's COPY mode takes 2 MiB pages: a "
		    "1 GiB page would need a 1 GiB bounce buffer)\n");
		return 2;
	}
	if (o->size % o->huge != 0) {
		fprintf(stderr, "postcopy-bench: --size %s is not a whole "
		    "number of %s huge pages\n", bench_size_str(o->size, sz,
		    sizeof(sz)), o->huge == 1ull << 30 ? "1G" : "2M");
		return 2;
	}
	if (b->baselines_only)
		return 0;
	need = 2 * (o->size / o->huge);		/* source and destination */
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-"
	    "%llukB/free_hugepages", (unsigned long long)(o->huge >> 10));
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%llu", &free_hp) != 1)
			free_hp = 0;
		fclose(f);
		strcpy(strrchr(path, '/'), "/resv_hugepages");
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%llu", &resv) != 1)
				resv = 0;
			fclose(f);
		}
	} else {
		fprintf(stderr, "postcopy-bench: SKIP: this host offers no %s "
		    "huge pages (no %s)\n", o->huge == 1ull << 30 ? "1G" : "2M",
		    path);
		return 77;
	}
	if (free_hp < resv || free_hp - resv < need) {
		*strrchr(path, '/') = '\0';
		fprintf(stderr, "postcopy-bench: SKIP: two guests of %s need %llu "
		    "free huge pages, %llu are free (grow %s/nr_hugepages)\n",
		    bench_size_str(o->size, sz, sizeof(sz)), need,
		    free_hp < resv ? 0 : free_hp - resv, path);
		return 77;
	}
	return 0;
}

static int
bench_parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_SEED = 256, OPT_TIMEOUT, OPT_TLS, OPT_BINDIR, OPT_BASE,
	    OPT_CIPHER, OPT_RECORD, OPT_KEEP, OPT_HUGE, OPT_PRECOPY,
	    OPT_ROUNDS, OPT_AUTO, OPT_DIRTY, OPT_DOWNTIME, OPT_BULKCH, OPT_SPIN,
	    OPT_PAGEWRITE, OPT_SPINALWAYS, OPT_REALTIME };
	static const struct option opts[] = {
		{ "size",		required_argument, NULL, 's' },
		{ "workload",		required_argument, NULL, 'w' },
		{ "threads",		required_argument, NULL, 't' },
		{ "guest",		required_argument, NULL, 'g' },
		{ "zero-fraction",	required_argument, NULL, 'z' },
		{ "seed",		required_argument, NULL, OPT_SEED },
		{ "hugepages",		required_argument, NULL, OPT_HUGE },
		{ "mode",		required_argument, NULL, 'm' },
		{ "bandwidth",		required_argument, NULL, 'b' },
		{ "repeat",		required_argument, NULL, 'r' },
		{ "precopy",		no_argument,	   NULL, OPT_PRECOPY },
		{ "rounds",		required_argument, NULL, OPT_ROUNDS },
		{ "bulk-channels",	required_argument, NULL, OPT_BULKCH },
		{ "demand-spin",	required_argument, NULL, OPT_SPIN },
		{ "page-write",		required_argument, NULL, OPT_PAGEWRITE },
		{ "demand-spin-always",	no_argument, NULL, OPT_SPINALWAYS },
		{ "demand-realtime",	required_argument, NULL, OPT_REALTIME },
		{ "auto",		no_argument,	   NULL, OPT_AUTO },
		{ "max-downtime",	required_argument, NULL, OPT_DOWNTIME },
		{ "dirty-rate",		required_argument, NULL, OPT_DIRTY },
		{ "timeout",		required_argument, NULL, OPT_TIMEOUT },
		{ "tls-dir",		required_argument, NULL, OPT_TLS },
		{ "bindir",		required_argument, NULL, OPT_BINDIR },
		{ "baselines-only",	no_argument,	   NULL, OPT_BASE },
		{ "cipher",		required_argument, NULL, OPT_CIPHER },
		{ "record-size",	required_argument, NULL, OPT_RECORD },
		{ "json",		no_argument,	   NULL, 'j' },
		{ "plot",		required_argument, NULL, 'p' },
		{ "keep",		no_argument,	   NULL, OPT_KEEP },
		{ "verbose",		no_argument,	   NULL, 'v' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct bench b = { 0 };
	struct bench_opts *o = &b.o;
	struct sigaction sa = { 0 };
	char err[512], *end, self[PATH_MAX];
	unsigned rep, m, tmp;
	uint64_t v;
	ssize_t n;
	int c, rc = 0;

	log_init("postcopy-bench", LOG_LVL_WARNING);
	/* A peer that goes away is an error from write(), not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	o->stop = &bench_stop;
	o->size = 1ull << 30;
	o->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	o->workload = "random";
	o->guest = "threads";
	o->threads = 2;
	o->zero_fraction = 0.25;
	o->seed = 1;
	o->modes = BENCH_MINOR;
	o->repeat = 1;
	o->timeout_s = 600;
	o->max_downtime_ms = BENCH_MAX_DOWNTIME_MS;
	b.cipher = BENCH_CIPHER;
	b.record = BENCH_FRAME_PAGES * o->page_size;

	while ((c = getopt_long(argc, argv, "s:w:t:g:z:m:b:r:jp:vh", opts,
	    NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_size(optarg, &v) != 0 || v == 0 ||
			    v % o->page_size != 0) {
				fprintf(stderr, "postcopy-bench: --size %s: want a "
				    "positive multiple of %llu bytes\n", optarg,
				    (unsigned long long)o->page_size);
				return 2;
			}
			o->size = v;
			break;
		case 'w':
			if (strcmp(optarg, "random") != 0 &&
			    strcmp(optarg, "sequential") != 0 &&
			    strcmp(optarg, "hotset") != 0) {
				fprintf(stderr, "postcopy-bench: --workload %s: want "
				    "random, sequential or hotset\n", optarg);
				return 2;
			}
			o->workload = optarg;
			break;
		case 't':
			if (bench_parse_uint(optarg, 256, &o->threads) != 0) {
				fprintf(stderr, "postcopy-bench: --threads %s: want "
				    "1..256\n", optarg);
				return 2;
			}
			break;
		case 'g':
			if (strcmp(optarg, "threads") != 0 &&
			    strcmp(optarg, "kvm") != 0) {
				fprintf(stderr, "postcopy-bench: --guest %s: want "
				    "threads or kvm\n", optarg);
				return 2;
			}
			o->guest = optarg;
			break;
		case 'z':
			errno = 0;
			o->zero_fraction = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->zero_fraction >= 0 && o->zero_fraction <= 1)) {
				fprintf(stderr, "postcopy-bench: --zero-fraction "
				    "%s: want a number in 0..1\n", optarg);
				return 2;
			}
			break;
		case OPT_SEED:
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (errno != 0 || end == optarg || *end != '\0') {
				fprintf(stderr, "postcopy-bench: --seed %s: want "
				    "a number\n", optarg);
				return 2;
			}
			break;
		case OPT_HUGE:
			if (strcmp(optarg, "2M") == 0)
				o->huge = 2ull << 20;
			else if (strcmp(optarg, "1G") == 0)
				o->huge = 1ull << 30;
			else {
				fprintf(stderr, "postcopy-bench: --hugepages %s: "
				    "want 2M or 1G\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (strcmp(optarg, "minor") == 0)
				o->modes = BENCH_MINOR;
			else if (strcmp(optarg, "copy") == 0)
				o->modes = BENCH_COPY;
			else if (strcmp(optarg, "both") == 0)
				o->modes = BENCH_MINOR | BENCH_COPY;
			else {
				fprintf(stderr, "postcopy-bench: --mode %s: want "
				    "minor, copy or both\n", optarg);
				return 2;
			}
			break;
		case 'b':
			if (parse_size(optarg, &v) != 0) {
				fprintf(stderr, "postcopy-bench: --bandwidth %s: "
				    "want bytes/s, e.g. 500M\n", optarg);
				return 2;
			}
			o->bandwidth_bps = v;
			break;
		case 'r':
			if (bench_parse_uint(optarg, 100, &o->repeat) != 0) {
				fprintf(stderr, "postcopy-bench: --repeat %s: want "
				    "1..100\n", optarg);
				return 2;
			}
			break;
		case OPT_TIMEOUT:
			if (bench_parse_uint(optarg, 86400, &o->timeout_s) != 0) {
				fprintf(stderr, "postcopy-bench: --timeout %s: want "
				    "seconds\n", optarg);
				return 2;
			}
			break;
		case OPT_TLS:
			o->tls_dir = optarg;
			break;
		case OPT_BINDIR:
			if (str_copy(o->bin_dir, optarg, sizeof(o->bin_dir))) {
				fprintf(stderr, "postcopy-bench: --bindir: too "
				    "long\n");
				return 2;
			}
			break;
		case OPT_BASE:
			b.baselines_only = true;
			break;
		case OPT_CIPHER:
			b.cipher = optarg;
			break;
		case OPT_RECORD:
			if (bench_parse_uint(optarg, 1u << 24, &tmp) != 0) {
				fprintf(stderr, "postcopy-bench: --record-size %s: "
				    "want 1..16M\n", optarg);
				return 2;
			}
			b.record = tmp;
			break;
		case 'j':
			o->json = true;
			break;
		case 'p':
			if (strpbrk(optarg, "'\"\n") != NULL) {
				fprintf(stderr, "postcopy-bench: --plot %s: no "
				    "quotes or newlines in the file name\n",
				    optarg);
				return 2;
			}
			o->plot = optarg;
			break;
		case OPT_KEEP:
			o->keep = true;
			break;
		case OPT_PRECOPY:
			o->precopy = true;
			break;
		case OPT_AUTO:
			o->auto_switch = true;
			break;
		case OPT_DOWNTIME:
			if (bench_parse_uint(optarg, 600000,
			    &o->max_downtime_ms) != 0 || o->max_downtime_ms == 0) {
				fprintf(stderr, "postcopy-bench: --max-downtime "
				    "%s: want 1..600000 (ms)\n", optarg);
				return 2;
			}
			break;
		case OPT_BULKCH:
			if (bench_parse_uint(optarg, 16, &o->bulk_channels) != 0) {
				fprintf(stderr, "postcopy-bench: --bulk-channels "
				    "%s: want 1..16\n", optarg);
				return 2;
			}
			break;
		case OPT_SPIN:
			if (bench_parse_uint(optarg, 1000, &o->demand_spin_us) !=
			    0) {
				fprintf(stderr, "postcopy-bench: --demand-spin %s: "
				    "want microseconds, 1..1000\n", optarg);
				return 2;
			}
			break;
		case OPT_SPINALWAYS:
			o->demand_spin_always = true;
			break;
		case OPT_REALTIME:
			if (strcmp(optarg, "yes") != 0 &&
			    strcmp(optarg, "no") != 0) {
				fprintf(stderr, "postcopy-bench: --demand-realtime "
				    "%s: want yes or no\n", optarg);
				return 2;
			}
			o->demand_realtime = optarg;
			break;
		case OPT_PAGEWRITE:
			if (strcmp(optarg, "pwrite") != 0 &&
			    strcmp(optarg, "alias") != 0) {
				fprintf(stderr, "postcopy-bench: --page-write %s: "
				    "want pwrite or alias\n", optarg);
				return 2;
			}
			o->page_write = optarg;
			break;
		case OPT_ROUNDS:
			if (bench_parse_uint(optarg, 1000, &o->rounds) != 0) {
				fprintf(stderr, "postcopy-bench: --rounds %s: want "
				    "1..1000\n", optarg);
				return 2;
			}
			break;
		case OPT_DIRTY:
			errno = 0;
			o->dirty_rate = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->dirty_rate >= 0 && o->dirty_rate <= 1e7)) {
				fprintf(stderr, "postcopy-bench: --dirty-rate %s: "
				    "want pages/s in 0..1e7\n", optarg);
				return 2;
			}
			break;
		case 'v':
			o->verbose++;
			log_set_level(LOG_LVL_INFO);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "postcopy-bench: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if ((rc = bench_huge_check(&b)) != 0)
		return rc;
	if ((o->rounds || o->auto_switch) && !o->precopy) {
		fprintf(stderr, "postcopy-bench: --rounds and --auto go with "
		    "--precopy\n");
		return 2;
	}
	o->progress = !o->json && isatty(STDERR_FILENO);
	b.rtt_request = BENCH_FRAME_HDR + BENCH_REQUEST_BODY;
	b.rtt_response = o->page_size + BENCH_FRAME_HDR;

	if (o->bin_dir[0] == '\0') {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			self[n] = '\0';
			*strrchr(self, '/') = '\0';
			str_copy(o->bin_dir, self, sizeof(o->bin_dir));
		} else
			str_copy(o->bin_dir, ".", sizeof(o->bin_dir));
	}
	if (!b.baselines_only) {
		if (bench_find_tool(o, "postcopyd", o->postcopyd,
		    sizeof(o->postcopyd)) != 0 ||
		    bench_find_tool(o, "postcopy-guest", o->guest_bin,
		    sizeof(o->guest_bin)) != 0) {
			fprintf(stderr, "postcopy-bench: cannot find postcopyd "
			    "and postcopy-guest next to %s or in $PATH (use "
			    "--bindir)\n", o->bin_dir);
			return 1;
		}
	}

	snprintf(o->work_dir, sizeof(o->work_dir), "%s/postcopy-bench.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(o->work_dir) == NULL) {
		fprintf(stderr, "postcopy-bench: cannot make a temp dir %s: %s\n",
		    o->work_dir, strerror(errno));
		return 1;
	}
	if (o->tls_dir != NULL) {
		if (realpath(o->tls_dir, o->cert_dir) == NULL) {
			fprintf(stderr, "postcopy-bench: --tls-dir %s: %s\n",
			    o->tls_dir, strerror(errno));
			rc = 1;
			goto out;
		}
	} else {
		if (snprintf(o->cert_dir, sizeof(o->cert_dir), "%s/tls",
		    o->work_dir) >= (int)sizeof(o->cert_dir)) {
			fprintf(stderr, "postcopy-bench: %s: path too long\n",
			    o->work_dir);
			rc = 1;
			goto out;
		}
		if (mkdir(o->cert_dir, 0700) != 0) {
			fprintf(stderr, "postcopy-bench: mkdir %s: %s\n",
			    o->cert_dir, strerror(errno));
			rc = 1;
			goto out;
		}
		if (bench_make_certs(o, err, sizeof(err)) != 0) {
			fprintf(stderr, "postcopy-bench: certificates in %s: %s\n",
			    o->cert_dir, err);
			rc = 1;
			goto out;
		}
	}

	b.base = calloc(o->repeat, sizeof(*b.base));
	b.runs = calloc((size_t)o->repeat * 2, sizeof(*b.runs));
	if (b.base == NULL || b.runs == NULL) {
		fprintf(stderr, "postcopy-bench: out of memory\n");
		rc = 1;
		goto out;
	}
	for (rep = 0; rep < o->repeat && !bench_stop; rep++) {
		if (bench_baselines(&b, &b.base[b.nbase]) != 0) {
			b.failed++;
			break;
		}
		b.nbase++;
		for (m = BENCH_MINOR; m <= BENCH_COPY && !b.baselines_only &&
		    !bench_stop; m <<= 1) {
			struct bench_run *r = &b.runs[b.nruns];

			if (!(o->modes & m))
				continue;
			r->index = rep;
			if (bench_run_migration(o, (enum bench_mode)m, r, err,
			    sizeof(err)) != 0) {
				fprintf(stderr, "postcopy-bench: %s migration "
				    "#%u: %s\n", bench_mode_name(m), rep, err);
				bench_run_clear(r);
				b.failed++;
				b.run_failed = true;
				continue;
			}
			if (r->mismatched > 0) {
				fprintf(stderr, "postcopy-bench: %s migration #%u: "
				    "%llu pages mismatched\n", bench_mode_name(m),
				    rep, (unsigned long long)r->mismatched);
				b.failed++;
				b.run_failed = true;
			}
			b.nruns++;
		}
	}
	if (bench_stop) {
		fprintf(stderr, "postcopy-bench: interrupted\n");
		b.failed++;
	}
	if (b.nbase == 0) {
		/* Not even the baselines: nothing to report. */
		rc = 1;
		goto out;
	}
	if (o->json)
		bench_report_json(&b, stdout);
	else
		bench_report_text(&b, stdout);
	fflush(stdout);
	if (o->plot != NULL && bench_plot(&b, o->plot) != 0)
		b.failed++;
	rc = b.failed ? 1 : 0;
out:
	for (unsigned i = 0; i < b.nruns; i++)
		bench_run_clear(&b.runs[i]);
	free(b.runs);
	free(b.base);
	if (o->keep || b.run_failed)	/* the daemons' and guests' logs */
		fprintf(stderr, "postcopy-bench: work dir kept: %s\n",
		    o->work_dir);
	else
		bench_rm_rf(o->work_dir);
	return rc;
}
