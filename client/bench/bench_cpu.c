/*
 * bench_cpu.c - the CPU seconds a process spent over a window, in all and
 * by thread name, read from /proc (utime + stime).
 *
 * The process total comes from /proc/PID/stat, which keeps the time of
 * threads that have already exited: it is exact. The split by thread name
 * comes from /proc/PID/task/TID/stat, sampled as the window runs: a thread
 * that exits between two samples loses its last slice, so the split is a
 * lower bound and may add up to a little less than the total. Each
 * thread's scheduling policy is read too: which run real-time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* utime and stime of a /proc stat line, in clock ticks, the command name
 * (which may hold spaces and parentheses: it ends at the last ')') and
 * whether the policy is real-time (SCHED_FIFO or SCHED_RR). */
static int
bench_cpu_read(const char *path, uint64_t *ticks, char *name, size_t namelen,
    bool *rt)
{
	char buf[1024], *open_paren, *close_paren, *p;
	unsigned long long ut = 0, st = 0;
	unsigned policy = 0, field = 3;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
		return -EIO;
	if (name != NULL)
		snprintf(name, namelen, "%.*s", (int)(close_paren - open_paren - 1),
		    open_paren + 1);
	/* After ')': state (field 3) ... utime (14), stime (15) ... policy
	 * (41, since Linux 2.5.19). */
	p = close_paren + 1;
	for (char *save = NULL, *tok = strtok_r(p, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 14)
			ut = strtoull(tok, NULL, 10);
		else if (field == 15)
			st = strtoull(tok, NULL, 10);
		else if (field == 41)
			policy = (unsigned)strtoul(tok, NULL, 10);
	}
	if (field <= 15)
		return -EIO;
	*ticks = ut + st;
	if (rt != NULL)
		*rt = policy == 1 || policy == 2;	/* FIFO, RR */
	return 0;
}

static double
bench_cpu_secs(uint64_t ticks)
{
	long hz = sysconf(_SC_CLK_TCK);

	return (double)ticks / (double)(hz > 0 ? hz : 100);
}

static struct bench_cpu_tid *
bench_cpu_tid(struct bench_cpu_track *t, pid_t tid)
{
	for (unsigned i = 0; i < t->ntids; i++)
		if (t->tids[i].tid == tid)
			return &t->tids[i];
	if (t->ntids == BENCH_CPU_TIDS)
		return NULL;
	memset(&t->tids[t->ntids], 0, sizeof(t->tids[0]));
	t->tids[t->ntids].tid = tid;
	return &t->tids[t->ntids++];
}

/* One pass over /proc/PID/task: the newest ticks of every thread; first
 * is set the first time a thread is seen (0 for threads born in the
 * window, whose whole life counts). */
static void
bench_cpu_scan(struct bench_cpu_track *t, bool at_begin)
{
	char path[64], name[BENCH_CPU_NAME];
	struct dirent *de;
	uint64_t ticks;
	bool rt;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct bench_cpu_tid *e;
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat",
		    (int)t->pid, (int)tid);
		if (bench_cpu_read(path, &ticks, name, sizeof(name), &rt) != 0 ||
		    (e = bench_cpu_tid(t, tid)) == NULL)
			continue;
		e->rt |= rt;
		if (!e->seen) {
			e->seen = true;
			e->first = at_begin ? ticks : 0;
		}
		e->last = ticks;
		/* A thread may name itself after it started. */
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	closedir(d);
}

void
bench_cpu_begin(struct bench_cpu_track *t, pid_t pid)
{
	char path[64];

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	t->ok = bench_cpu_read(path, &t->start, NULL, 0, NULL) == 0;
	bench_cpu_scan(t, true);
}

void
bench_cpu_sample(struct bench_cpu_track *t)
{
	if (t->ok)
		bench_cpu_scan(t, false);
}

static void
bench_cpu_add(struct bench_cpu *out, const char *name, double s, bool rt)
{
	unsigned i;

	for (i = 0; i < out->nthreads; i++)
		if (strcmp(out->threads[i].name, name) == 0)
			break;
	if (i == out->nthreads) {
		if (i == BENCH_CPU_NAMES)
			return;
		snprintf(out->threads[i].name, sizeof(out->threads[i].name),
		    "%s", name);
		out->threads[i].s = 0;
		out->threads[i].rt = false;
		out->nthreads++;
	}
	out->threads[i].s += s;
	out->threads[i].rt |= rt;
}

int
bench_cpu_end(struct bench_cpu_track *t, struct bench_cpu *out)
{
	char path[64];
	uint64_t now;

	memset(out, 0, sizeof(*out));
	if (!t->ok)
		return -ESRCH;
	bench_cpu_scan(t, false);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)t->pid);
	if (bench_cpu_read(path, &now, NULL, 0, NULL) != 0)
		return -ESRCH;
	out->total_s = bench_cpu_secs(now - t->start);
	for (unsigned i = 0; i < t->ntids; i++) {
		const struct bench_cpu_tid *e = &t->tids[i];

		if (e->last > e->first || e->rt)
			bench_cpu_add(out, e->name, bench_cpu_secs(e->last -
			    e->first), e->rt);
	}
	return 0;
}

double
bench_cpu_thread_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
