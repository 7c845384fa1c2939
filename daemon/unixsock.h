/* unixsock.h - the daemon's listening Unix sockets (the control socket and
 * the VMM socket), made by one function so both behave the same.
 */
#ifndef PCD_UNIXSOCK_H
#define PCD_UNIXSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

struct unixsock {
	int	 fd;		/* listening, non-blocking, close-on-exec */
	bool	 created;	/* path was bound here: unixsock_unlink it */
	char	 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* A listening socket for path, into *u.
 *
 * activated_fd >= 0 (systemd socket activation): that socket is used; it
 * must be a listening AF_UNIX stream socket. path is then neither created
 * nor removed.
 *
 * Otherwise the socket is made at path: its directory is created (0755)
 * when absent; an existing file that is not a socket is left alone
 * (-EEXIST); an existing socket that a live process answers on is left
 * alone (-EADDRINUSE: another daemon uses it); a stale one is removed. The
 * socket is bound under a umask that keeps it within mode, then chmod'ed
 * to mode, and listens.
 *
 * 0, or -errno with err saying what failed and where. */
int unixsock_listen(const char *path, mode_t mode, int activated_fd,
    struct unixsock *u, char *err, size_t errlen);

/* Removes the path unixsock_listen bound (not an activated socket's). The
 * descriptor is the caller's to close. */
void unixsock_unlink(const struct unixsock *u);

#endif
