/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* on_leader / on_exit commands and supervisor_cgroup (see hooks.h, SPEC.md). */
#include "hooks.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
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

pid_t hook_start(const char *const *argv, size_t n, pid_t leader, int quiet_stdout)
{
	char pid[24];
	if (!argv || !n)
		return -1;
	snprintf(pid, sizeof pid, "%d", (int)leader);
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
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

int hook_wait(pid_t child, int timeout_ms, int *timed_out)
{
	if (timed_out)
		*timed_out = 0;
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
