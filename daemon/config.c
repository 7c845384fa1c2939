/* config.c - the postcopyd.conf parser (see config.h). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "rpc.h"
#include "util.h"
#include "wire.h"

#define CONFIG_LINE_MAX	4096

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	str_copy(c->control_socket, PCD_CONTROL_SOCKET, sizeof(c->control_socket));
	str_copy(c->vmm_socket, PCD_VMM_SOCKET, sizeof(c->vmm_socket));
	c->log_level = LOG_LVL_INFO;
	str_copy(c->control_tls_dir, "/etc/postcopyd/control-tls",
	    sizeof(c->control_tls_dir));
	str_copy(c->tls_dir, "/etc/postcopyd/tls", sizeof(c->tls_dir));
	c->max_migrations = 8;
	c->max_connections = 64;
	c->max_tcp_connections = 16;
	c->control_handshake_timeout = 10;
	c->control_idle_timeout = 300;
	c->vmm_unclaimed_max = 4;
	c->vmm_unclaimed_timeout = 60;
	c->vmm_wait_timeout = 300;
	c->completed_grace = 600;	/* MIG_COMPLETED_GRACE_DEFAULT */
	c->drain_timeout = 60;
	c->max_frame = RPC_MAX_FRAME_DEFAULT;
	c->max_inflight = 16;
	str_copy(c->state_dir, "auto", sizeof(c->state_dir));
	c->max_downtime_ms = 300;
	c->bulk_channels = 1;
	c->demand_spin_us = 0;
	c->demand_spin_always = false;
	c->demand_realtime = false;
	c->page_write_alias = false;
}

/* Text values are written back by config_dump (postcopyd -nn), in double
 * quotes when needed; the format has no escapes, so a double quote or a
 * control character cannot be part of one. */
static int
check_text(const char *key, const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '"' || (ch < 0x20 && ch != '\t') || ch == 0x7f) {
			str_printf(err, errlen, "%s: a double quote or control "
			    "character (0x%02x) is not allowed in a value", key,
			    ch);
			return -EINVAL;
		}
	}
	return 0;
}

static int
set_path(char *dst, size_t dstlen, const char *key, const char *v,
    char *err, size_t errlen)
{
	if (check_text(key, v, err, errlen) < 0)
		return -EINVAL;
	if (v[0] != '/') {
		str_printf(err, errlen, "%s: '%s' is not an absolute path",
		    key, v);
		return -EINVAL;
	}
	if (str_copy(dst, v, dstlen) < 0) {
		str_printf(err, errlen, "%s: path longer than %zu bytes",
		    key, dstlen - 1);
		return -EINVAL;
	}
	return 0;
}

static int
set_listen(char *dst, size_t dstlen, const char *key, const char *v,
    char *err, size_t errlen)
{
	char host[128];
	uint16_t port;

	if (check_text(key, v, err, errlen) < 0)
		return -EINVAL;
	if (strcmp(v, "") == 0 || strcmp(v, "off") == 0 ||
	    strcmp(v, "no") == 0) {
		dst[0] = '\0';
		return 0;
	}
	/* Port 0 picks a free port (tests); the log names the one bound. */
	if (parse_hostport(v, host, sizeof(host), &port) < 0 ||
	    host[0] == '\0') {
		str_printf(err, errlen, "%s: '%s' is not host:port (or off)",
		    key, v);
		return -EINVAL;
	}
	if (str_copy(dst, v, dstlen) < 0) {
		str_printf(err, errlen, "%s: address too long", key);
		return -EINVAL;
	}
	return 0;
}

static int
set_uint(unsigned *dst, const char *key, const char *v, unsigned lo,
    unsigned hi, char *err, size_t errlen)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 ||
	    n < lo || n > hi) {
		str_printf(err, errlen, "%s: '%s' is not a number in %u..%u",
		    key, v, lo, hi);
		return -EINVAL;
	}
	*dst = (unsigned)n;
	return 0;
}

static int
set_bool(bool *dst, const char *key, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "on") == 0) {
		*dst = true;
		return 0;
	}
	if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
	    strcmp(v, "off") == 0) {
		*dst = false;
		return 0;
	}
	str_printf(err, errlen, "%s: '%s' is not yes or no", key, v);
	return -EINVAL;
}

