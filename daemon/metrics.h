/* metrics.h - Prometheus text-format endpoint (GET /metrics) on libevent's
 * evhttp, off unless metrics_listen is configured. Serves migrations by
 * state, pages and bytes moved, faults and the fault-latency histogram.
 */
#ifndef PCD_METRICS_H
#define PCD_METRICS_H

struct daemon;
struct metrics;

/* Listens on "host:port" (port 0 picks one; the log says which). */
int metrics_open(struct daemon *d, const char *listen, struct metrics **out);
void metrics_close(struct metrics *m);

#endif
