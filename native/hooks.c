/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* on_leader / on_exit commands and supervisor_cgroup (see hooks.h, SPEC.md). */
#include "hooks.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "spec.h"
#include "util.h"

int hook_run(const char *const *argv, size_t n, pid_t leader, int quiet_stdout, int timeout_ms, int *timed_out)
{
	if (timed_out)
		*timed_out = 0;
	pid_t child = hook_start(argv, n, leader, quiet_stdout);
	if (child < 0)
		return -1;
	return hook_wait(child, timeout_ms, timed_out);
}

static pid_t hook_fork(const char *const *argv, size_t n, pid_t leader, int quiet_stdout, int detach)
{
	char pid[24];
	if (!argv || !n)
		return -1;
	snprintf(pid, sizeof pid, "%d", (int)leader);
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		if (detach)
			(void)setsid(); /* outlives the supervisor: not in its session's process group (no ^C, no SIGHUP) */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, 0);
			if (quiet_stdout)
				dup2(nul, 1);
		}
		if (fcntl(1, F_GETFD) < 0)
			dup2(2, 1);
		syscall(SYS_close_range, 3, ~0U, 0);
		const char *av[n + 1];
		for (size_t i = 0; i < n; i++)
			av[i] = leader > 0 && !strcmp(argv[i], HOOK_LEADER_ARG) ? pid : argv[i];
		av[n] = NULL;
		execv(av[0], (char *const *)av);
		dprintf(2, "%s: failed to execute \"%s\": %s\n", g_prog, av[0], strerror(errno));
		_exit(127);
	}
	return child;
}

pid_t hook_start(const char *const *argv, size_t n, pid_t leader, int quiet_stdout)
{
	return hook_fork(argv, n, leader, quiet_stdout, 0);
}

pid_t hook_start_detached(const char *const *argv, size_t n)
{
	return hook_fork(argv, n, 0, 1, 1);
}

int hook_wait(pid_t child, int timeout_ms, int *timed_out)
{
	if (timed_out)
		*timed_out = 0;
	/* a pidfd becomes readable when the child exits: woken at once, no polling */
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (pfd >= 0) {
		long long deadline = monotonic_ms() + timeout_ms;
		for (;;) {
			int st;
			pid_t r = waitpid(child, &st, WNOHANG);
			if (r == child) {
				close(pfd);
				return st;
			}
			if (r < 0 && errno != EINTR) {
				close(pfd);
				return -1;
			}
			long long left = deadline - monotonic_ms();
			if (left <= 0)
				break;
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			(void)poll(&p, 1, (int)left);
		}
		close(pfd);
		timeout_ms = 0; /* timed out: straight to the kill below */
	}
	/* without pidfd_open (Linux < 5.3): look every 2 ms */
	for (int waited = 0; waited < timeout_ms; waited += 2) {
		int st;
		pid_t r = waitpid(child, &st, WNOHANG);
		if (r == child)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(child, SIGKILL);
	(void)waitpid(child, NULL, 0);
	if (timed_out)
		*timed_out = 1;
	return -1;
}

int cgroup_enter_self(const char *dir, struct merr *e)
{
	char buf[4096], num[24];
	size_t l = strlen(dir);
	if (l + sizeof "/cgroup.procs" > sizeof buf)
		return merr_set(e, ENAMETOOLONG, "mkdir", dir, "failed to create cgroup \"%.200s\"", dir);
	memcpy(buf, dir, l + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return merr_sys(e, "mkdir", buf, "failed to create cgroup \"%s\"", buf);
			*p = c;
			if (!c)
				break;
		}
	}
	memcpy(buf + l, "/cgroup.procs", sizeof "/cgroup.procs");
	_cleanup_close_ int fd = open(buf, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "open", buf, "failed to open \"%s\"", buf);
	int k = snprintf(num, sizeof num, "%d\n", (int)getpid());
	if (write(fd, num, (size_t)k) != k)
		return merr_sys(e, "write", buf, "failed to move the supervisor into cgroup \"%s\"", dir);
	return 0;
}

