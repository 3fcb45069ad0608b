/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Messages between the supervisor and the container side over a SOCK_SEQPACKET socketpair. */
#pragma once
#include <sys/ioctl.h>
#include <sys/types.h>

#include "error.h"

enum msg_type {
	MSG_GO = 1,     /* supervisor -> child: cgroups are set up, go on (carries the winsize) */
	MSG_STAGE,      /* child -> supervisor: entering a stage (stage names below) */
	MSG_ERROR,      /* child -> supervisor: setup failed (err), the child exits with err.exit_code */
	MSG_FD_CONSOLE, /* child -> supervisor: pty master (SCM_RIGHTS) */
	MSG_FD_NOTIFY,  /* child -> supervisor: notify socket (SCM_RIGHTS) */
	MSG_SETUP,      /* child -> supervisor (user namespace): root of its namespaces, set its root up */
	MSG_PARKED,     /* child -> supervisor (exec_fifo): set up, now waiting at the exec fifo */
};

enum stage { STAGE_MOUNTS = 1, STAGE_PIVOT, STAGE_EXEC };

struct msg {
	int type;
	int stage;
	int has_ws;
	struct winsize ws;
	long long t; /* MSG_STAGE: when the child entered the stage (realtime_us) */
	struct merr err;
};

/* Send one message, with an fd attached when fd >= 0. Returns 0 or -errno. */
int msg_send(int sock, const struct msg *m, int fd);
/* Receive one message; *fd receives an attached fd (O_CLOEXEC) or -1.
 * Returns 1 on a message, 0 on EOF, -errno on error. */
int msg_recv(int sock, struct msg *m, int *fd);

/* Container side (child.c): PID 1 of the new namespaces. Never returns. */
struct spec;
__attribute__((noreturn)) void child_main(const struct spec *s, int sock);
/* With a user namespace: the setup process, forked by the supervisor (child.c). Never returns. */
__attribute__((noreturn)) void host_setup_main(const struct spec *s, int pidfd, int sock, pid_t parent);

/* Stub init (stub.c): PID 1 with the payload as PID 2. Never returns. */
__attribute__((noreturn)) void stub_main(pid_t payload);
/* Called by PID 1 before forking the payload so that no signal is lost. */
void stub_prepare(void);