/* The Migrate defaults for precopy; the last keys config_set knows. */
static int
config_set_precopy(struct config *c, const char *key, const char *v,
    char *err, size_t errlen)
{
	if (strcmp(key, "precopy") == 0)
		return set_bool(&c->precopy, key, v, err, errlen);
	if (strcmp(key, "precopy_auto") == 0)
		return set_bool(&c->precopy_auto, key, v, err, errlen);
	if (strcmp(key, "precopy_rounds") == 0)
		return set_uint(&c->precopy_rounds, key, v, 0, 1000, err,
		    errlen);
	if (strcmp(key, "max_downtime_ms") == 0)
		return set_uint(&c->max_downtime_ms, key, v, 1, 600000, err,
		    errlen);
	if (strcmp(key, "bulk_channels") == 0)
		return set_uint(&c->bulk_channels, key, v, 1,
		    WIRE_BULK_CHANNELS_MAX, err, errlen);
	if (strcmp(key, "demand_spin_us") == 0)
		return set_uint(&c->demand_spin_us, key, v, 0,
		    CONFIG_SPIN_US_MAX, err, errlen);
	if (strcmp(key, "demand_spin_always") == 0)
		return set_bool(&c->demand_spin_always, key, v, err, errlen);
	if (strcmp(key, "demand_realtime") == 0)
		return set_bool(&c->demand_realtime, key, v, err, errlen);
	if (strcmp(key, "page_write") == 0) {
		if (strcmp(v, "pwrite") != 0 && strcmp(v, "alias") != 0) {
			str_printf(err, errlen, "%s: '%s' is not pwrite or "
			    "alias", key, v);
			return -EINVAL;
		}
		c->page_write_alias = strcmp(v, "alias") == 0;
		return 0;
	}
	str_printf(err, errlen, "unknown key '%s'", key);
	return -ENOENT;
}

