/* source_state.c - what a restarted source daemon needs to pick up a
 * migration that switched over (issue 13 item 2).
 *
 * When the source VMM has paused, before its device state can leave, the
 * source writes <state_dir>/<id>.pcsrc: the session token, the guest's
 * geometry, the destination's address, when the guest paused and the
 * device state. Written to a temporary name and renamed, so a reader finds
 * the whole file or none; removed when the migration ends (m->state_path).
 * After kill -9 the source VMM keeps its memory and attaches again
 * (reattach); the orchestrator issues Migrate again (same id); the
 * restarted daemon reads the file (src_state_load), takes the VMM as the
 * same, already paused migration (it is never asked to pause again),
 * reconnects with the same token (a resume Hello) and sends what the
 * destination's Welcome does not list as valid. No file (the daemon died
 * before the pause was recorded): the Switchover never left, the guest
 * never ran on the destination, and the migration fails (the VMM resumes
 * it on the source).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "source_int.h"
#include "util.h"
#include "wire.h"

#define SRC_STATE_MAGIC	"PCSRC01\n"

struct src_state_hdr {
	char		magic[8];
	uint8_t		token[WIRE_TOKEN_LEN];
	uint64_t	npages;
	uint32_t	ps;
	uint32_t	pad;
	uint64_t	paused_at_ms;
	uint64_t	devlen;
	char		addr[256];
};

static int
src_state_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int
source_save_state(struct mig *m, const char *dir, const void *dev,
    size_t len, char *err, size_t errlen)
{
	struct source *s = m->src;
	struct src_state_hdr h;
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd, r;

	if (s == NULL || dir[0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%.3900s/%s.pcsrc", dir, m->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SRC_STATE_MAGIC, sizeof(h.magic));
	memcpy(h.token, s->s.token, sizeof(h.token));
	h.npages = s->npages;
	h.ps = s->ps;
	h.paused_at_ms = m->pause_wall_ms;
	h.devlen = len;
	str_copy(h.addr, m->addr, sizeof(h.addr));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	r = src_state_write(fd, &h, sizeof(h));
	if (r == 0 && len > 0)
		r = src_state_write(fd, dev, len);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		goto fail;
	}
	str_copy(m->state_path, path, sizeof(m->state_path));
	return 0;
fail:
	snprintf(err, errlen, "cannot write the source state %s: %s", path,
	    strerror(-r));
	return r;
}

static int
src_state_read(int fd, void *p, size_t n)
{
	ssize_t got = read(fd, p, n);

	return got == (ssize_t)n ? 0 : got < 0 ? -errno : -EPROTO;
}

int
src_state_load(struct source *s, char *err, size_t errlen)
{
	struct mig *m = s->m;
	struct src_state_hdr h;
	int fd, r;

	if ((fd = open(m->state_path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot pick up migration '%s' after a "
		    "restart: %s: %s (the source had not recorded its pause: "
		    "the guest never left)", m->id, m->state_path,
		    strerror(-r));
		return r;
	}
	r = src_state_read(fd, &h, sizeof(h));
	if (r == 0 && (memcmp(h.magic, SRC_STATE_MAGIC, sizeof(h.magic)) != 0 ||
	    h.npages != s->npages || h.ps != s->ps ||
	    h.devlen > WIRE_MAX_DEVSTATE))
		r = -EPROTO;
	if (r == 0 && h.devlen > 0 && (s->devstate = malloc(h.devlen)) == NULL)
		r = -ENOMEM;
	if (r == 0 && h.devlen > 0)
		r = src_state_read(fd, s->devstate, h.devlen);
	close(fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot pick up migration '%s' after a "
		    "restart: %s is not this guest's source state (%s)", m->id,
		    m->state_path, r == -EPROTO ? "bad magic, another guest "
		    "size or truncated" : strerror(-r));
		return r;
	}
	memcpy(s->s.token, h.token, sizeof(h.token));
	s->s.token_set = true;
	s->devstate_len = h.devlen;
	s->paused_at_ms = h.paused_at_ms;
	s->paused = true;
	s->restored = true;
	h.addr[sizeof(h.addr) - 1] = '\0';
	log_notice("migration %s: picked up after a restart: the source VMM "
	    "paused at %" PRIu64 " (wall ms), %" PRIu64 " bytes of device "
	    "state; reconnecting to %s (was %s)", m->id, h.paused_at_ms,
	    h.devlen, s->addr, h.addr);
	return 0;
}