static const char *const oci_stage_names[N_OCI_HOOK_STAGES] = { "createContainer", "startContainer" };

static int oci_hook_one(const struct oci_hook *h, size_t idx, const char *state, int cwdfd, struct merr *e)
{
	const char *name = oci_stage_names[h->stage];
	size_t len = strlen(state);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return merr_sys(e, "pipe2", h->path, "%s hook %zu (\"%s\"): failed to create its stdin", name, idx, h->path);
	/* The whole state is in the pipe before the hook starts: no writer to block or to be
	 * killed by SIGPIPE when a hook does not read it. */
	if (len > 65536 && fcntl(p[1], F_SETPIPE_SZ, (int)len) < 0) {
		close(p[0]), close(p[1]);
		return merr_sys(e, "fcntl", h->path, "%s hook %zu (\"%s\"): its state (%zu bytes) does not fit in a pipe", name, idx,
				h->path, len);
	}
	ssize_t w = write(p[1], state, len);
	close(p[1]);
	if (w != (ssize_t)len) {
		close(p[0]);
		return merr_sys(e, "write", h->path, "%s hook %zu (\"%s\"): failed to write its state", name, idx, h->path);
	}
	pid_t child = fork();
	if (child < 0) {
		close(p[0]);
		return merr_sys(e, "fork", h->path, "%s hook %zu (\"%s\"): failed to start it", name, idx, h->path);
	}
	if (child == 0) {
		reset_signals();
		if (dup2(p[0], 0) < 0)
			_exit(127);
		if (cwdfd >= 0 && fchdir(cwdfd) < 0)
			_exit(127);
		syscall(SYS_close_range, 3, ~0U, 0);
		const char *av[h->n_argv + 1], *ev[h->n_env + 1];
		memcpy(av, h->argv, h->n_argv * sizeof *av);
		av[h->n_argv] = NULL;
		memcpy(ev, h->env, h->n_env * sizeof *ev);
		ev[h->n_env] = NULL;
		execve(h->path, (char *const *)av, (char *const *)ev);
		dprintf(2, "%s: %s hook %zu: failed to execute \"%s\": %s\n", g_prog, name, idx, h->path, strerror(errno));
		_exit(127);
	}
	close(p[0]);
	int timed_out = 0;
	int st = hook_wait(child, h->timeout_s > 0 && h->timeout_s < INT_MAX / 1000 ? h->timeout_s * 1000 : INT_MAX, &timed_out);
	if (timed_out)
		return merr_set(e, ETIMEDOUT, "execve", h->path, "%s hook %zu (\"%s\") did not finish within %d s", name, idx, h->path,
				h->timeout_s);
	if (st < 0)
		return merr_sys(e, "waitpid", h->path, "%s hook %zu (\"%s\"): failed to wait for it", name, idx, h->path);
	if (WIFSIGNALED(st))
		return merr_set(e, 0, "execve", h->path, "%s hook %zu (\"%s\") was killed by signal %d", name, idx, h->path, WTERMSIG(st));
	if (WEXITSTATUS(st) != 0)
		return merr_set(e, 0, "execve", h->path, "%s hook %zu (\"%s\") failed with exit status %d", name, idx, h->path,
				WEXITSTATUS(st));
	return 0;
}

int oci_hooks_run(const struct spec *s, int stage, int cwdfd, struct merr *e)
{
	size_t idx = 0;
	char *state = NULL;
	for (size_t i = 0; i < s->n_oci_hooks; i++) {
		const struct oci_hook *h = &s->oci_hooks[i];
		if (h->stage != stage)
			continue;
		if (!state && asprintf(&state, "{\"pid\":%d,%s}", (int)getpid(), s->oci_hook_state[stage]) < 0)
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate a hook's state");
		int r = oci_hook_one(h, idx++, state, cwdfd, e);
		if (r < 0) {
			free(state);
			return r;
		}
	}
	free(state);
	return 0;
}
