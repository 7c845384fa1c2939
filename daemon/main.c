/* main.c - postcopyd: the postcopy live-migration daemon.
 *
 * Never forks: systemd and the tests run it in the foreground. One libevent
 * loop runs the control plane; each migration's data path runs on threads
 * of its own (see DESIGN.md).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "ctl.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "migration.h"
#include "probe.h"
#include "sdnotify.h"
#include "prio.h"
#include "spin.h"
#include "util.h"
#include "virt.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: postcopyd [options]\n"
"\n"
"Host daemon for postcopy live migration of memfd-backed guests.\n"
"\n"
"  -c, --config FILE          configuration file (default %s)\n"
"  -s, --control-socket PATH  orchestrator RPC socket (default %s)\n"
"  -V, --vmm-socket PATH      VMM attach socket (default %s)\n"
"  -l, --log-level LEVEL      error|warning|notice|info|debug (default info)\n"
"  -n, --check-config         check the configuration and exit (-nn: and\n"
"                             print the configuration in effect)\n"
"      --check-kernel         probe the kernel's userfaultfd features and exit\n"
"  -v, --version              print the version and exit\n"
"  -h, --help                 this help\n",
	    PCD_CONFIG_FILE, PCD_CONTROL_SOCKET, PCD_VMM_SOCKET);
}

/* --check-kernel: one line per feature; 0 if all present, 1 if not. */
static int
check_kernel(void)
{
	struct probe_report r;
	int rc;

	rc = probe_kernel(&r);
	probe_report_print(&r, STDOUT_FILENO);
	if (rc < 0 && rc != -ENOTSUP)
		fprintf(stderr, "postcopyd: the kernel probe could not run: "
		    "%s\n", strerror(-rc));
	return rc == 0 ? 0 : 1;
}

/* The destination role cannot work without the userfaultfd features; the
 * source role can, so this warns instead of refusing to start. Each VMM
 * attach checks its own userfaultfd again (probe_uffd). Not being able to
 * create a userfaultfd at all means a setup error (issue 7: the service
 * runs unprivileged with access to /dev/userfaultfd): refuse to start and
 * say so, before READY=1. */
static void
probe_at_start(void)
{
	struct probe_report r;
	char why[1024];
	int rc = probe_kernel(&r);

	if (rc < 0 && !r.present[PROBE_USERFAULTFD])
		fatalx("cannot create a userfaultfd: %s. postcopyd needs "
		    "read-write access to /dev/userfaultfd (Linux >= 6.1; "
		    "owned by group userfaultfd, mode 0660, see "
		    "systemd/60-postcopyd-userfaultfd.rules) and to run in "
		    "that group", r.detail[PROBE_USERFAULTFD]);
	if (r.precopy)
		log_info("kernel %s: precopy dirty tracking (WP_ASYNC, "
		    "PAGEMAP_SCAN) present", r.release);
	else
		log_notice("precopy unavailable: %s", r.precopy_detail);
	if (rc == 0) {
		log_info("kernel %s: userfaultfd MINOR/MISSING on shmem and "
		    "UFFDIO_CONTINUE present", r.release);
		return;
	}
	probe_report_missing(&r, why, sizeof(why));
	log_warnx("destination role unavailable: %s", why);
}

/* The migration table's transition hook: libvirt follows the migration. */
static void
on_transition(void *arg, const char *id, enum mig_role role,
    enum mig_state from, enum mig_state to)
{
	struct daemon *d = arg;

	if (d->ctl != NULL)
		virt_on_state(ctl_server_virt(d->ctl), id, to);
}

static size_t
active_migrations(void *arg)
{
	struct daemon *d = arg;

	return d->migs != NULL ? mig_count_active(d->migs) : 0;
}

/* While stopping: exit once no migration runs or the bound has passed
 * (mig_table_free then fails what is left, telling its VMM why). */
static void
on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	size_t n = active_migrations(d);

	if (n == 0) {
		log_notice("no migration running: exiting");
		event_base_loopexit(d->base, NULL);
	} else if (now_ns() >= d->stop_deadline_ns) {
		log_warnx("shutdown: %zu migration%s still running after %u s "
		    "(drain_timeout): those past switchover with their state "
		    "on disk are left resumable, the rest fail", n,
		    n == 1 ? "" : "s",
		    d->cfg->drain_timeout);
		event_base_loopexit(d->base, NULL);
	} else if (n != d->stop_waiting) {
		d->stop_waiting = n;
		sdnotify_status(d->sdn, "stopping: waiting for %zu postcopy "
		    "migration%s to finish", n, n == 1 ? "" : "s");
	}
}

/* SIGTERM: take no new work (d->stopping), cancel what the state machine
 * lets us cancel (migrations that have not switched over: the guest still
 * runs on the source, the orchestrator can start them again), and give the
 * ones that switched over, whose guest needs this daemon,
 * drain_timeout to finish (Status says "draining"); what is left then is
 * left resumable where it can be (mig_table_free). */
