/* metrics.c - the Prometheus endpoint (see metrics.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "migration.h"
#include "util.h"

/* Upper bound on states scanned for postcopyd_migrations (names past the
 * last one read "unknown", so states appended to the enum show up). */
#define METRICS_STATES_MAX	32

struct metrics {
	struct daemon		*d;
	struct evhttp		*http;
	struct evhttp_bound_socket *sock;
	char			 address[128];
	int			 port;
};

/* One metric family of a migration. Names follow Prometheus' rules: base
 * units in the name (seconds, bytes), counters end in _total, a sum over
 * any label is meaningful. emit writes the family's samples of one
 * migration; l is its label set 'id="...",role="..."' (ids are
 * [A-Za-z0-9._-], nothing to escape). */
struct metrics_family {
	const char	*name;
	const char	*type;
	const char	*help;
	void		(*emit)(struct evbuffer *, const char *,
			    const struct mig_stats *, const char *);
};

#define METRICS_U64(b, n, l, v) evbuffer_add_printf((b), "%s{%s} %llu\n", \
	(n), (l), (unsigned long long)(v))
#define METRICS_SECS(us)	((double)(us) / 1e6)

static void
metrics_info(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	evbuffer_add_printf(b, "%s{%s,state=\"%s\"} 1\n", n, l,
	    mig_state_name(s->state));
}

static void
metrics_guest_pages(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->pages_total);
}

static void
metrics_page_size(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->page_size);
}

static void
metrics_pages_valid(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->pages_valid);
}

static void
metrics_pages(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	evbuffer_add_printf(b, "%s{%s,channel=\"bulk\"} %llu\n"
	    "%s{%s,channel=\"urgent\"} %llu\n",
	    n, l, (unsigned long long)s->pages_sent_bulk,
	    n, l, (unsigned long long)s->pages_sent_urgent);
}

static void
metrics_zero_pages(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->pages_zero);
}

static void
metrics_bytes(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	METRICS_U64(b, n, l, s->bytes_transferred);
}

static void
metrics_faults(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	evbuffer_add_printf(b, "%s{%s,kind=\"remote\"} %llu\n"
	    "%s{%s,kind=\"local\"} %llu\n",
	    n, l, (unsigned long long)s->faults_remote,
	    n, l, (unsigned long long)s->faults_local);
}

static void
metrics_requests(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->page_requests);
}

static void
metrics_verified(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->pages_verified);
}

static void
metrics_mismatched(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->pages_mismatched);
}

static void
metrics_reconnects(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->reconnects);
}

/* Bucket i of lat_hist counts faults resolved in < 2^i us, except the last,
 * which also holds every slower one: its bound is +Inf. The sum is exact
 * (the daemon adds up every latency it records). */
static void
metrics_latency(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	uint64_t cum = 0;

	for (unsigned i = 0; i + 1 < MIG_LAT_BUCKETS; i++) {
		cum += s->lat_hist[i];
		evbuffer_add_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", n, l,
		    METRICS_SECS(1ull << i), (unsigned long long)cum);
	}
	cum += s->lat_hist[MIG_LAT_BUCKETS - 1];
	evbuffer_add_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n"
	    "%s_sum{%s} %.6f\n%s_count{%s} %llu\n",
	    n, l, (unsigned long long)cum, n, l, METRICS_SECS(s->lat_sum_us),
	    n, l, (unsigned long long)cum);
}

static void
metrics_latency_max(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	evbuffer_add_printf(b, "%s{%s} %.6f\n", n, l,
	    METRICS_SECS(s->lat_max_us));
}

static void
metrics_bandwidth(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	METRICS_U64(b, n, l, s->bandwidth_bps);
}

static void
metrics_start(struct evbuffer *b, const char *n, const struct mig_stats *s,
    const char *l)
{
	evbuffer_add_printf(b, "%s{%s} %.3f\n", n, l,
	    (double)s->start_ms / 1e3);
}

static void
metrics_elapsed(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	evbuffer_add_printf(b, "%s{%s} %.3f\n", n, l,
	    (double)s->elapsed_ms / 1e3);
}

static void
metrics_downtime(struct evbuffer *b, const char *n,
    const struct mig_stats *s, const char *l)
{
	evbuffer_add_printf(b, "%s{%s} %.3f\n", n, l,
	    (double)s->downtime_ms / 1e3);
}

