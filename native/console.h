/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console: pty inside the container's devpts (container side) and the relay (supervisor side). */
#pragma once
#include <stdint.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "error.h"

/* Container side, after pivot_root: open /dev/pts/ptmx, unlock, open the peer, make
 * /dev/console a symlink to pts/N, clear OPOST when !opost, apply ws. */
int console_open_pty(int opost, const struct winsize *ws, int *master, int *slave, struct merr *e);

/* Supervisor side. */
struct relay {
	int master; /* pty master, or -1 */
	int peer;   /* a slave fd kept open so the master never hangs up between opens */
	int in_fd;  /* stdin when interactive, else -1 */
	int out_fd; /* stdout */
	int interactive;
	char inbuf[4096]; /* stdin -> master, pending */
	size_t inlen, inoff;
	int esc_count;
	uint64_t esc_first_ms;
};

void relay_init(struct relay *r);
/* Take the master; set up raw mode on the host terminal when interactive. */
int relay_start(struct relay *r, int master, int interactive, struct merr *e);
/* Fill pollfds (up to 2); returns how many. */
int relay_pollfds(struct relay *r, struct pollfd *p);
/* Handle poll results for the fds relay_pollfds added; returns 1 when ^]^]^] was typed. */
int relay_handle(struct relay *r, struct pollfd *p, int n);
/* Copy whatever the container has written and not yet relayed. */
void relay_drain(struct relay *r);
/* SIGWINCH: copy the host terminal size to the pty. */
void relay_winch(struct relay *r);
void relay_close(struct relay *r);
/* Host terminal size (stdin, else stdout); 0 if none. */
int host_winsize(struct winsize *ws);
/* Restore the host terminal (idempotent, safe on every exit path). */
void console_restore(void);

/* --console-socket (OCI runtimes): connect to the Unix socket PATH and send MASTER over it
 * (SCM_RIGHTS; the data is the pty's name, as runc sends it). 0 or -errno (e set). */
int console_send_socket(const char *path, int master, struct merr *e);
