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

#define METRICS_STATES	(MIG_STATE_CANCELLED + 1)

struct metrics {
	struct daemon		*d;
	struct evhttp		*http;
	struct evhttp_bound_socket *sock;
	char			 address[128];
	int			 port;
};

static void
metrics_migration(struct evbuffer *b, const struct mig_stats *s)
{
	const char *role = mig_role_name(s->role);
	uint64_t cum = 0;
	double sum = 0;

	evbuffer_add_printf(b,
	    "postcopyd_migration_info{id=\"%s\",role=\"%s\",state=\"%s\"} 1\n",
	    s->id, role, mig_state_name(s->state));
	evbuffer_add_printf(b,
	    "postcopyd_migration_pages{id=\"%s\",role=\"%s\",kind=\"total\"} %llu\n"
	    "postcopyd_migration_pages{id=\"%s\",role=\"%s\",kind=\"valid\"} %llu\n"
	    "postcopyd_migration_pages{id=\"%s\",role=\"%s\",kind=\"zero\"} %llu\n",
	    s->id, role, (unsigned long long)s->pages_total,
	    s->id, role, (unsigned long long)s->pages_valid,
	    s->id, role, (unsigned long long)s->pages_zero);
	evbuffer_add_printf(b,
	    "postcopyd_migration_pages_sent_total{id=\"%s\",role=\"%s\",channel=\"bulk\"} %llu\n"
	    "postcopyd_migration_pages_sent_total{id=\"%s\",role=\"%s\",channel=\"urgent\"} %llu\n",
	    s->id, role, (unsigned long long)s->pages_sent_bulk,
	    s->id, role, (unsigned long long)s->pages_sent_urgent);
	evbuffer_add_printf(b,
	    "postcopyd_migration_bytes_total{id=\"%s\",role=\"%s\"} %llu\n",
	    s->id, role, (unsigned long long)s->bytes_transferred);
	evbuffer_add_printf(b,
	    "postcopyd_migration_faults_total{id=\"%s\",role=\"%s\",kind=\"remote\"} %llu\n"
	    "postcopyd_migration_faults_total{id=\"%s\",role=\"%s\",kind=\"local\"} %llu\n",
	    s->id, role, (unsigned long long)s->faults_remote,
	    s->id, role, (unsigned long long)s->faults_local);
	/* Bucket i counts faults resolved in < 2^i us. */
	for (unsigned i = 0; i < MIG_LAT_BUCKETS; i++) {
		cum += s->lat_hist[i];
		sum += (double)s->lat_hist[i] * (i == 0 ? 0.5 :
		    0.75 * (double)(1ull << i)) / 1e6;
		evbuffer_add_printf(b,
		    "postcopyd_migration_fault_latency_seconds_bucket{id=\"%s\",role=\"%s\",le=\"%g\"} %llu\n",
		    s->id, role, (double)(1ull << i) / 1e6,
		    (unsigned long long)cum);
	}
	evbuffer_add_printf(b,
	    "postcopyd_migration_fault_latency_seconds_bucket{id=\"%s\",role=\"%s\",le=\"+Inf\"} %llu\n"
	    "postcopyd_migration_fault_latency_seconds_sum{id=\"%s\",role=\"%s\"} %.6f\n"
	    "postcopyd_migration_fault_latency_seconds_count{id=\"%s\",role=\"%s\"} %llu\n",
	    s->id, role, (unsigned long long)cum, s->id, role, sum,
	    s->id, role, (unsigned long long)cum);
}

static void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* Writes every family, each with its HELP/TYPE once (the format wants a
 * family's samples together). */
static void
metrics_render(struct metrics *m, struct evbuffer *b)
{
	struct mig_stats *all = NULL;
	unsigned long long bystate[METRICS_STATES] = { 0 };
	size_t n = mig_list(m->d->migs, NULL, 0);
	struct evbuffer *fam[7];
	static const char *const names[7][3] = {
		{ "postcopyd_migration_info", "gauge",
		  "One per migration known to the daemon, labelled with its state." },
		{ "postcopyd_migration_pages", "gauge",
		  "Guest pages of a migration: total, valid (dest: received; source: sent), zero." },
		{ "postcopyd_migration_pages_sent_total", "counter",
		  "Pages sent, by channel." },
		{ "postcopyd_migration_bytes_total", "counter",
		  "Bytes moved over the migration channels." },
		{ "postcopyd_migration_faults_total", "counter",
		  "Guest page faults handled: remote needed the network, local did not." },
		{ "postcopyd_migration_fault_latency_seconds", "histogram",
		  "Fault resolution latency (sum estimated from bucket midpoints)." },
		{ NULL, NULL, NULL },
	};

	if (n > 0 && (all = calloc(n, sizeof(*all))) != NULL)
		n = mig_list(m->d->migs, all, n);
	else
		n = 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned)all[i].state < METRICS_STATES)
			bystate[all[i].state]++;

	evbuffer_add_printf(b, "# HELP postcopyd_build_info postcopyd version.\n"
	    "# TYPE postcopyd_build_info gauge\n"
	    "postcopyd_build_info{version=\"%s\"} 1\n", PCD_VERSION);
	metrics_family(b, "postcopyd_migrations", "gauge",
	    "Migrations known to the daemon, by state.");
	for (int s = 0; s < METRICS_STATES; s++)
		evbuffer_add_printf(b, "postcopyd_migrations{state=\"%s\"} %llu\n",
		    mig_state_name(s), bystate[s]);

	/* Render each migration once, then split its lines by family. */
	for (int k = 0; k < 6; k++)
		fam[k] = evbuffer_new();
	for (size_t i = 0; i < n; i++) {
		struct evbuffer *tmp = evbuffer_new();
		char *line;
		size_t len;

		if (tmp == NULL)
			break;
		metrics_migration(tmp, &all[i]);
		while ((line = evbuffer_readln(tmp, &len,
		    EVBUFFER_EOL_LF)) != NULL) {
			int best = -1;
			size_t bestlen = 0;

			for (int k = 0; k < 6; k++) {
				size_t l = strlen(names[k][0]);

				if (strncmp(line, names[k][0], l) == 0 &&
				    l > bestlen) {
					best = k;
					bestlen = l;
				}
			}
			if (best >= 0 && fam[best] != NULL)
				evbuffer_add_printf(fam[best], "%s\n", line);
			free(line);
		}
		evbuffer_free(tmp);
	}
	for (int k = 0; k < 6; k++) {
		if (fam[k] == NULL)
			continue;
		metrics_family(b, names[k][0], names[k][1], names[k][2]);
		evbuffer_add_buffer(b, fam[k]);
		evbuffer_free(fam[k]);
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
