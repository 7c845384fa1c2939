/* unixsock.c - see unixsock.h. */
#include "unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define UNIXSOCK_BACKLOG	64

static int
unixsock_adopt(int fd, struct unixsock *u, char *err, size_t errlen)
{
	int type = 0, listening = 0, fl;
	socklen_t len = sizeof(type);
	struct sockaddr_un sun;
	socklen_t slen = sizeof(sun);

	if (getsockname(fd, (struct sockaddr *)&sun, &slen) < 0 ||
	    sun.sun_family != AF_UNIX ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
	    !listening) {
		str_printf(err, errlen, "fd %d from socket activation is not a "
		    "listening AF_UNIX stream socket", fd);
		return -ENOTSOCK;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int r = -errno;

		str_printf(err, errlen, "fd %d from socket activation: %s", fd,
		    strerror(-r));
		return r;
	}
	u->fd = fd;
	return 0;
}

/* An existing path: refused unless it is a socket nobody answers on,
 * which is then removed. */
static int
unixsock_clear(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	const char *path = sun->sun_path;
	struct stat sb;
	int fd, r;

	if (lstat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		str_printf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISSOCK(sb.st_mode)) {
		str_printf(err, errlen, "%s exists and is not a socket: not "
		    "replacing it", path);
		return -EEXIST;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		str_printf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (r == 0 || errno == EAGAIN) {	/* EAGAIN: its backlog is full */
		close(fd);
		str_printf(err, errlen, "%s: another daemon is listening "
		    "there", path);
		return -EADDRINUSE;
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		str_printf(err, errlen, "cannot remove the stale socket %s: %s",
		    path, strerror(-r));
		return r;
	}
	return 0;
}

static int
unixsock_create(const struct sockaddr_un *sun, mode_t mode, int *out,
    char *err, size_t errlen)
{
	const char *path = sun->sun_path;
	mode_t old;
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		str_printf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	/* Never wider than mode, not even between bind and chmod. */
	old = umask((mode_t)~mode & 0777);
	r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	umask(old);
	if (r < 0) {
		r = -errno;
		str_printf(err, errlen, "cannot bind %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	if (chmod(path, mode) < 0 || listen(fd, UNIXSOCK_BACKLOG) < 0) {
		r = -errno;
		str_printf(err, errlen, "%s: %s", path, strerror(-r));
		unlink(path);
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

int
unixsock_listen(const char *path, mode_t mode, int activated_fd,
    struct unixsock *u, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	int r;

	u->fd = -1;
	u->created = false;
	u->path[0] = '\0';
	if (activated_fd >= 0)
		return unixsock_adopt(activated_fd, u, err, errlen);
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		str_printf(err, errlen, "socket path %s is too long (at most "
		    "%zu bytes)", path, sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	str_copy(dir, path, sizeof(dir));
	if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST) {
		r = -errno;
		str_printf(err, errlen, "cannot create the directory %s: %s",
		    dir, strerror(-r));
		return r;
	}
	if ((r = unixsock_clear(&sun, err, errlen)) < 0 ||
	    (r = unixsock_create(&sun, mode, &u->fd, err, errlen)) < 0)
		return r;
	u->created = true;
	str_copy(u->path, path, sizeof(u->path));
	return 0;
}

void
unixsock_unlink(const struct unixsock *u)
{
	if (u->created && u->path[0] != '\0')
		unlink(u->path);
}
