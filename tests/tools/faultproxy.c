/* faultproxy.c - a TCP proxy that injects network faults, for tests.
 *
 *   faultproxy --listen HOST:PORT --connect HOST:PORT [options]
 *
 * Every accepted connection is paired with a new connection to the target
 * and bytes are copied both ways. Faults, chosen by options:
 *   --cut-every BYTES     reset a connection pair after it has carried
 *                         about BYTES (randomised +-50% with --seed)
 *   --max-cuts N          stop cutting after N cuts (default unlimited)
 *   --stall-ms MS         every --stall-every BYTES, stop forwarding for MS
 *   --chunk N             deliver data in pieces of at most N bytes
 *   --blackhole           no --connect: a listener that never answers a
 *                         connection attempt (its accept queue is full and
 *                         never drained, so the kernel drops the SYNs: a
 *                         host or firewall that drops them)
 *   --port-file FILE      write the bound port there (for --listen :0)
 *   --stats FILE          on exit (SIGTERM/SIGINT), write "cuts=N bytes=N"
 * Signals: SIGUSR1 holds the way back: bytes from the target to the
 * client stop (every pair, later ones too; the client -> target way runs
 * on), as when a reply is lost; SIGUSR2 resets every pair at once (each
 * counts as a cut) and ends the hold. Together: "cut exactly before the
 * client read the target's last words" (rel.cut-after-complete).
 * Cuts are TCP resets (SO_LINGER 0) on both sides, as a broken network or a
 * dead peer would give. Single-threaded, poll(2) based.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define FP_MAX_PAIRS	64
#define FP_BUF		(256 * 1024)

struct fp_dir {			/* one direction: from -> to */
	char	*buf;
	size_t	 off, len;
};

struct fp_pair {
	int		fd[2];		/* 0 = client side, 1 = target side */
	struct fp_dir	dir[2];		/* dir[i]: read from fd[i], write fd[!i] */
	uint64_t	bytes;		/* carried so far */
	uint64_t	cut_at;		/* cut when bytes reaches this, 0 = never */
	uint64_t	stall_at;
	struct timespec	stall_until;
	bool		 used;
};

struct fp {
	int		 lfd;
	struct sockaddr_storage target;
	socklen_t	 target_len;
	uint64_t	 cut_every, stall_every, max_cuts, cuts, total;
	unsigned	 stall_ms;
	size_t		 chunk;
	unsigned	 seed;
	struct fp_pair	 pairs[FP_MAX_PAIRS];
	int		 fill;		/* --blackhole: fills the queue */
};

static volatile sig_atomic_t fp_quit;
static volatile sig_atomic_t fp_hold;	/* SIGUSR1: target -> client held */
static volatile sig_atomic_t fp_cut_all;	/* SIGUSR2: reset every pair */

static void
fp_on_signal(int sig)
{
	fp_quit = sig;
}

static void
fp_on_usr(int sig)
{
	if (sig == SIGUSR1) {
		fp_hold = 1;
	} else {
		fp_hold = 0;
		fp_cut_all = 1;
	}
}

static void fp_close_pair(struct fp_pair *p, bool reset);

/* SIGUSR2: every pair reset now. */
static void
fp_reset_all(struct fp *f)
{
	for (int i = 0; i < FP_MAX_PAIRS; i++) {
		if (!f->pairs[i].used)
			continue;
		f->cuts++;
		fprintf(stderr, "faultproxy: cut %llu (SIGUSR2) after %llu "
		    "bytes\n", (unsigned long long)f->cuts,
		    (unsigned long long)f->pairs[i].bytes);
		fp_close_pair(&f->pairs[i], true);
	}
}

static int
fp_resolve(const char *hp, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256], port[8];
	uint16_t p;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;

	if (parse_hostport(hp, host, sizeof(host), &p) < 0)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", p);
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static uint64_t
fp_next_cut(struct fp *f, uint64_t from)
{
	uint64_t span;

	if (f->cut_every == 0 || (f->max_cuts && f->cuts >= f->max_cuts))
		return 0;
	span = f->cut_every / 2 + (uint64_t)rand_r(&f->seed) % (f->cut_every + 1);
	return from + (span ? span : 1);
}

static void
fp_close_pair(struct fp_pair *p, bool reset)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	for (int i = 0; i < 2; i++) {
		if (p->fd[i] >= 0) {
			if (reset)
				setsockopt(p->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(p->fd[i]);
		}
		free(p->dir[i].buf);
	}
	memset(p, 0, sizeof(*p));
	p->fd[0] = p->fd[1] = -1;
}