int
config_set(struct config *c, const char *key, const char *v, char *err,
    size_t errlen)
{
	uint64_t size;
	int lvl;

	if (strcmp(key, "control_socket") == 0)
		return set_path(c->control_socket, sizeof(c->control_socket),
		    key, v, err, errlen);
	if (strcmp(key, "vmm_socket") == 0)
		return set_path(c->vmm_socket, sizeof(c->vmm_socket), key, v,
		    err, errlen);
	if (strcmp(key, "control_tls_dir") == 0)
		return set_path(c->control_tls_dir, sizeof(c->control_tls_dir),
		    key, v, err, errlen);
	if (strcmp(key, "tls_dir") == 0)
		return set_path(c->tls_dir, sizeof(c->tls_dir), key, v, err,
		    errlen);
	if (strcmp(key, "state_dir") == 0) {
		if (strcmp(v, "off") == 0 || strcmp(v, "auto") == 0) {
			str_copy(c->state_dir, v, sizeof(c->state_dir));
			return 0;
		}
		return set_path(c->state_dir, sizeof(c->state_dir), key, v, err,
		    errlen);
	}
	if (strcmp(key, "metrics_listen") == 0)
		return set_listen(c->metrics_listen, sizeof(c->metrics_listen),
		    key, v, err, errlen);
	if (strcmp(key, "control_tcp_listen") == 0)
		return set_listen(c->control_tcp_listen,
		    sizeof(c->control_tcp_listen), key, v, err, errlen);
	if (strcmp(key, "log_level") == 0) {
		if ((lvl = log_level_parse(v)) < 0) {
			str_printf(err, errlen, "log_level: unknown level '%s' "
			    "(want error, warning, notice, info or debug)", v);
			return -EINVAL;
		}
		c->log_level = lvl;
		return 0;
	}
	if (strcmp(key, "max_migrations") == 0)
		return set_uint(&c->max_migrations, key, v, 1, 1024, err,
		    errlen);
	if (strcmp(key, "max_connections") == 0)
		return set_uint(&c->max_connections, key, v, 1, 4096, err,
		    errlen);
	if (strcmp(key, "max_tcp_connections") == 0)
		return set_uint(&c->max_tcp_connections, key, v, 1, 4096, err,
		    errlen);
	if (strcmp(key, "control_handshake_timeout") == 0)
		return set_uint(&c->control_handshake_timeout, key, v, 1, 600,
		    err, errlen);
	if (strcmp(key, "control_idle_timeout") == 0)
		return set_uint(&c->control_idle_timeout, key, v, 1, 86400,
		    err, errlen);
	if (strcmp(key, "vmm_unclaimed_max") == 0)
		return set_uint(&c->vmm_unclaimed_max, key, v, 0, 256, err,
		    errlen);
	if (strcmp(key, "vmm_unclaimed_timeout") == 0)
		return set_uint(&c->vmm_unclaimed_timeout, key, v, 1, 3600,
		    err, errlen);
	if (strcmp(key, "vmm_wait_timeout") == 0)
		return set_uint(&c->vmm_wait_timeout, key, v, 1, 86400, err,
		    errlen);
	if (strcmp(key, "drain_timeout") == 0)
		return set_uint(&c->drain_timeout, key, v, 1, 86400, err,
		    errlen);
	if (strcmp(key, "completed_grace") == 0)
		return set_uint(&c->completed_grace, key, v, 0, 86400, err,
		    errlen);
	if (strcmp(key, "max_inflight") == 0)
		return set_uint(&c->max_inflight, key, v, 1, 1024, err,
		    errlen);
	if (strcmp(key, "max_frame") == 0) {
		if (parse_size(v, &size) < 0 || size < 4096 ||
		    size > RPC_MAX_FRAME_LIMIT) {
			str_printf(err, errlen, "max_frame: '%s' is not a size "
			    "in 4K..16M", v);
			return -EINVAL;
		}
		c->max_frame = (uint32_t)size;
		return 0;
	}
	return config_set_precopy(c, key, v, err, errlen);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Splits "key = value # comment" in place. 0 or -EINVAL with a reason. */
static int
config_split(char *line, char **key, char **value, char *err, size_t errlen)
{
	char *eq, *p, *v;

	if ((eq = strchr(line, '=')) == NULL) {
		str_printf(err, errlen, "expected 'key = value'");
		return -EINVAL;
	}
	*eq = '\0';
	*key = trim(line);
	if (**key == '\0') {
		str_printf(err, errlen, "missing key before '='");
		return -EINVAL;
	}
	for (p = *key; *p != '\0'; p++) {
		if (!islower((unsigned char)*p) && *p != '_' &&
		    !isdigit((unsigned char)*p)) {
			str_printf(err, errlen, "bad key '%s' (keys are "
			    "lower_case words)", *key);
			return -EINVAL;
		}
	}
	v = trim(eq + 1);
	if (*v == '"') {
		if ((p = strchr(v + 1, '"')) == NULL) {
			str_printf(err, errlen, "unterminated quoted value");
			return -EINVAL;
		}
		*p = '\0';
		if (*trim(p + 1) != '\0' && *trim(p + 1) != '#') {
			str_printf(err, errlen, "text after the quoted value");
			return -EINVAL;
		}
		*value = v + 1;
		return 0;
	}
	for (p = v; *p != '\0'; p++) {
		if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	*value = trim(v);
	return 0;
}

#define CONFIG_NKEYS	48

int
config_parse_file(const char *path, struct config *c, char *err,
    size_t errlen)
{
	struct { char key[32]; unsigned line; } seen[CONFIG_NKEYS];
	char line[CONFIG_LINE_MAX], why[512];
	size_t nseen = 0;
	unsigned lineno = 0;
	FILE *f;
	int r = 0;

	if ((f = fopen(path, "re")) == NULL) {
		r = -errno;
		str_printf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return r;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *key, *value;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			str_printf(err, errlen, "%s:%u: line longer than %d "
			    "bytes", path, lineno, CONFIG_LINE_MAX - 2);
			r = -EINVAL;
			break;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (config_split(s, &key, &value, why, sizeof(why)) < 0 ||
		    config_set(c, key, value, why, sizeof(why)) < 0) {
			str_printf(err, errlen, "%s:%u: %s", path, lineno, why);
			r = -EINVAL;
			break;
		}
		for (size_t i = 0; i < nseen; i++) {
			if (strcmp(seen[i].key, key) == 0) {
				str_printf(err, errlen, "%s:%u: %s set twice "
				    "(first on line %u)", path, lineno, key,
				    seen[i].line);
				r = -EINVAL;
				goto out;
			}
		}
		/* config_set accepted it, so it is one of the known keys. */
		if (nseen < CONFIG_NKEYS) {
			str_copy(seen[nseen].key, key, sizeof(seen[nseen].key));
			seen[nseen++].line = lineno;
		}
	}
	if (r == 0 && ferror(f)) {
		str_printf(err, errlen, "%s: read error", path);
		r = -EIO;
	}
out:
	fclose(f);
	return r;
}

static int
tls_dir_check(const char *dir, const char *what, char *err, size_t errlen)
{
	static const char *const files[] = {
		"ca-cert.pem", "server-cert.pem", "server-key.pem"
	};
	char p[PATH_MAX + 32];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		if (access(p, R_OK) < 0) {
			str_printf(err, errlen, "%s: cannot read %s: %s", what,
			    p, strerror(errno));
			return -ENOENT;
		}
	}
	return 0;
}

int
config_check(const struct config *c, char *err, size_t errlen)
{
	if (c->control_tcp_listen[0] != '\0')
		return tls_dir_check(c->control_tls_dir,
		    "control_tcp_listen needs mutual TLS", err, errlen);
	return 0;
}

/* One text value, quoted when it would not survive unquoted: a '#' (a
 * comment unless quoted) or blanks at either end (trimmed). */
static void
dump_text(FILE *f, const char *key, const char *v)
{
	size_t n = strlen(v);
	bool quote = strchr(v, '#') != NULL || n == 0 ||
	    v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t';

	fprintf(f, quote ? "%s = \"%s\"\n" : "%s = %s\n", key, v);
}

void
config_dump(const struct config *c, FILE *f)
{
	static const char *const levels[] = {
		[LOG_LVL_ERR] = "error", [LOG_LVL_WARNING] = "warning",
		[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
		[LOG_LVL_DEBUG] = "debug",
	};

	dump_text(f, "control_socket", c->control_socket);
	dump_text(f, "vmm_socket", c->vmm_socket);
	fprintf(f, "log_level = %s\n", c->log_level >= LOG_LVL_ERR &&
	    c->log_level <= LOG_LVL_DEBUG ? levels[c->log_level] : "info");
	dump_text(f, "metrics_listen",
	    c->metrics_listen[0] != '\0' ? c->metrics_listen : "off");
	dump_text(f, "control_tcp_listen",
	    c->control_tcp_listen[0] != '\0' ? c->control_tcp_listen : "off");
	dump_text(f, "control_tls_dir", c->control_tls_dir);
	dump_text(f, "tls_dir", c->tls_dir);
	fprintf(f, "max_migrations = %u\n", c->max_migrations);
	fprintf(f, "max_connections = %u\n", c->max_connections);
	fprintf(f, "max_tcp_connections = %u\n", c->max_tcp_connections);
	fprintf(f, "control_handshake_timeout = %u\n",
	    c->control_handshake_timeout);
	fprintf(f, "control_idle_timeout = %u\n", c->control_idle_timeout);
	fprintf(f, "max_frame = %u\n", c->max_frame);
	fprintf(f, "max_inflight = %u\n", c->max_inflight);
	fprintf(f, "vmm_unclaimed_max = %u\n", c->vmm_unclaimed_max);
	fprintf(f, "vmm_unclaimed_timeout = %u\n", c->vmm_unclaimed_timeout);
	fprintf(f, "vmm_wait_timeout = %u\n", c->vmm_wait_timeout);
	fprintf(f, "completed_grace = %u\n", c->completed_grace);
	fprintf(f, "drain_timeout = %u\n", c->drain_timeout);
	fprintf(f, "state_dir = %s\n", c->state_dir);
	fprintf(f, "precopy = %s\n", c->precopy ? "yes" : "no");
	fprintf(f, "precopy_rounds = %u\n", c->precopy_rounds);
	fprintf(f, "precopy_auto = %s\n", c->precopy_auto ? "yes" : "no");
	fprintf(f, "max_downtime_ms = %u\n", c->max_downtime_ms);
	fprintf(f, "bulk_channels = %u\n", c->bulk_channels);
	fprintf(f, "demand_spin_us = %u\n", c->demand_spin_us);
	fprintf(f, "demand_spin_always = %s\n", c->demand_spin_always ? "yes" :
	    "no");
	fprintf(f, "demand_realtime = %s\n", c->demand_realtime ? "yes" : "no");
	fprintf(f, "page_write = %s\n", c->page_write_alias ? "alias" :
	    "pwrite");
}
