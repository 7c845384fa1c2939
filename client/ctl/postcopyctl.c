/* postcopyctl - command-line client of postcopyd's control RPC.
 *
 * Every RPC of service pcd.Control is a subcommand. Exit codes: 0 ok, 1 the
 * daemon answered with an error (or a watched migration did not complete),
 * 2 usage, 3 cannot connect / connection lost (man page: postcopyctl(1),
 * packaging/man/postcopyctl.1.scd, whose test fails when an option listed
 * by --help is missing there). --json is taken before or after the
 * subcommand; colours only on a terminal, never with NO_COLOR or
 * TERM=dumb; the watch progress bar only on a terminal.
 *
 * The subcommands are the rows of cmds[] (name, handler, operand count,
 * synopsis, help); sub_parse checks a command line against its row, and
 * ctl_unary makes the call and hands the reply to the command's printer.
 * A new subcommand is a row plus its handler (and, for a new option, a
 * line in sub_parse and in the man page).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "common.pb-c.h"
#include "control.pb-c.h"
#include "daemon.h"
#include "pbjson.h"
#include "rpc_client.h"
#include "status.h"
#include "util.h"
#include "wire.h"

#define EX_OK		0
#define EX_RPC		1
#define EX_USAGE	2
#define EX_CONN		3

struct opts {
	const char	*socket;
	const char	*connect;	/* host:port, with tls_dir */
	const char	*tls_dir;
	bool		 json;
	bool		 json_own;	/* the command prints its JSON */
	int		 timeout_ms;
};

/* A subcommand's options (each belongs to the commands whose synopsis
 * names it). */
struct subopt {
	const char	*listen;
	const char	*tls_dir;
	const char	*peer;
	const char	*lv_uri;
	const char	*lv_dom;
	const char	*bandwidth;
	int		 mode;		/* pcd.MigrateMode */
	unsigned	 rounds;
	bool		 auto_switch;
	unsigned	 max_downtime_ms;
	unsigned	 bulk_channels;
	bool		 libvirt;
	bool		 watch;
	unsigned	 interval_ms;
	bool		 dest_completed;
};

/* A subcommand's parsed command line, handed to its handler. */
struct sub {
	struct opts	*o;
	struct subopt	 so;
	char		**arg;		/* the operands */
	int		 narg;
};

/* One subcommand: a row of cmds[] (at the end of the file). The synopsis
 * lists its operands and the options it takes (sub_parse refuses the
 * others); the handler runs after the command line has been checked. */
struct cmd {
	const char	*name;
	int		(*fn)(struct sub *);
	int		 min_args, max_args;	/* operands */
	const char	*args;		/* synopsis */
	const char	*help;
};

/* Set once in main: stdout is a terminal that wants colours. */
static bool colour;

/* The SGR sequence that colours a state name ("" without colours). */
static const char *
state_on(const char *state)
{
	if (!colour)
		return "";
	if (strcmp(state, "completed") == 0)
		return "\033[32m";
	if (strcmp(state, "failed") == 0)
		return "\033[31m";
	if (strcmp(state, "cancelled") == 0 ||
	    strcmp(state, "precopy-paused") == 0 ||
	    strcmp(state, "postcopy-paused") == 0)
		return "\033[33m";
	return "";
}

static const char *
state_off(const char *state)
{
	return state_on(state)[0] != '\0' ? "\033[0m" : "";
}

/* Colours on stdout: a terminal, NO_COLOR unset or empty
 * (https://no-color.org), TERM not "dumb". */
static bool
colour_wanted(void)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");

	if (!isatty(STDOUT_FILENO) || (no != NULL && no[0] != '\0'))
		return false;
	return term == NULL || strcmp(term, "dumb") != 0;
}

static const char *
progname(void)
{
	return "postcopyctl";
}

static void
usage_main(FILE *f);

/* ---- formatting ---- */

static const char *
fmt_bytes(char *buf, size_t len, double v)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t i = 0;

	while (v >= 1024 && i + 1 < ARRAY_SIZE(u)) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i == 0 ? "%.0f %s" : "%.2f %s", v, u[i]);
	return buf;
}

static const char *
fmt_rate(char *buf, size_t len, double bps)
{
	if (bps >= 1e9)
		snprintf(buf, len, "%.2f GB/s", bps / 1e9);
	else if (bps >= 1e6)
		snprintf(buf, len, "%.1f MB/s", bps / 1e6);
	else
		snprintf(buf, len, "%.0f kB/s", bps / 1e3);
	return buf;
}

static const char *
fmt_ms(char *buf, size_t len, uint64_t ms)
{
	if (ms >= 60000)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", ms / 60000,
		    ms / 1000 % 60);
	else
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	return buf;
}

static double
pct_valid(const Pcd__MigrationInfo *mi)
{
	if (mi->pages_total == 0)
		return 0;
	return 100.0 * (double)mi->pages_valid / (double)mi->pages_total;
}

/* ---- connection and calls ---- */

static int
ctl_connect(struct opts *o, struct rpc_client **c)
{
	char err[512];
	int r;

	if (o->connect != NULL)
		r = rpc_client_connect(o->connect, o->tls_dir, c, err,
		    sizeof(err));
	else
		r = rpc_client_connect(o->socket, NULL, c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", progname(), err);
		return EX_CONN;
	}
	return EX_OK;
}

static void
print_json(const ProtobufCMessage *m)
{
	pbjson_write(stdout, m);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Prints a successful reply (nothing but its verdict with --json: the
 * reply was printed as JSON, unless the command prints its own) and
 * returns the exit code. */
typedef int (*reply_fn)(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep);

/* One unary call: connect, call, report an error status, print the reply
 * (pr may be NULL). Returns the exit code. */
static int
ctl_unary(const struct sub *s, unsigned method, const ProtobufCMessage *req,
    reply_fn pr)
{
	const char *mname = rpc_method_get(method)->name;
	struct rpc_client *c;
	struct rpc_answer a;
	char err[512];
	int rc, r;

	memset(&a, 0, sizeof(a));
	if ((rc = ctl_connect(s->o, &c)) != EX_OK)
		return rc;
	r = rpc_client_call(c, method, req, s->o->timeout_ms, &a, err,
	    sizeof(err));
	rpc_client_close(c);
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s\n", progname(), mname, err);
		rc = r == -EPROTO || r == -EMSGSIZE ? EX_RPC : EX_CONN;
	} else if (s->o->json && !s->o->json_own) {
		print_json(a.msg);
	}
	if (r >= 0 && a.code != STATUS_OK) {
		fprintf(stderr, "%s: %s: %s: %s\n", progname(), mname,
		    status_name(a.code), a.message);
		rc = EX_RPC;
	} else if (r >= 0 && pr != NULL) {
		rc = pr(s, req, a.msg);
	}
	rpc_answer_clear(&a);
	return rc;
}

