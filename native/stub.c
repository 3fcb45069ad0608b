/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stub init for --as-pid2: PID 1 reaps zombies and turns signals into the payload's shutdown.
 *   SIGTERM, SIGRTMIN+3 (halt), SIGRTMIN+4 (poweroff): SIGTERM to the payload, then, once it
 *     has exited, reboot(RB_POWER_OFF) (the supervisor sees PID 1 killed by SIGINT)
 *   SIGINT (ctrl-alt-del = reboot): SIGTERM to the payload, then reboot(RB_AUTOBOOT) (SIGHUP)
 *   payload exits on its own: exit with its status (128+N when killed by signal N). */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"

static void noop(int sig)
{
	(void)sig;
}

static void stub_sigset(sigset_t *ss)
{
	sigemptyset(ss);
	sigaddset(ss, SIGCHLD);
	sigaddset(ss, SIGTERM);
	sigaddset(ss, SIGINT);
	sigaddset(ss, SIGRTMIN + 3);
	sigaddset(ss, SIGRTMIN + 4);
}

void stub_prepare(void)
{
	/* PID 1 of a pid namespace only receives signals it has a handler for, even when they
	 * are blocked and read through a signalfd: install no-op handlers, then block. */
	sigset_t ss;
	stub_sigset(&ss);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	struct sigaction sa = { .sa_handler = noop };
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < _NSIG; sig++)
		if (sigismember(&ss, sig))
			sigaction(sig, &sa, NULL);
}

void stub_main(pid_t payload)
{
	enum { RUN, POWEROFF, REBOOT } state = RUN;
	sigset_t ss;
	stub_sigset(&ss);
	(void)prctl(PR_SET_NAME, "machina-stub", 0, 0, 0);
	int sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	if (sfd < 0)
		_exit(1);
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof si);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof si)
			_exit(1);
		int sig = (int)si.ssi_signo;
		if (sig == SIGCHLD) {
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
				if (p != payload)
					continue;
				if (state == POWEROFF)
					(void)reboot(RB_POWER_OFF);
				else if (state == REBOOT)
					(void)reboot(RB_AUTOBOOT);
				/* not shutting down (or reboot() refused): exit like the payload */
				if (WIFEXITED(st))
					_exit(WEXITSTATUS(st));
				_exit(128 + WTERMSIG(st));
			}
		} else if (sig == SIGINT) {
			state = REBOOT;
			(void)kill(payload, SIGTERM);
		} else {
			state = POWEROFF;
			(void)kill(payload, SIGTERM);
		}
	}
}
