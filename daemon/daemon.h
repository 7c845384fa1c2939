/* daemon.h - the daemon context: the one place for state that lives as long
 * as the process. No other global mutable state (see DESIGN.md).
 */
#ifndef PCD_DAEMON_H
#define PCD_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct mig_table;
struct vmm_server;
struct ctl_server;
struct sdnotify;
struct config;
struct metrics;

#define PCD_RUNDIR		"/run/postcopyd"
#define PCD_CONTROL_SOCKET	PCD_RUNDIR "/control.sock"
#define PCD_VMM_SOCKET		PCD_RUNDIR "/vmm.sock"
#define PCD_CONFIG_FILE		"/etc/postcopyd/postcopyd.conf"

struct daemon {
	struct event_base	*base;
	struct mig_table	*migs;		/* every migration, by id */
	struct vmm_server	*vmm;		/* VMM attach socket */
	struct ctl_server	*ctl;		/* orchestrator RPC */
	struct sdnotify		*sdn;		/* systemd notify + watchdog */
	char			 control_socket[PATH_MAX];
	char			 vmm_socket[PATH_MAX];
	char			 config_file[PATH_MAX];
	bool			 stopping;	/* SIGTERM seen: no new work */
	struct event		*stop_ev;	/* while stopping: drain timer */
	uint64_t		 stop_deadline_ns;
	size_t			 stop_waiting;	/* last count in STATUS= */
	struct config		*cfg;		/* configuration in effect */
	struct metrics		*metrics;	/* Prometheus endpoint or NULL */
	const char		*cli[8][2];	/* command-line overrides of the
						 * config file: key, value */
	unsigned		 ncli;
};

#endif