/* ---- option parsing of subcommands ---- */

static int
sub_usage(const struct cmd *c, FILE *f)
{
	fprintf(f, "usage: %s [global options] %s%s%s [--json]\n\n%s\n",
	    progname(), c->name, c->args[0] != '\0' ? " " : "", c->args,
	    c->help);
	return f == stdout ? EX_OK : EX_USAGE;
}

/* Whether a command's synopsis lists flag as a whole word. */
static bool
args_have(const char *args, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = args; (p = strstr(p, flag)) != NULL; p += n)
		if (p[n] == ' ' || p[n] == ']' || p[n] == '\0')
			return true;
	return false;
}

/* optarg as a number in 1..max; -1 (said why) otherwise. */
static int
sub_uint(const char *name, const char *flag, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(optarg, &end, 10);

	if (optarg[0] == '\0' || *end != '\0' || v == 0 || v > max) {
		fprintf(stderr, "%s: %s: %s wants a number in 1..%u\n",
		    progname(), name, flag, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* Parses command c's options into s and checks it got its number of
 * operands. Returns -1 to go on, otherwise the exit code (usage printed). */
static int
sub_parse(const struct cmd *c, int argc, char **argv, struct sub *s)
{
	static const struct option lo[] = {
		{ "listen",	required_argument, NULL, 'L' },
		{ "tls-dir",	required_argument, NULL, 't' },
		{ "peer-name",	required_argument, NULL, 'p' },
		{ "libvirt-uri", required_argument, NULL, 'u' },
		{ "domain",	required_argument, NULL, 'd' },
		{ "bandwidth",	required_argument, NULL, 'b' },
		{ "libvirt",	no_argument,	   NULL, 'l' },
		{ "watch",	no_argument,	   NULL, 'w' },
		{ "interval",	required_argument, NULL, 'i' },
		{ "precopy",	no_argument,	   NULL, 'P' },
		{ "postcopy-only", no_argument,	   NULL, 'O' },
		{ "rounds",	required_argument, NULL, 'r' },
		{ "auto",	no_argument,	   NULL, 'a' },
		{ "max-downtime", required_argument, NULL, 'D' },
		{ "destination-completed", no_argument, NULL, 'C' },
		{ "bulk-channels", required_argument, NULL, 'B' },
		{ "json",	no_argument,	   NULL, 'j' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct subopt *so = &s->so;
	const char *name = c->name;
	int ch;

	optind = 0;	/* glibc: full re-initialisation, argv[0] skipped */
	while ((ch = getopt_long(argc, argv, "hj", lo, NULL)) != -1) {
		const char *flag = NULL;

		switch (ch) {
		case 'L': so->listen = optarg; flag = "--listen"; break;
		case 't': so->tls_dir = optarg; flag = "--tls-dir"; break;
		case 'p': so->peer = optarg; flag = "--peer-name"; break;
		case 'u': so->lv_uri = optarg; flag = "--libvirt-uri"; break;
		case 'd': so->lv_dom = optarg; flag = "--domain"; break;
		case 'b': so->bandwidth = optarg; flag = "--bandwidth"; break;
		case 'l': so->libvirt = true; flag = "--libvirt"; break;
		case 'w': so->watch = true; flag = "--watch"; break;
		case 'i':
			flag = "--interval";
			if (sub_uint(name, flag, 60000, &so->interval_ms) < 0)
				return EX_USAGE;
			break;
		case 'P': so->mode = PCD__MIGRATE_MODE__MIGRATE_MODE_PRECOPY;
			flag = "--precopy"; break;
		case 'O':
			so->mode = PCD__MIGRATE_MODE__MIGRATE_MODE_POSTCOPY_ONLY;
			flag = "--postcopy-only"; break;
		case 'a': so->auto_switch = true; flag = "--auto"; break;
		case 'C': so->dest_completed = true;
			flag = "--destination-completed"; break;
		case 'r':
			flag = "--rounds";
			if (sub_uint(name, flag, 1000, &so->rounds) < 0)
				return EX_USAGE;
			break;
		case 'D':
			flag = "--max-downtime";
			if (sub_uint(name, flag, 600000, &so->max_downtime_ms) < 0)
				return EX_USAGE;
			break;
		case 'B':
			flag = "--bulk-channels";
			if (sub_uint(name, flag, WIRE_BULK_CHANNELS_MAX,
			    &so->bulk_channels) < 0)
				return EX_USAGE;
			break;
		case 'j':	/* every subcommand takes it */
			s->o->json = true;
			continue;
		case 'h':
			return sub_usage(c, stdout);
		default:
			return sub_usage(c, stderr);
		}
		/* Each option belongs to some subcommands only. */
		if (!args_have(c->args, flag)) {
			fprintf(stderr, "%s: %s does not take %s\n",
			    progname(), name, flag);
			return sub_usage(c, stderr);
		}
	}
	if ((so->lv_uri == NULL) != (so->lv_dom == NULL)) {
		fprintf(stderr, "%s: %s: --libvirt-uri and --domain go "
		    "together\n", progname(), name);
		return EX_USAGE;
	}
	if (argc - optind < c->min_args || argc - optind > c->max_args) {
		fprintf(stderr, "%s: %s: wrong number of arguments\n",
		    progname(), name);
		return sub_usage(c, stderr);
	}
	s->arg = argv + optind;
	s->narg = argc - optind;
	return -1;
}

/* ---- subcommands ---- */

/* The TLS profile and libvirt domain options prepare and migrate share. */
static void
sub_tls_libvirt(const struct subopt *so, Pcd__TlsProfile *tls,
    Pcd__LibvirtDomain *lv, Pcd__LibvirtDomain **lvp)
{
	tls->dir = (char *)(so->tls_dir != NULL ? so->tls_dir : "");
	tls->peer_name = (char *)(so->peer != NULL ? so->peer : "");
	if (so->lv_uri != NULL) {
		lv->uri = (char *)so->lv_uri;
		lv->domain = (char *)so->lv_dom;
		*lvp = lv;
	}
}

/* A bulk bandwidth operand or option: a size in bytes/s. */
static int
sub_bandwidth(const char *cmd, const char *what, const char *arg,
    uint64_t *bps)
{
	if (parse_size(arg, bps) == 0)
		return EX_OK;
	fprintf(stderr, "%s: %s: %s'%s' is not a size (bytes/s: 100M, 1G, "
	    "0 = unlimited)\n", progname(), cmd, what, arg);
	return EX_USAGE;
}

static int
print_prepare(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	if (!s->o->json)
		printf("migration %s: prepared, listening on %s\n",
		    ((const Pcd__PrepareRequest *)req)->id,
		    ((const Pcd__PrepareReply *)rep)->listen);
	return EX_OK;
}

static int
cmd_prepare(struct sub *s)
{
	Pcd__PrepareRequest req = PCD__PREPARE_REQUEST__INIT;
	Pcd__TlsProfile tls = PCD__TLS_PROFILE__INIT;
	Pcd__LibvirtDomain lv = PCD__LIBVIRT_DOMAIN__INIT;

	req.id = s->arg[0];
	req.listen = (char *)(s->so.listen != NULL ? s->so.listen :
	    "0.0.0.0:0");
	req.tls = &tls;
	sub_tls_libvirt(&s->so, &tls, &lv, &req.libvirt);
	return ctl_unary(s, RPC_M_PREPARE, &req.base, print_prepare);
}

static int cmd_watch_id(struct opts *o, const char *id, unsigned interval);

static int
print_migrate(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	const Pcd__MigrateRequest *m = (const Pcd__MigrateRequest *)req;
	char buf[32];

	(void)rep;
	if (!s->o->json)
		printf("migration %s: started to %s (bulk bandwidth %s)\n",
		    m->id, m->dest, m->bandwidth_bps == 0 ? "unlimited" :
		    fmt_rate(buf, sizeof(buf), (double)m->bandwidth_bps));
	return EX_OK;
}

static int
cmd_migrate(struct sub *s)
{
	Pcd__MigrateRequest req = PCD__MIGRATE_REQUEST__INIT;
	Pcd__TlsProfile tls = PCD__TLS_PROFILE__INIT;
	Pcd__LibvirtDomain lv = PCD__LIBVIRT_DOMAIN__INIT;
	int rc;

	req.id = s->arg[0];
	req.dest = s->arg[1];
	if (s->so.bandwidth != NULL && (rc = sub_bandwidth("migrate",
	    "--bandwidth ", s->so.bandwidth, &req.bandwidth_bps)) != EX_OK)
		return rc;
	if (s->so.mode == PCD__MIGRATE_MODE__MIGRATE_MODE_POSTCOPY_ONLY &&
	    (s->so.rounds || s->so.auto_switch || s->so.max_downtime_ms)) {
		fprintf(stderr, "%s: migrate: --postcopy-only runs no precopy "
		    "rounds (--rounds, --auto, --max-downtime)\n", progname());
		return EX_USAGE;
	}
	req.mode = (Pcd__MigrateMode)s->so.mode;
	req.rounds = s->so.rounds;
	req.auto_switch = s->so.auto_switch;
	req.max_downtime_ms = s->so.max_downtime_ms;
	req.bulk_channels = s->so.bulk_channels;
	req.tls = &tls;
	sub_tls_libvirt(&s->so, &tls, &lv, &req.libvirt);
	rc = ctl_unary(s, RPC_M_MIGRATE, &req.base, print_migrate);
	if (rc == EX_OK && s->so.watch)
		return cmd_watch_id(s->o, req.id, 0);
	return rc;
}
/* Rebuilds libvirt typed parameters from the reply, so the names are read
 * back with libvirt's own getters, like a libvirt client would. */
static int
job_params(const Pcd__MigrationInfo *mi, virTypedParameterPtr *out, int *n)
{
	virTypedParameterPtr p = NULL;
	int max = 0, r = 0;

	*n = 0;
	for (size_t i = 0; i < mi->n_job && r == 0; i++) {
		const Pcd__TypedParam *t = mi->job[i];

		switch (t->value_case) {
		case PCD__TYPED_PARAM__VALUE_I:
			r = t->type == VIR_TYPED_PARAM_INT ?
			    virTypedParamsAddInt(&p, n, &max, t->field,
			    (int)t->i) : virTypedParamsAddLLong(&p, n, &max,
			    t->field, t->i);
			break;
		case PCD__TYPED_PARAM__VALUE_U:
			r = virTypedParamsAddULLong(&p, n, &max, t->field,
			    t->u);
			break;
		case PCD__TYPED_PARAM__VALUE_D:
			r = virTypedParamsAddDouble(&p, n, &max, t->field,
			    t->d);
			break;
		case PCD__TYPED_PARAM__VALUE_B:
			r = virTypedParamsAddBoolean(&p, n, &max, t->field,
			    t->b);
			break;
		case PCD__TYPED_PARAM__VALUE_S:
			r = virTypedParamsAddString(&p, n, &max, t->field,
			    t->s);
			break;
		default:
			break;
		}
	}
	if (r < 0) {
		virTypedParamsFree(p, *n);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

static const char *
job_type_name(int t)
{
	switch (t) {
	case VIR_DOMAIN_JOB_BOUNDED:	return "Bounded";
	case VIR_DOMAIN_JOB_UNBOUNDED:	return "Unbounded";
	case VIR_DOMAIN_JOB_COMPLETED:	return "Completed";
	case VIR_DOMAIN_JOB_FAILED:	return "Failed";
	case VIR_DOMAIN_JOB_CANCELLED:	return "Cancelled";
	default:			return "None";
	}
}

static void
print_domjobinfo(const Pcd__MigrationInfo *mi)
{
	static const struct { const char *field, *label, *unit; } rows[] = {
		{ VIR_DOMAIN_JOB_TIME_ELAPSED, "Time elapsed", "ms" },
		{ VIR_DOMAIN_JOB_DATA_PROCESSED, "Data processed", "B" },
		{ VIR_DOMAIN_JOB_DATA_REMAINING, "Data remaining", "B" },
		{ VIR_DOMAIN_JOB_DATA_TOTAL, "Data total", "B" },
		{ VIR_DOMAIN_JOB_MEMORY_PROCESSED, "Memory processed", "B" },
		{ VIR_DOMAIN_JOB_MEMORY_REMAINING, "Memory remaining", "B" },
		{ VIR_DOMAIN_JOB_MEMORY_TOTAL, "Memory total", "B" },
		{ VIR_DOMAIN_JOB_MEMORY_BPS, "Memory bandwidth", "B/s" },
		{ VIR_DOMAIN_JOB_MEMORY_CONSTANT, "Constant pages", "" },
		{ VIR_DOMAIN_JOB_MEMORY_NORMAL, "Normal pages", "" },
		{ VIR_DOMAIN_JOB_MEMORY_NORMAL_BYTES, "Normal data", "B" },
		{ VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, "Page size", "B" },
		{ VIR_DOMAIN_JOB_DOWNTIME, "Total downtime", "ms" },
		{ VIR_DOMAIN_JOB_SETUP_TIME, "Setup time", "ms" },
		{ VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS, "Postcopy requests", "" },
	};
	virTypedParameterPtr p = NULL;
	unsigned long long v;
	const char *s;
	char buf[32];
	int n = 0, op = 0, ok;

	if (job_params(mi, &p, &n) < 0)
		return;
	printf("%-22s%s\n", "Migration:", mi->id);
	printf("%-22s%s\n", "Job type:", job_type_name(mi->job_type));
	if (virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op) == 1)
		printf("%-22s%s\n", "Operation:",
		    op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN ?
		    "Incoming migration" : "Outgoing migration");
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		if (virTypedParamsGetULLong(p, n, rows[i].field, &v) != 1)
			continue;
		snprintf(buf, sizeof(buf), "%s:", rows[i].label);
		if (rows[i].unit[0] == 'B') {
			char hb[32];

			printf("%-22s%s%s\n", buf, fmt_bytes(hb, sizeof(hb),
			    (double)v), rows[i].unit[1] == '/' ? "/s" : "");
		} else if (rows[i].unit[0] != '\0') {
			printf("%-22s%-15llu%s\n", buf, v, rows[i].unit);
		} else {
			printf("%-22s%llu\n", buf, v);
		}
	}
	if (virTypedParamsGetBoolean(p, n, VIR_DOMAIN_JOB_SUCCESS, &ok) == 1)
		printf("%-22s%s\n", "Success:", ok ? "yes" : "no");
	if (virTypedParamsGetString(p, n, VIR_DOMAIN_JOB_ERRMSG, &s) == 1)
		printf("%-22s%s\n", "Error message:", s);
	printf("%-22s%" PRIu64 "\n", "Remote faults:", mi->faults_remote);
	printf("%-22s%" PRIu64 "\n", "Local faults:", mi->faults_local);
	printf("%-22s%" PRIu64 " / %" PRIu64 " / %" PRIu64 " us\n",
	    "Fault p50/p99/p999:", mi->lat_p50_us, mi->lat_p99_us,
	    mi->lat_p999_us);
	virTypedParamsFree(p, n);
}

/* status --libvirt --json: one flat object per migration, libvirt names. */
static void
print_domjobinfo_json(const Pcd__MigrationInfo *mi)
{
	printf("{\"id\":");
	pbjson_string(stdout, mi->id);
	printf(",\"job_type\":%d", mi->job_type);
	for (size_t i = 0; i < mi->n_job; i++) {
		const Pcd__TypedParam *t = mi->job[i];

		putchar(',');
		pbjson_string(stdout, t->field);
		putchar(':');
		switch (t->value_case) {
		case PCD__TYPED_PARAM__VALUE_I:
			printf("%" PRId64, t->i);
			break;
		case PCD__TYPED_PARAM__VALUE_U:
			printf("%" PRIu64, t->u);
			break;
		case PCD__TYPED_PARAM__VALUE_D:
			printf("%.17g", isfinite(t->d) ? t->d : 0.0);
			break;
		case PCD__TYPED_PARAM__VALUE_B:
			printf("%s", t->b ? "true" : "false");
			break;
		case PCD__TYPED_PARAM__VALUE_S:
			pbjson_string(stdout, t->s);
			break;
		default:
			printf("null");
		}
	}
	printf("}\n");
}

static void
print_detail(const Pcd__MigrationInfo *mi)
{
	char b1[32], b2[32];

	printf("%-20s%s\n", "id:", mi->id);
	printf("%-20s%s\n", "role:", mi->role);
	printf("%-20s%s%s%s%s%s\n", "state:", state_on(mi->state), mi->state,
	    state_off(mi->state), mi->errmsg[0] != '\0' ? " - " : "",
	    mi->errmsg);
	printf("%-20s%s\n", "switched over:", mi->switched_over ? "yes (the "
	    "guest runs on the destination)" : "no");
	if (mi->draining[0] != '\0')
		printf("%-20s%s\n", "draining:", mi->draining);
	if (mi->phase[0] != '\0')
		printf("%-20s%s, round %" PRIu32 ", %" PRIu64 " pages sent "
		    "(%" PRIu64 " in the last round), dirty rate %" PRIu64
		    " pages/s, %" PRIu64 " remaining%s%s\n", "phase:",
		    mi->phase, mi->iteration, mi->precopy_pages_sent,
		    mi->precopy_last_round_pages, mi->dirty_rate,
		    mi->remaining, mi->precopy_note[0] ? " - " : "",
		    mi->precopy_note);
	if (mi->listen[0] != '\0')
		printf("%-20s%s\n", "listen:", mi->listen);
	printf("%-20s%s\n", "vmm attached:", mi->vmm_attached ? "yes" : "no");
	printf("%-20s%" PRIu64 " of %" PRIu64 " (%.1f%%), %" PRIu64
	    " zero\n", "pages valid:", mi->pages_valid, mi->pages_total,
	    pct_valid(mi), mi->pages_zero);
	printf("%-20s%" PRIu64 " bulk, %" PRIu64 " urgent\n", "pages sent:",
	    mi->pages_sent_bulk, mi->pages_sent_urgent);
	printf("%-20s%s\n", "transferred:", fmt_bytes(b1, sizeof(b1),
	    (double)mi->bytes_transferred));
	printf("%-20s%s\n", "bulk limit:", mi->bandwidth_bps == 0 ?
	    "unlimited" : fmt_rate(b2, sizeof(b2), (double)mi->bandwidth_bps));
	printf("%-20s%" PRIu64 " remote, %" PRIu64 " local, %" PRIu64
	    " page requests\n", "faults:", mi->faults_remote,
	    mi->faults_local, mi->page_requests);
	if (mi->pages_verified != 0 || mi->pages_mismatched != 0)
		printf("%-20s%" PRIu64 " pages match the source, %" PRIu64
		    " mismatched\n", "verified:", mi->pages_verified,
		    mi->pages_mismatched);
	if (mi->refused[0] != '\0')
		printf("%-20s%s\n", "last refused peer:", mi->refused);
	if (mi->reconnects != 0)
		printf("%-20s%" PRIu64 " (channels resumed after a loss)\n",
		    "reconnects:", mi->reconnects);
	printf("%-20sp50 %" PRIu64 " us, p99 %" PRIu64 " us, p999 %" PRIu64
	    " us, max %" PRIu64 " us\n", "fault latency:", mi->lat_p50_us,
	    mi->lat_p99_us, mi->lat_p999_us, mi->lat_max_us);
	printf("%-20s%s elapsed, setup %" PRIu64 " ms, downtime %" PRIu64
	    " ms\n", "time:", fmt_ms(b1, sizeof(b1), mi->elapsed_ms),
	    mi->setup_ms, mi->downtime_ms);
	if (mi->libvirt_domain[0] != '\0')
		printf("%-20s%s (%s)%s%s\n", "libvirt domain:",
		    mi->libvirt_domain, mi->libvirt_state[0] != '\0' ?
		    mi->libvirt_state : "unknown",
		    mi->libvirt_error[0] != '\0' ? ": " : "",
		    mi->libvirt_error);
}

static void
print_status_table(const Pcd__StatusReply *rep)
{
	printf("%-20s %-11s %-10s %7s %10s %11s %13s %9s %8s\n", "ID",
	    "ROLE", "STATE", "VALID", "PAGES", "SENT", "FAULTS R/L",
	    "P99", "ELAPSED");
	for (size_t k = 0; k < rep->n_migrations; k++) {
		const Pcd__MigrationInfo *mi = rep->migrations[k];
		char b1[32], b2[32], b3[32];

		snprintf(b3, sizeof(b3), "%" PRIu64 "/%" PRIu64,
		    mi->faults_remote, mi->faults_local);
		printf("%-20s %-11s %s%-10s%s %6.1f%% %10" PRIu64
		    " %11s %13s %6" PRIu64 "us %8s\n", mi->id, mi->role,
		    state_on(mi->state), mi->state,
		    state_off(mi->state), pct_valid(mi), mi->pages_total,
		    fmt_bytes(b1, sizeof(b1),
		    (double)mi->bytes_transferred), b3, mi->lat_p99_us,
		    fmt_ms(b2, sizeof(b2), mi->elapsed_ms));
	}
	if (rep->n_migrations == 0)
		printf("(no migrations)\n");
}

static int
print_status(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *reply)
{
	const Pcd__StatusReply *rep = (const Pcd__StatusReply *)reply;
	const char *id = ((const Pcd__StatusRequest *)req)->id;
	bool json = s->o->json;

	if (s->so.libvirt) {
		for (size_t k = 0; k < rep->n_migrations; k++) {
			if (json) {
				print_domjobinfo_json(rep->migrations[k]);
			} else {
				if (k > 0)
					putchar('\n');
				print_domjobinfo(rep->migrations[k]);
			}
		}
	} else if (!json && id[0] != '\0' && rep->n_migrations == 1) {
		print_detail(rep->migrations[0]);
	} else if (!json) {
		print_status_table(rep);
	}
	return EX_OK;
}

static int
cmd_status(struct sub *s)
{
	Pcd__StatusRequest req = PCD__STATUS_REQUEST__INIT;

	req.id = s->narg == 1 ? s->arg[0] : "";
	s->o->json_own = s->so.libvirt;	/* printed flattened */
	return ctl_unary(s, RPC_M_STATUS, &req.base, print_status);
}

/* Every migration's id, one per line (shell completion reads it). */
static int
print_list(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *reply)
{
	const Pcd__StatusReply *rep = (const Pcd__StatusReply *)reply;

	(void)req;
	if (!s->o->json)
		for (size_t k = 0; k < rep->n_migrations; k++)
			printf("%s\n", rep->migrations[k]->id);
	return EX_OK;
}

static int
cmd_list(struct sub *s)
{
	Pcd__StatusRequest req = PCD__STATUS_REQUEST__INIT;

	req.id = "";
	return ctl_unary(s, RPC_M_STATUS, &req.base, print_list);
}
static int
print_cancel(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	const Pcd__CancelRequest *rq = (const Pcd__CancelRequest *)req;

	if (!s->o->json)
		printf("migration %s: %s (state %s)\n", rq->id,
		    rq->destination_completed ? "ended: the destination "
		    "completed it" : "cancelled",
		    ((const Pcd__CancelReply *)rep)->state);
	return EX_OK;
}

static int
cmd_cancel(struct sub *s)
{
	Pcd__CancelRequest req = PCD__CANCEL_REQUEST__INIT;

	req.id = s->arg[0];
	req.destination_completed = s->so.dest_completed;
	return ctl_unary(s, RPC_M_CANCEL, &req.base, print_cancel);
}
static int
print_resume(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	if (!s->o->json)
		printf("migration %s: resume requested (state %s)\n",
		    ((const Pcd__ResumeRequest *)req)->id,
		    ((const Pcd__ResumeReply *)rep)->state);
	return EX_OK;
}

static int
cmd_resume(struct sub *s)
{
	Pcd__ResumeRequest req = PCD__RESUME_REQUEST__INIT;

	req.id = s->arg[0];
	if (s->narg > 1)
		req.dest = s->arg[1];
	return ctl_unary(s, RPC_M_RESUME, &req.base, print_resume);
}
static int
print_start_postcopy(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	if (!s->o->json)
		printf("migration %s: switching to postcopy (state %s)\n",
		    ((const Pcd__StartPostcopyRequest *)req)->id,
		    ((const Pcd__StartPostcopyReply *)rep)->state);
	return EX_OK;
}

static int
cmd_start_postcopy(struct sub *s)
{
	Pcd__StartPostcopyRequest req = PCD__START_POSTCOPY_REQUEST__INIT;

	req.id = s->arg[0];
	return ctl_unary(s, RPC_M_START_POSTCOPY, &req.base,
	    print_start_postcopy);
}

static int
print_set_bandwidth(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *rep)
{
	const Pcd__SetBandwidthRequest *m =
	    (const Pcd__SetBandwidthRequest *)req;
	char buf[32];

	(void)rep;
	if (!s->o->json)
		printf("migration %s: bulk bandwidth limit %s\n", m->id,
		    m->bandwidth_bps == 0 ? "removed" : fmt_rate(buf,
		    sizeof(buf), (double)m->bandwidth_bps));
	return EX_OK;
}

static int
cmd_set_bandwidth(struct sub *s)
{
	Pcd__SetBandwidthRequest req = PCD__SET_BANDWIDTH_REQUEST__INIT;
	int rc;

	req.id = s->arg[0];
	if ((rc = sub_bandwidth("set-bandwidth", "", s->arg[1],
	    &req.bandwidth_bps)) != EX_OK)
		return rc;
	return ctl_unary(s, RPC_M_SET_BANDWIDTH, &req.base,
	    print_set_bandwidth);
}
static int
print_version(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *reply)
{
	const Pcd__VersionReply *rep = (const Pcd__VersionReply *)reply;

	(void)req;
	if (s->o->json)
		return EX_OK;
	printf("postcopyctl %s (control protocol %d)\n", PCD_VERSION,
	    CONTROL_PROTOCOL);
	printf("postcopyd %s (control protocol %u), %u of %u migrations "
	    "active\n", rep->version, rep->protocol, rep->active_migrations,
	    rep->max_migrations);
	return EX_OK;
}

static int
cmd_version(struct sub *s)
{
	Pcd__VersionRequest req = PCD__VERSION_REQUEST__INIT;

	return ctl_unary(s, RPC_M_VERSION, &req.base, print_version);
}
/* Exit 1 when the kernel lacks what postcopy needs (with --json too). */
static int
print_check_kernel(const struct sub *s, const ProtobufCMessage *req,
    const ProtobufCMessage *reply)
{
	const Pcd__CheckKernelReply *rep = (const Pcd__CheckKernelReply *)reply;

	(void)req;
	if (!s->o->json) {
		printf("kernel %s\n", rep->release);
		for (size_t k = 0; k < rep->n_features; k++)
			printf("  %-28s %-8s %s\n", rep->features[k]->name,
			    rep->features[k]->present ? "present" : "MISSING",
			    rep->features[k]->detail);
		printf("%s\n", rep->summary);
	}
	return rep->ok ? EX_OK : EX_RPC;
}

static int
cmd_check_kernel(struct sub *s)
{
	Pcd__CheckKernelRequest req = PCD__CHECK_KERNEL_REQUEST__INIT;

	return ctl_unary(s, RPC_M_CHECK_KERNEL, &req.base, print_check_kernel);
}
/* ---- watch ---- */

struct watch_rate {
	uint64_t	ms;
	uint64_t	bytes;
	uint64_t	faults;
	uint64_t	valid;
	double		bps, fps, pps;	/* smoothed */
	bool		have;
};

static void
watch_rates(struct watch_rate *w, const Pcd__MigrationInfo *mi)
{
	if (w->have && mi->elapsed_ms > w->ms) {
		double dt = (double)(mi->elapsed_ms - w->ms) / 1000;
		double bps = (double)(mi->bytes_transferred - w->bytes) / dt;
		double fps = (double)(mi->faults_remote + mi->faults_local -
		    w->faults) / dt;
		double pps = (double)(mi->pages_valid - w->valid) / dt;

		w->bps = w->bps == 0 ? bps : 0.5 * w->bps + 0.5 * bps;
		w->fps = w->fps == 0 ? fps : 0.5 * w->fps + 0.5 * fps;
		w->pps = w->pps == 0 ? pps : 0.5 * w->pps + 0.5 * pps;
	}
	if (!w->have || mi->elapsed_ms > w->ms) {
		w->ms = mi->elapsed_ms;
		w->bytes = mi->bytes_transferred;
		w->faults = mi->faults_remote + mi->faults_local;
		w->valid = mi->pages_valid;
		w->have = true;
	}
}

static void
watch_line(const Pcd__MigrationInfo *mi, const struct watch_rate *w,
    bool tty)
{
	char rate[32], left[32] = "-", phase[80] = "";
	double pct = pct_valid(mi);
	int width = 30, fill = (int)(pct / 100 * width + 0.5);

	if (w->pps > 0 && mi->pages_total > mi->pages_valid)
		fmt_ms(left, sizeof(left), (uint64_t)((double)(mi->pages_total -
		    mi->pages_valid) / w->pps * 1000));
	fmt_rate(rate, sizeof(rate), w->bps);
	/* Precopy: the phase and the round. */
	if (mi->phase[0] != '\0')
		snprintf(phase, sizeof(phase), " %s round %" PRIu32, mi->phase,
		    mi->iteration);
	if (tty) {
		printf("\r\033[K[");
		for (int k = 0; k < width; k++)
			putchar(k < fill ? '#' : '.');
		printf("] %5.1f%%  %-11s %6.0f faults/s  p99 %" PRIu64
		    " us  left %s  %s%s%s%s", pct, rate, w->fps, mi->lat_p99_us,
		    left, state_on(mi->state), mi->state, state_off(mi->state),
		    phase);
	} else {
		printf("%s %s %.1f%% %s %.0f faults/s p99 %" PRIu64
		    " us left %s%s\n", mi->id, mi->state, pct, rate, w->fps,
		    mi->lat_p99_us, left, phase);
	}
	fflush(stdout);
}

static void
watch_summary(const Pcd__MigrationInfo *mi)
{
	char b1[32], b2[32], b3[32];
	double secs = (double)mi->elapsed_ms / 1000;
	double guest = (double)(mi->pages_total * mi->page_size);

	/* One definition of throughput everywhere (postcopy-demo, the
	 * bench's effective rate): guest bytes over the time from migrate
	 * to complete, with the wire rate beside it. */
	printf("migration %s (%s) %s in %s: %s of guest memory, %s "
	    "transferred\n", mi->id, mi->role, mi->state,
	    fmt_ms(b1, sizeof(b1), mi->elapsed_ms), fmt_bytes(b2, sizeof(b2),
	    guest), fmt_bytes(b3, sizeof(b3), (double)mi->bytes_transferred));
	if (secs > 0)
		printf("  throughput %.1f MiB/s of guest memory (%.2f Gbit/s "
		    "on the wire)\n", guest / 1048576 / secs,
		    (double)mi->bytes_transferred * 8 / 1e9 / secs);
	printf("  pages: %" PRIu64 " valid of %" PRIu64 ", %" PRIu64 " zero, %"
	    PRIu64 " bulk, %" PRIu64 " urgent\n", mi->pages_valid,
	    mi->pages_total, mi->pages_zero, mi->pages_sent_bulk,
	    mi->pages_sent_urgent);
	printf("  faults: %" PRIu64 " remote, %" PRIu64 " local; latency p50 %"
	    PRIu64 " us, p99 %" PRIu64 " us, p999 %" PRIu64 " us, max %" PRIu64
	    " us\n", mi->faults_remote, mi->faults_local, mi->lat_p50_us,
	    mi->lat_p99_us, mi->lat_p999_us, mi->lat_max_us);
	printf("  setup %" PRIu64 " ms, downtime %" PRIu64 " ms\n",
	    mi->setup_ms, mi->downtime_ms);
	if (mi->phase[0] != '\0')
		printf("  phase %s: %" PRIu32 " precopy rounds, %" PRIu64 " pages "
		    "sent by them, %" PRIu64 " written again, %" PRIu64 " dirty "
		    "at the pause\n", mi->phase, mi->iteration,
		    mi->precopy_pages_sent, mi->pages_redirtied, mi->final_dirty);
	if (mi->errmsg[0] != '\0')
		printf("  error: %s\n", mi->errmsg);
}

static int
cmd_watch_id(struct opts *o, const char *id, unsigned interval)
{
	Pcd__WatchRequest req = PCD__WATCH_REQUEST__INIT;
	struct watch_rate w = { 0 };
	struct rpc_client *c;
	struct rpc_answer a;
	bool tty = isatty(STDOUT_FILENO) && !o->json, drawn = false;
	char err[512];
	uint32_t call;
	int rc, r;

	if ((rc = ctl_connect(o, &c)) != EX_OK)
		return rc;
	req.id = (char *)id;
	req.interval_ms = interval;
	if ((r = rpc_client_send(c, RPC_M_WATCH, &req.base, &call, err,
	    sizeof(err))) < 0) {
		rc = EX_CONN;
		if (rpc_client_refusal(c, r, &a, err, sizeof(err)) == 0) {
			snprintf(err, sizeof(err), "%s: %s",
			    status_name(a.code), a.message);
			rpc_answer_clear(&a);
			rc = EX_RPC;
		}
		fprintf(stderr, "%s: watch: %s\n", progname(), err);
		rpc_client_close(c);
		return rc;
	}
	for (;;) {
		const Pcd__WatchEvent *ev;

		if ((r = rpc_client_recv(c, -1, &a, err, sizeof(err))) < 0) {
			if (drawn)
				putchar('\n');
			fprintf(stderr, "%s: watch: %s\n", progname(), err);
			rc = r == -EPROTO || r == -EMSGSIZE ? EX_RPC : EX_CONN;
			break;
		}
		if (a.hdr.call_id != call && a.hdr.call_id != 0) {
			rpc_answer_clear(&a);
			continue;
		}
		if (o->json)
			print_json(a.msg);
		if (a.code != STATUS_OK || a.hdr.kind == RPC_ERROR) {
			if (drawn)
				putchar('\n');
			fprintf(stderr, "%s: Watch: %s: %s\n", progname(),
			    status_name(a.code), a.message);
			rpc_answer_clear(&a);
			rc = EX_RPC;
			break;
		}
		ev = (const Pcd__WatchEvent *)a.msg;
		if (ev->info != NULL) {
			watch_rates(&w, ev->info);
			if (!o->json) {
				watch_line(ev->info, &w, tty);
				drawn = tty;
			}
		}
		if (ev->final || (a.hdr.flags & RPC_F_END_STREAM)) {
			if (drawn)
				putchar('\n');
			if (ev->info != NULL && !o->json)
				watch_summary(ev->info);
			rc = ev->info != NULL && strcmp(ev->info->state,
			    "completed") == 0 ? EX_OK : EX_RPC;
			rpc_answer_clear(&a);
			break;
		}
		rpc_answer_clear(&a);
	}
	rpc_client_close(c);
	return rc;
}

static int
cmd_watch(struct sub *s)
{
	return cmd_watch_id(s->o, s->arg[0], s->so.interval_ms);
}
/* ---- main ---- */

static const struct cmd cmds[] = {
	{ "prepare", cmd_prepare, 1, 1,
	  "ID [--listen HOST:PORT] [--tls-dir DIR] [--peer-name NAME] "
	  "[--libvirt-uri URI --domain NAME]",
	  "Destination: accept incoming migration ID on HOST:PORT (default\n"
	  "0.0.0.0:0, any free port; the bound address is printed). --tls-dir\n"
	  "names a tls-creds-x509 directory (default: the daemon's tls_dir).\n"
	  "With --libvirt-uri/--domain the domain is resumed when the guest\n"
	  "may run on this host." },
	{ "migrate", cmd_migrate, 2, 2,
	  "ID HOST:PORT [--bandwidth BYTES/S] [--tls-dir DIR] "
	  "[--peer-name NAME] [--libvirt-uri URI --domain NAME] [--watch] "
	  "[--precopy] [--postcopy-only] [--rounds N] [--auto] "
	  "[--max-downtime MS] [--bulk-channels N]",
	  "Source: migrate ID to the destination listening on HOST:PORT.\n"
	  "--bandwidth caps the bulk stream (100M, 1G; 0 = unlimited); demand\n"
	  "pages are never limited. --bulk-channels N (1..16) sends the bulk\n"
	  "stream on N TLS connections, each with its own thread on both\n"
	  "sides, pages striped between them (default: bulk_channels). With --libvirt-uri/--domain the domain is\n"
	  "suspended at switchover. --watch follows it like `watch`.\n"
	  "--precopy copies memory in rounds while the guest runs (a source\n"
	  "VMM that offers dirty tracking; otherwise postcopy-only, status\n"
	  "says why) until what is left fits --max-downtime MS (then it\n"
	  "completes without postcopy), --rounds N rounds were made, a round\n"
	  "made under 10% progress (--auto), or `start-postcopy ID`.\n"
	  "--postcopy-only switches over at once. Defaults: postcopyd.conf." },
	{ "status", cmd_status, 0, 1, "[ID] [--libvirt]",
	  "Show one migration (ID) or all of them. --libvirt prints the job\n"
	  "statistics like `virsh domjobinfo` (with --json: one object per\n"
	  "migration keyed by the VIR_DOMAIN_JOB_* names)." },
	{ "list", cmd_list, 0, 0, "",
	  "Print the id of every migration the daemon knows, one per line." },
	{ "cancel", cmd_cancel, 1, 1, "ID [--destination-completed]",
	  "Cancel migration ID. Before switchover the guest keeps running on\n"
	  "the source; after switchover it already runs on the destination\n"
	  "and the daemon refuses (exit 1) and says why.\n"
	  "--destination-completed: on a source after switchover, when the\n"
	  "destination's status says completed but this side never heard\n"
	  "(a cut lost the Complete, past the destination's completed_grace):\n"
	  "ends it as completed and tells the VMM so (the guest runs on the\n"
	  "destination; it is never resumed here)." },
	{ "watch", cmd_watch, 1, 1, "ID [--interval MS]",
	  "Follow migration ID until it ends: a progress bar on a terminal\n"
	  "(pages valid, GB/s, faults/s, fault latency p99, time left), one\n"
	  "line (or JSON object) per event otherwise, then a summary. Exit 0\n"
	  "if it completed, 1 if it failed or was cancelled." },
	{ "resume", cmd_resume, 1, 2, "ID [HOST:PORT]",
	  "Recover migration ID's channels now. On the source it reconnects\n"
	  "(to HOST:PORT if given: the destination moved); on the destination\n"
	  "it drops the channels so the source reconnects. The daemons also\n"
	  "recover by themselves: a paused migration (status says why) is\n"
	  "resumed as soon as the source reaches the destination again." },
	{ "start-postcopy", cmd_start_postcopy, 1, 1, "ID",
	  "Source in precopy: stop the rounds and switch to postcopy now\n"
	  "(like virDomainMigrateStartPostCopy). Refused after switchover\n"
	  "and for a migration that runs no precopy." },
	{ "set-bandwidth", cmd_set_bandwidth, 2, 2, "ID BYTES/S",
	  "Change the bulk stream limit of a running migration (0 removes it)." },
	{ "version", cmd_version, 0, 0, "",
	  "Print the versions of postcopyctl and postcopyd." },
	{ "check-kernel", cmd_check_kernel, 0, 0, "",
	  "Ask the daemon whether its kernel supports postcopy with\n"
	  "userfaultfd minor faults on shmem. Exit 1 if it does not." },
};

static const struct cmd *
cmd_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Runs command c: its command line checked, then its handler. */
static int
cmd_run(const struct cmd *c, struct opts *o, int argc, char **argv)
{
	struct sub s = { .o = o };
	int rc;

	if ((rc = sub_parse(c, argc, argv, &s)) >= 0)
		return rc;
	return c->fn(&s);
}

static void
usage_main(FILE *f)
{
	fprintf(f,
"usage: %s [global options] COMMAND [ARGS]\n"
"\n"
"Control client of postcopyd.\n"
"\n"
"Global options:\n"
"  -s, --socket PATH     control socket (default %s, or $POSTCOPYD_SOCKET)\n"
"  -c, --connect H:P     connect over TCP with mutual TLS instead\n"
"  -t, --tls-dir DIR     client certificates for --connect (ca-cert.pem,\n"
"                        client-cert.pem, client-key.pem)\n"
"  -j, --json            machine output: one JSON object per reply/event\n"
"                        (also after the command: status ID --json)\n"
"  -T, --timeout MS      wait at most MS for a reply (default 10000)\n"
"  -h, --help            this help; COMMAND --help for a command's\n"
"\n"
"Commands:\n", progname(), PCD_CONTROL_SOCKET);
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, cmds[i].args[0] != '\0' ? "  %-14s %s\n" :
		    "  %s\n", cmds[i].name, cmds[i].args);
	fprintf(f, "\nExit status: 0 ok, 1 error from the daemon (or a watched "
	    "migration\nthat did not complete), 2 usage, 3 cannot connect or "
	    "connection lost.\nNO_COLOR (non-empty) or TERM=dumb: no colours. "
	    "See postcopyctl(1).\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket",	required_argument, NULL, 's' },
		{ "connect",	required_argument, NULL, 'c' },
		{ "tls-dir",	required_argument, NULL, 't' },
		{ "json",	no_argument,	   NULL, 'j' },
		{ "timeout",	required_argument, NULL, 'T' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { .timeout_ms = 10000 };
	const struct cmd *c;
	char *end;
	int ch;

	signal(SIGPIPE, SIG_IGN);
	colour = colour_wanted();
	virInitialize();	/* before libvirt's typed-parameter API */
	o.socket = getenv("POSTCOPYD_SOCKET");
	if (o.socket == NULL || o.socket[0] == '\0')
		o.socket = PCD_CONTROL_SOCKET;
	while ((ch = getopt_long(argc, argv, "+s:c:t:jT:h", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			o.connect = optarg;
			break;
		case 't':
			o.tls_dir = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'T':
			o.timeout_ms = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.timeout_ms <= 0) {
				fprintf(stderr, "%s: --timeout wants a "
				    "positive number of ms\n", progname());
				return EX_USAGE;
			}
			break;
		case 'h':
			usage_main(stdout);
			return EX_OK;
		default:
			usage_main(stderr);
			return EX_USAGE;
		}
	}
	if ((o.connect == NULL) != (o.tls_dir == NULL)) {
		fprintf(stderr, "%s: --connect needs --tls-dir (mutual TLS) "
		    "and the other way round\n", progname());
		return EX_USAGE;
	}
	if (optind >= argc) {
		usage_main(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		c = optind + 1 < argc ? cmd_find(argv[optind + 1]) : NULL;
		if (c != NULL)
			return sub_usage(c, stdout);
		usage_main(stdout);
		return EX_OK;
	}
	if ((c = cmd_find(argv[optind])) == NULL) {
		fprintf(stderr, "%s: unknown command '%s'\n", progname(),
		    argv[optind]);
		usage_main(stderr);
		return EX_USAGE;
	}
	return cmd_run(c, &o, argc - optind, argv + optind);
}
