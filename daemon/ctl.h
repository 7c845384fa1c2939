/* ctl.h - the control server: service pcd.Control (proto/control.proto)
 * over the framing of proto/README.md, on the daemon's libevent loop.
 * Listens on a Unix socket and, optionally, on TCP with mutual TLS 1.3.
 */
#ifndef PCD_CTL_H
#define PCD_CTL_H

#include <stddef.h>

struct daemon;
struct config;
struct ctl_server;
struct virt;

/* Opens the control server of d: the Unix socket at d->control_socket
 * (created unlink/umask/bind/chmod 0660, its directory made if absent) or,
 * when listen_fd >= 0, that already-listening socket (systemd socket
 * activation; it is then neither created nor unlinked). Also opens the TCP
 * listener when cfg->control_tcp_listen is set. Installs the migration
 * table's notify callback (d->migs must exist). 0 or -errno, logged. */
int ctl_server_open(struct daemon *d, const struct config *cfg, int listen_fd,
    struct ctl_server **out);
/* Applies what can change live: limits, default TLS dir, the TCP listener
 * and its certificates. 0 or -errno (the old settings stay). */
int ctl_server_reconfigure(struct ctl_server *s, const struct config *cfg);
/* Closes every connection and listener; unlinks the socket it created. */
void ctl_server_close(struct ctl_server *s);
/* The libvirt domain controller (main.c feeds it transitions). */
struct virt *ctl_server_virt(struct ctl_server *s);

/* The checks of Prepare/Migrate arguments that need no daemon state (also
 * what tests/fuzz calls): a valid migration id, TLS dir and peer name that
 * fit, libvirt URI and domain both given or both empty. tls and lv may be
 * NULL. 0 or -EINVAL with err naming the problem. */
struct Pcd__TlsProfile;
struct Pcd__LibvirtDomain;
int ctl_args_check(const char *id, const struct Pcd__TlsProfile *tls,
    const struct Pcd__LibvirtDomain *lv, char *err, size_t errlen);

#endif