static void
stop_begin(struct daemon *d, int sig)
{
	static const struct timeval tick = { .tv_sec = 0, .tv_usec = 200000 };
	size_t cancelled = 0;

	log_notice("signal %d: shutting down", sig);
	d->stopping = true;
	sdnotify_stopping(d->sdn);
	if (d->migs != NULL)
		cancelled = mig_cancel_on_shutdown(d->migs);
	if (cancelled > 0)
		log_notice("shutdown: cancelled %zu migration%s before "
		    "switchover; the orchestrator may start them again",
		    cancelled, cancelled == 1 ? "" : "s");
	d->stop_deadline_ns = now_ns() +
	    (uint64_t)d->cfg->drain_timeout * 1000000000ull;
	if (d->migs != NULL)
		mig_table_drain(d->migs, d->cfg->drain_timeout);
	d->stop_ev = event_new(d->base, -1, EV_PERSIST, on_stop_tick, d);
	if (d->stop_ev == NULL || event_add(d->stop_ev, &tick) < 0) {
		log_warnx("shutdown: cannot arm the stop timer: exiting now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	on_stop_tick(-1, 0, d);
}

/* Defaults, then the config file, then the command line. A missing file at
 * the default path means defaults; a missing file named with --config is
 * an error. 0 or -errno with "FILE:LINE: reason" in err. */
static int
load_config(struct daemon *d, struct config *cfg, bool explicit_file,
    char *err, size_t errlen)
{
	char why[512];
	int r;

	config_defaults(cfg);
	r = config_parse_file(d->config_file, cfg, err, errlen);
	if (r == -ENOENT && !explicit_file)
		r = 0;
	if (r < 0)
		return r;
	for (unsigned i = 0; i < d->ncli; i++) {
		if (config_set(cfg, d->cli[i][0], d->cli[i][1], why,
		    sizeof(why)) < 0) {
			snprintf(err, errlen, "command line: %s", why);
			return -EINVAL;
		}
	}
	if ((r = config_check(cfg, why, sizeof(why))) < 0)
		snprintf(err, errlen, "%.400s: %s", d->config_file, why);
	return r;
}

/* SIGHUP: parse again; on success apply what can change live. */
/* postcopyd.conf's Migrate defaults for precopy. */
static void
main_precopy_defaults(struct mig_table *t, const struct config *c)
{
	struct mig_precopy_defaults pd = {
		.precopy = c->precopy,
		.rounds = c->precopy_rounds,
		.auto_switch = c->precopy_auto,
		.max_downtime_ms = c->max_downtime_ms,
		.bulk_channels = c->bulk_channels,
		.demand_spin_us = c->demand_spin_us,
		.page_write_alias = c->page_write_alias,
	};

	mig_table_set_precopy(t, &pd);
	spin_set_always(c->demand_spin_always);
	prio_set_demand_realtime(c->demand_realtime);
}

static void
reload(struct daemon *d)
{
	struct config nc;
	char err[1024];

	if (load_config(d, &nc, true, err, sizeof(err)) < 0) {
		log_warnx("configuration not reloaded: %s", err);
		return;
	}
	if (strcmp(nc.control_socket, d->cfg->control_socket) != 0 ||
	    strcmp(nc.vmm_socket, d->cfg->vmm_socket) != 0)
		log_warnx("control_socket/vmm_socket changes take effect at "
		    "the next start");
	log_set_level(nc.log_level);
	mig_table_set_vmm_limits(d->migs, nc.vmm_unclaimed_max,
	    nc.vmm_unclaimed_timeout, nc.vmm_wait_timeout);
	mig_table_set_completed_grace(d->migs, nc.completed_grace);
	main_precopy_defaults(d->migs, &nc);
	if (d->ctl != NULL && ctl_server_reconfigure(d->ctl, &nc) < 0)
		log_warnx("control listener settings not changed");
	if (strcmp(nc.metrics_listen, d->cfg->metrics_listen) != 0) {
		metrics_close(d->metrics);
		d->metrics = NULL;
		if (nc.metrics_listen[0] != '\0' &&
		    metrics_open(d, nc.metrics_listen, &d->metrics) < 0)
			log_warnx("metrics endpoint off");
	}
	str_copy(nc.control_socket, d->cfg->control_socket,
	    sizeof(nc.control_socket));
	str_copy(nc.vmm_socket, d->cfg->vmm_socket, sizeof(nc.vmm_socket));
	*d->cfg = nc;
	log_notice("configuration reloaded from %s", d->config_file);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (d->stopping) {
			log_notice("signal %d again: exiting now", (int)sig);
			event_base_loopexit(d->base, NULL);
			break;
		}
		stop_begin(d, (int)sig);
		break;
	case SIGHUP:
		sdnotify_reloading(d->sdn);
		log_notice("SIGHUP: reloading configuration");
		reload(d);
		sdnotify_ready(d->sdn);
		break;
	}
}

/* Command-line options: -1 to go on, or the exit status. */
static int
parse_args(int argc, char **argv, struct daemon *d, int *check,
    bool *explicit_file)
{
	static const struct option opts[] = {
		{ "config",		required_argument, NULL, 'c' },
		{ "control-socket",	required_argument, NULL, 's' },
		{ "vmm-socket",		required_argument, NULL, 'V' },
		{ "log-level",		required_argument, NULL, 'l' },
		{ "check-config",	no_argument,	   NULL, 'n' },
		{ "check-kernel",	no_argument,	   NULL, 'K' },
		{ "version",		no_argument,	   NULL, 'v' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:s:V:l:nvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (str_copy(d->config_file, optarg,
			    sizeof(d->config_file)))
				fatalx("--config: path too long");
			*explicit_file = true;
			break;
		case 's':
		case 'V':
		case 'l':
			/* Checked with the config file, which they override. */
			if (d->ncli == ARRAY_SIZE(d->cli))
				fatalx("too many options");
			d->cli[d->ncli][0] = c == 's' ? "control_socket" :
			    c == 'V' ? "vmm_socket" : "log_level";
			d->cli[d->ncli++][1] = optarg;
			break;
		case 'n':
			(*check)++;
			break;
		case 'K':
			return check_kernel();
		case 'v':
			printf("postcopyd %s\n", PCD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "postcopyd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct event *sigev[3] = { NULL };
	const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct config cfg;
	char err[1024];
	static const char *const sock_names[] = { "control", "vmm" };
	int r, ctl_fd = -1, check = 0, fds[2];
	bool explicit_file = false;

	str_copy(d.control_socket, PCD_CONTROL_SOCKET, sizeof(d.control_socket));
	str_copy(d.vmm_socket, PCD_VMM_SOCKET, sizeof(d.vmm_socket));
	str_copy(d.config_file, PCD_CONFIG_FILE, sizeof(d.config_file));
	log_init("postcopyd", LOG_LVL_INFO);
	if ((r = parse_args(argc, argv, &d, &check, &explicit_file)) >= 0)
		return r;

	if (load_config(&d, &cfg, explicit_file, err, sizeof(err)) < 0) {
		if (check)
			fprintf(stderr, "%s\n", err);
		else
			log_warnx("%s", err);
		return 1;
	}
	if (check) {
		if (check > 1)
			config_dump(&cfg, stdout);
		printf("configuration OK\n");
		return 0;
	}
	d.cfg = &cfg;
	log_set_level(cfg.log_level);
	str_copy(d.control_socket, cfg.control_socket, sizeof(d.control_socket));
	str_copy(d.vmm_socket, cfg.vmm_socket, sizeof(d.vmm_socket));

	signal(SIGPIPE, SIG_IGN);
	if ((d.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		sigev[i] = evsignal_new(d.base, sigs[i], on_signal, &d);
		if (sigev[i] == NULL || event_add(sigev[i], NULL) < 0)
			fatalx("cannot install the handler for signal %d", sigs[i]);
	}

	probe_at_start();
	if (sdnotify_new(d.base, &d.sdn, err, sizeof(err)) < 0)
		fatalx("systemd notification: %s", err);
	if (sdnotify_listen_fds(sock_names, fds, ARRAY_SIZE(fds), err,
	    sizeof(err)) < 0)
		fatalx("socket activation: %s", err);
	ctl_fd = fds[0];
	if (ctl_fd >= 0)
		log_info("control socket: fd %d from socket activation", ctl_fd);

	/* The migration table owns the VMM socket's fd from here on. */
	if ((r = mig_table_new(d.base, d.vmm_socket, fds[1], &d.migs)) < 0)
		fatalx("cannot open the VMM socket %s: %s", d.vmm_socket,
		    strerror(-r));
	mig_table_set_state_dir(d.migs, cfg.state_dir, d.vmm_socket);
	mig_table_set_vmm_limits(d.migs, cfg.vmm_unclaimed_max,
	    cfg.vmm_unclaimed_timeout, cfg.vmm_wait_timeout);
	mig_table_set_completed_grace(d.migs, cfg.completed_grace);
	main_precopy_defaults(d.migs, &cfg);
	/* The control server owns ctl_fd from here on. */
	if (ctl_server_open(&d, &cfg, ctl_fd, &d.ctl) < 0)
		fatalx("cannot open the control socket %s", d.control_socket);
	ctl_fd = -1;
	mig_table_set_transition_hook(d.migs, on_transition, &d);
	if (cfg.metrics_listen[0] != '\0' &&
	    metrics_open(&d, cfg.metrics_listen, &d.metrics) < 0)
		fatalx("cannot serve metrics on %s", cfg.metrics_listen);

	sdnotify_set_counter(d.sdn, active_migrations, &d);

	log_notice("postcopyd %s started", PCD_VERSION);
	sdnotify_ready(d.sdn);
	event_base_dispatch(d.base);

	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		if (sigev[i] != NULL)
			event_free(sigev[i]);
	metrics_close(d.metrics);
	mig_table_set_transition_hook(d.migs, NULL, NULL);
	ctl_server_close(d.ctl);
	if (d.stop_ev != NULL)
		event_free(d.stop_ev);
	mig_table_free(d.migs);
	if (ctl_fd >= 0)
		close(ctl_fd);
	sdnotify_free(d.sdn);
	event_base_free(d.base);
	log_notice("postcopyd stopped");
	return 0;
}