static const struct metrics_family metrics_families[] = {
	{ "postcopyd_migration_info", "gauge",
	  "One per migration known to the daemon, labelled with its state.",
	  metrics_info },
	{ "postcopyd_migration_guest_pages", "gauge",
	  "Guest memory of the migration, in pages (0 until the VMM attached).",
	  metrics_guest_pages },
	{ "postcopyd_migration_page_size_bytes", "gauge",
	  "Guest page size.", metrics_page_size },
	{ "postcopyd_migration_pages_valid", "gauge",
	  "Pages done: destination, received and written; source, sent.",
	  metrics_pages_valid },
	{ "postcopyd_migration_pages_transferred_total", "counter",
	  "Pages sent (source) or received (destination), by channel.",
	  metrics_pages },
	{ "postcopyd_migration_zero_pages_total", "counter",
	  "Zero pages moved as compact records, without page bytes.",
	  metrics_zero_pages },
	{ "postcopyd_migration_transferred_bytes_total", "counter",
	  "Bytes moved over the migration channels.", metrics_bytes },
	{ "postcopyd_migration_faults_total", "counter",
	  "Guest page faults handled: remote needed the network, local did not.",
	  metrics_faults },
	{ "postcopyd_migration_page_requests_total", "counter",
	  "Page requests: destination, sent; source, served.",
	  metrics_requests },
	{ "postcopyd_migration_pages_verified_total", "counter",
	  "Pages whose xxh3 digest matched the source's.", metrics_verified },
	{ "postcopyd_migration_pages_mismatched_total", "counter",
	  "Pages whose xxh3 digest did not match the source's.",
	  metrics_mismatched },
	{ "postcopyd_migration_reconnects_total", "counter",
	  "Channel sessions resumed after a network loss.",
	  metrics_reconnects },
	{ "postcopyd_migration_fault_latency_seconds", "histogram",
	  "Fault resolution time, from the userfaultfd event to the page mapped.",
	  metrics_latency },
	{ "postcopyd_migration_fault_latency_max_seconds", "gauge",
	  "Slowest fault resolution so far.", metrics_latency_max },
	{ "postcopyd_migration_bandwidth_limit_bytes_per_second", "gauge",
	  "Bulk stream limit of a source (0: unlimited).", metrics_bandwidth },
	{ "postcopyd_migration_start_time_seconds", "gauge",
	  "When the migration was created, seconds since the epoch.",
	  metrics_start },
	{ "postcopyd_migration_duration_seconds", "gauge",
	  "Time since the data path started (its whole run once it ended).",
	  metrics_elapsed },
	{ "postcopyd_migration_downtime_seconds", "gauge",
	  "Time the guest was paused at switchover (source pause to "
	  "destination resume).", metrics_downtime },
};

static void
metrics_header(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
metrics_daemon(struct evbuffer *b, const struct mig_stats *all, size_t n)
{
	unsigned long long bystate[METRICS_STATES_MAX] = { 0 };

	for (size_t i = 0; i < n; i++)
		if ((unsigned)all[i].state < METRICS_STATES_MAX)
			bystate[all[i].state]++;
	metrics_header(b, "postcopyd_build_info", "gauge",
	    "postcopyd version.");
	evbuffer_add_printf(b, "postcopyd_build_info{version=\"%s\"} 1\n",
	    PCD_VERSION);
	metrics_header(b, "postcopyd_migrations", "gauge",
	    "Migrations known to the daemon, by state.");
	for (int s = 0; s < METRICS_STATES_MAX; s++) {
		const char *name = mig_state_name((enum mig_state)s);

		if (strcmp(name, "unknown") == 0)
			break;
		evbuffer_add_printf(b, "postcopyd_migrations{state=\"%s\"} "
		    "%llu\n", name, bystate[s]);
	}
}

/* Every family once, with its HELP and TYPE, then its samples for every
 * migration (the text format wants a family's samples together). */
static void
metrics_render(struct metrics *m, struct evbuffer *b)
{
	struct mig_stats *all = NULL;
	size_t n = mig_list(m->d->migs, NULL, 0);
	char labels[MIG_ID_MAX + 64];

	if (n > 0 && (all = calloc(n, sizeof(*all))) != NULL)
		n = mig_list(m->d->migs, all, n);
	else
		n = 0;
	metrics_daemon(b, all, n);
	for (size_t k = 0; k < ARRAY_SIZE(metrics_families); k++) {
		const struct metrics_family *f = &metrics_families[k];

		metrics_header(b, f->name, f->type, f->help);
		for (size_t i = 0; i < n; i++) {
			snprintf(labels, sizeof(labels),
			    "id=\"%s\",role=\"%s\"", all[i].id,
			    mig_role_name(all[i].role));
			f->emit(b, f->name, &all[i], labels);
		}
	}
	free(all);
}

static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *b;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path == NULL || (strcmp(path, "/metrics") != 0 &&
	    strcmp(path, "/") != 0)) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(m, b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

int
metrics_open(struct daemon *d, const char *listen, struct metrics **out)
{
	struct metrics *m;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[128];
	uint16_t port;
	int r;

	if (parse_hostport(listen, host, sizeof(host), &port) < 0) {
		log_warnx("metrics_listen: '%s' is not host:port", listen);
		return -EINVAL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	m->d = d;
	str_copy(m->address, listen, sizeof(m->address));
	if ((m->http = evhttp_new(d->base)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_gencb(m->http, metrics_request, m);
	if ((m->sock = evhttp_bind_socket_with_handle(m->http, host,
	    port)) == NULL) {
		r = -errno != 0 ? -errno : -EADDRINUSE;
		log_warnx("metrics: cannot listen on %s", listen);
		goto fail;
	}
	if (getsockname(evhttp_bound_socket_get_fd(m->sock),
	    (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			m->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			m->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	log_notice("metrics: serving http://%s:%d/metrics", host, m->port);
	*out = m;
	return 0;
fail:
	metrics_close(m);
	return r;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
}