static void
fp_accept(struct fp *f)
{
	struct fp_pair *p = NULL;
	int c, t, one = 1;

	if ((c = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
		return;
	for (int i = 0; i < FP_MAX_PAIRS; i++)
		if (!f->pairs[i].used) {
			p = &f->pairs[i];
			break;
		}
	t = socket(f->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p == NULL || t < 0 ||
	    connect(t, (struct sockaddr *)&f->target, f->target_len) < 0) {
		fprintf(stderr, "faultproxy: cannot reach the target: %s\n",
		    p == NULL ? "too many connections" : strerror(errno));
		if (t >= 0)
			close(t);
		close(c);
		return;
	}
	fcntl(t, F_SETFL, O_NONBLOCK);
	setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->used = true;
	p->fd[0] = c;
	p->fd[1] = t;
	p->dir[0].buf = malloc(FP_BUF);
	p->dir[1].buf = malloc(FP_BUF);
	if (p->dir[0].buf == NULL || p->dir[1].buf == NULL) {
		fp_close_pair(p, true);
		return;
	}
	p->cut_at = fp_next_cut(f, 0);
	p->stall_at = f->stall_every;
}

static bool
fp_stalled(const struct fp_pair *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < p->stall_until.tv_sec ||
	    (now.tv_sec == p->stall_until.tv_sec && now.tv_nsec < p->stall_until.tv_nsec);
}

/* Moves bytes for one pair; returns false when the pair must close. */
static bool
fp_pump(struct fp *f, struct fp_pair *p, const struct pollfd *pf)
{
	for (int i = 0; i < 2; i++) {
		struct fp_dir *d = &p->dir[i];
		ssize_t n;

		if (d->len == 0 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = read(p->fd[i], d->buf, FP_BUF);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return false;
			if (n > 0) {
				d->off = 0;
				d->len = (size_t)n;
			}
		}
		if (d->len > 0 && !fp_stalled(p) && !(i == 1 && fp_hold)) {
			size_t want = d->len;

			if (f->chunk && want > f->chunk)
				want = f->chunk;
			n = write(p->fd[!i], d->buf + d->off, want);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return false;
			if (n > 0) {
				d->off += (size_t)n;
				d->len -= (size_t)n;
				p->bytes += (uint64_t)n;
				f->total += (uint64_t)n;
			}
		}
	}
	if (p->cut_at && p->bytes >= p->cut_at) {
		f->cuts++;
		fprintf(stderr, "faultproxy: cut %llu after %llu bytes\n",
		    (unsigned long long)f->cuts, (unsigned long long)p->bytes);
		return false;
	}
	if (p->stall_at && p->bytes >= p->stall_at) {
		clock_gettime(CLOCK_MONOTONIC, &p->stall_until);
		p->stall_until.tv_nsec += (long)(f->stall_ms % 1000) * 1000000L;
		p->stall_until.tv_sec += f->stall_ms / 1000 +
		    p->stall_until.tv_nsec / 1000000000L;
		p->stall_until.tv_nsec %= 1000000000L;
		p->stall_at += f->stall_every;
	}
	return true;
}

/* --blackhole: fills the listener's accept queue (backlog 0 holds one
 * connection) with a connection of its own, which it never accepts: the
 * kernel drops every later SYN, and a client's connect() waits without an
 * answer, as towards a host that drops them. */
static int
fp_blackhole_fill(struct fp *f)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	struct pollfd p;

	if (getsockname(f->lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	f->fill = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (f->fill < 0 || (connect(f->fill, (struct sockaddr *)&a, al) < 0 &&
	    errno != EINPROGRESS))
		return -1;
	p = (struct pollfd){ .fd = f->fill, .events = POLLOUT };
	return poll(&p, 1, 2000) == 1 && (p.revents & POLLOUT) ? 0 : -1;
}

static void
fp_usage(FILE *out)
{
	fprintf(out, "usage: faultproxy --listen HOST:PORT --connect HOST:PORT\n"
	    "       | faultproxy --listen HOST:PORT --blackhole\n"
	    "       [--cut-every BYTES] [--max-cuts N] [--seed N]\n"
	    "       [--stall-every BYTES --stall-ms MS] [--chunk N]\n"
	    "       [--port-file FILE] [--stats FILE]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "cut-every", required_argument, NULL, 'x' },
		{ "max-cuts", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "stall-every", required_argument, NULL, 'S' },
		{ "stall-ms", required_argument, NULL, 'M' },
		{ "chunk", required_argument, NULL, 'k' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "stats", required_argument, NULL, 't' },
		{ "blackhole", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct fp f;
	struct sockaddr_storage ls;
	socklen_t ll;
	const char *listen_at = NULL, *connect_to = NULL, *port_file = NULL,
	    *stats = NULL;
	uint64_t v;
	int c, one = 1;
	bool blackhole = false;

	f.seed = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fp_usage(stdout);
			return 0;
		}
		if (strchr("xmSMk", c) && parse_size(optarg, &v) < 0) {
			fprintf(stderr, "faultproxy: bad number '%s'\n", optarg);
			return 2;
		}
		switch (c) {
		case 'l': listen_at = optarg; break;
		case 'c': connect_to = optarg; break;
		case 'x': f.cut_every = v; break;
		case 'm': f.max_cuts = v; break;
		case 's': f.seed = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': f.stall_every = v; break;
		case 'M': f.stall_ms = (unsigned)v; break;
		case 'k': f.chunk = (size_t)v; break;
		case 'p': port_file = optarg; break;
		case 't': stats = optarg; break;
		case 'b': blackhole = true; break;
		default: fp_usage(stderr); return 2;
		}
	}
	if (listen_at == NULL || (connect_to == NULL) == !blackhole) {
		fp_usage(stderr);
		return 2;
	}
	if ((!blackhole && fp_resolve(connect_to, &f.target,
	    &f.target_len) < 0) || fp_resolve(listen_at, &ls, &ll) < 0) {
		fprintf(stderr, "faultproxy: bad address\n");
		return 2;
	}
	for (int i = 0; i < FP_MAX_PAIRS; i++)
		f.pairs[i].fd[0] = f.pairs[i].fd[1] = -1;
	f.lfd = socket(ls.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(f.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (f.lfd < 0 || bind(f.lfd, (struct sockaddr *)&ls, ll) < 0 ||
	    listen(f.lfd, blackhole ? 0 : 16) < 0) {
		fprintf(stderr, "faultproxy: cannot listen on %s: %s\n",
		    listen_at, strerror(errno));
		return 1;
	}
	if (blackhole && fp_blackhole_fill(&f) < 0) {
		fprintf(stderr, "faultproxy: cannot fill the accept queue of "
		    "%s: %s\n", listen_at, strerror(errno));
		return 1;
	}
	if (port_file != NULL) {
		FILE *pf = fopen(port_file, "w");
		ll = sizeof(ls);
		getsockname(f.lfd, (struct sockaddr *)&ls, &ll);
		if (pf == NULL)
			return 1;
		fprintf(pf, "%u\n", ntohs(ls.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ls)->sin_port :
		    ((struct sockaddr_in6 *)&ls)->sin6_port));
		fclose(pf);
	}
	signal(SIGTERM, fp_on_signal);
	signal(SIGINT, fp_on_signal);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, fp_on_usr);
	signal(SIGUSR2, fp_on_usr);
	while (blackhole && !fp_quit)
		poll(NULL, 0, 100);

	while (!fp_quit) {
		struct pollfd pfd[1 + 2 * FP_MAX_PAIRS];
		int n = 1;

		pfd[0] = (struct pollfd){ .fd = f.lfd, .events = POLLIN };
		for (int i = 0; i < FP_MAX_PAIRS; i++) {
			struct fp_pair *p = &f.pairs[i];
			for (int j = 0; j < 2; j++) {
				pfd[n].fd = p->used ? p->fd[j] : -1;
				pfd[n].events = 0;
				if (p->used && p->dir[j].len == 0)
					pfd[n].events |= POLLIN;
				if (p->used && p->dir[!j].len > 0 &&
				    !(j == 0 && fp_hold))
					pfd[n].events |= POLLOUT;
				pfd[n].revents = 0;
				n++;
			}
		}
		if (poll(pfd, (nfds_t)n, 10) < 0 && errno != EINTR)
			break;
		if (fp_cut_all) {
			fp_cut_all = 0;
			fp_reset_all(&f);
			continue;
		}
		if (pfd[0].revents & POLLIN)
			fp_accept(&f);
		for (int i = 0; i < FP_MAX_PAIRS; i++) {
			struct fp_pair *p = &f.pairs[i];
			if (p->used && !fp_pump(&f, p, &pfd[1 + 2 * i]))
				fp_close_pair(p, true);
		}
	}
	if (stats != NULL) {
		FILE *sf = fopen(stats, "w");
		if (sf != NULL) {
			fprintf(sf, "cuts=%llu bytes=%llu\n",
			    (unsigned long long)f.cuts, (unsigned long long)f.total);
			fclose(sf);
		}
	}
	for (int i = 0; i < FP_MAX_PAIRS; i++)
		if (f.pairs[i].used)
			fp_close_pair(&f.pairs[i], false);
	close(f.lfd);
	return 0;
}
