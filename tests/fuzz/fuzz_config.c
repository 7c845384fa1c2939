/* fuzz_config.c - postcopyd.conf through config_parse_file (the file is a
 * memfd, read through /proc/self/fd). An accepted file gives values within
 * their ranges, and what config_dump writes (postcopyd -nn) parses back to
 * the same configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "rpc.h"
#include "wire.h"

#define FIELD_OK(c, fld) \
	(memchr((c)->fld, '\0', sizeof((c)->fld)) != NULL)

static void
check_values(const struct config *c)
{
	FUZZ_CHECK(FIELD_OK(c, control_socket) && FIELD_OK(c, vmm_socket) &&
	    FIELD_OK(c, metrics_listen) && FIELD_OK(c, control_tcp_listen) &&
	    FIELD_OK(c, control_tls_dir) && FIELD_OK(c, tls_dir));
	FUZZ_CHECK(c->control_socket[0] == '/' && c->vmm_socket[0] == '/' &&
	    c->control_tls_dir[0] == '/' && c->tls_dir[0] == '/');
	FUZZ_CHECK(c->log_level >= LOG_LVL_ERR && c->log_level <= LOG_LVL_DEBUG);
	FUZZ_CHECK(c->max_migrations >= 1 && c->max_migrations <= 1024);
	FUZZ_CHECK(c->max_connections >= 1 && c->max_connections <= 4096);
	FUZZ_CHECK(c->max_inflight >= 1 && c->max_inflight <= 1024);
	FUZZ_CHECK(c->max_frame >= 4096 && c->max_frame <= RPC_MAX_FRAME_LIMIT);
	FUZZ_CHECK(c->bulk_channels >= 1 &&
	    c->bulk_channels <= WIRE_BULK_CHANNELS_MAX);
	FUZZ_CHECK(c->demand_spin_us <= CONFIG_SPIN_US_MAX);
}

static int
parse_fd(int fd, struct config *c, char *err, size_t errlen)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	config_defaults(c);
	return config_parse_file(path, c, err, errlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, c2;
	char err[512];
	FILE *f;
	int fd, fd2, r;

	if (size > 16384)
		return 0;
	fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
	err[0] = '\0';
	r = parse_fd(fd, &c, err, sizeof(err));
	close(fd);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -EIO);
		FUZZ_CHECK_ERR(err, sizeof(err));
		return 0;
	}
	check_values(&c);

	/* postcopyd -nn prints the effective configuration: it must be a
	 * file that gives the same configuration. */
	fd2 = memfd_create("fuzz-config-dump", MFD_CLOEXEC);
	FUZZ_CHECK(fd2 >= 0);
	f = fdopen(dup(fd2), "w");
	FUZZ_CHECK(f != NULL);
	config_dump(&c, f);
	FUZZ_CHECK(fclose(f) == 0);
	r = parse_fd(fd2, &c2, err, sizeof(err));
	close(fd2);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(strcmp(c.control_socket, c2.control_socket) == 0);
	FUZZ_CHECK(strcmp(c.vmm_socket, c2.vmm_socket) == 0);
	FUZZ_CHECK(strcmp(c.metrics_listen, c2.metrics_listen) == 0);
	FUZZ_CHECK(strcmp(c.control_tcp_listen, c2.control_tcp_listen) == 0);
	FUZZ_CHECK(strcmp(c.control_tls_dir, c2.control_tls_dir) == 0);
	FUZZ_CHECK(strcmp(c.tls_dir, c2.tls_dir) == 0);
	FUZZ_CHECK(c.log_level == c2.log_level);
	FUZZ_CHECK(c.max_migrations == c2.max_migrations &&
	    c.max_connections == c2.max_connections &&
	    c.max_inflight == c2.max_inflight && c.max_frame == c2.max_frame);
	FUZZ_CHECK(c.bulk_channels == c2.bulk_channels &&
	    c.demand_spin_us == c2.demand_spin_us &&
	    c.demand_spin_always == c2.demand_spin_always &&
	    c.demand_realtime == c2.demand_realtime &&
	    c.page_write_alias == c2.page_write_alias);
	return 0;
}
