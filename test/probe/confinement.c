/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A static probe of a process's confinement, for test/integration/enter-confinement.test.ts.
 *
 *   confinement report      one JSON line: /proc/self/status capability/seccomp fields, uid,
 *                           cgroup, limits, namespaces, open fds, and what four system calls the
 *                           container's filter denies return (errno, 0 = it ran)
 *   confinement watch MS    for MS milliseconds, look at every other process of the pid
 *                           namespace: one JSON line naming those seen without a seccomp filter
 *                           ("unconfined") and those whose executable or memory could be
 *                           opened while it was machina-helper ("helper_reachable")
 *   confinement filters PID the seccomp programs of process PID (run on the host, as root):
 *                           one JSON line, {"filters":["HEX",...]}, most recent first
 *                           (PTRACE_SECCOMP_GET_FILTER) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void jstr(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	ssize_t r;
	while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return 0;
}

static const char *field(const char *status, const char *name, char *out, size_t size)
{
	size_t l = strlen(name);
	out[0] = 0;
	for (const char *p = status; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, name, l) && p[l] == ':') {
			p += l + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			size_t k = strcspn(p, "\n");
			snprintf(out, size, "%.*s", (int)(k < size ? k : size - 1), p);
			break;
		}
	return out;
}

static int sys_errno(long r)
{
	return r < 0 ? errno : 0;
}

static int report(void)
{
	static char status[16384], buf[16384];
	char v[256];
	/* the fds first, before this probe opens anything */
	int fds[64], nfd = 0;
	for (int fd = 0; fd < 1024 && nfd < 64; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			fds[nfd++] = fd;
	if (slurp("/proc/self/status", status, sizeof status) < 0)
		return 1;
	printf("{");
	const char *keys[] = { "Seccomp", "Seccomp_filters", "NoNewPrivs", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid", "Gid" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		jstr(keys[i]);
		putchar(':');
		jstr(field(status, keys[i], v, sizeof v));
		putchar(',');
	}
	slurp("/proc/self/cgroup", buf, sizeof buf);
	printf("\"cgroup\":");
	jstr(buf);
	slurp("/proc/self/limits", buf, sizeof buf);
	printf(",\"limits\":");
	jstr(buf);
	printf(",\"ns\":{");
	const char *ns[] = { "mnt", "pid", "uts", "ipc", "net", "cgroup", "user" };
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		char p[64];
		snprintf(p, sizeof p, "/proc/self/ns/%s", ns[i]);
		ssize_t n = readlink(p, v, sizeof v - 1);
		v[n > 0 ? n : 0] = 0;
		printf("%s", i ? "," : "");
		jstr(ns[i]);
		putchar(':');
		jstr(v);
	}
	printf("},\"fds\":[");
	for (int i = 0; i < nfd; i++)
		printf("%s%d", i ? "," : "", fds[i]);
	/* each with arguments that make it fail harmlessly when it runs: only the filter says EPERM */
	printf("],\"syscalls\":{");
	printf("\"keyctl\":%d", sys_errno(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1 /* thread */, 0)));
	printf(",\"bpf\":%d", sys_errno(syscall(SYS_bpf, -1, NULL, 0)));
	printf(",\"perf_event_open\":%d", sys_errno(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)));
	printf(",\"open_by_handle_at\":%d", sys_errno(syscall(SYS_open_by_handle_at, -1, NULL, 0)));
	printf("}}\n");
	return 0;
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int watch(long ms)
{
	static int unconfined[256], reachable[256];
	int nu = 0, nr = 0;
	long long seen = 0;
	char path[64], status[8192], v[64];
	long long end = now_ms() + ms;
	pid_t self = getpid();
	while (now_ms() < end) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			int pid = atoi(de->d_name);
			if (pid <= 1 || pid == self)
				continue;
			seen++;
			snprintf(path, sizeof path, "/proc/%d/status", pid);
			if (slurp(path, status, sizeof status) == 0 && !strcmp(field(status, "Seccomp", v, sizeof v), "0")) {
				int dup = 0;
				for (int i = 0; i < nu; i++)
					dup |= unconfined[i] == pid;
				if (!dup && nu < 256)
					unconfined[nu++] = pid;
			}
			/* the helper's own binary, before the command's execve (CVE-2019-5736), or its
			 * memory (ptrace-attach access) */
			char link[256], target[256] = "";
			snprintf(path, sizeof path, "/proc/%d/exe", pid);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
				ssize_t n = readlink(link, target, sizeof target - 1);
				target[n > 0 ? n : 0] = 0;
				close(fd);
			}
			snprintf(path, sizeof path, "/proc/%d/mem", pid);
			int mem = open(path, O_RDONLY | O_CLOEXEC);
			if (mem >= 0) {
				close(mem);
				snprintf(path, sizeof path, "/proc/%d/exe", pid);
				ssize_t n = readlink(path, link, sizeof link - 1);
				link[n > 0 ? n : 0] = 0;
				if (strstr(link, "machina-helper"))
					snprintf(target, sizeof target, "%s", link);
			}
			if (strstr(target, "machina-helper")) {
				int dup = 0;
				for (int i = 0; i < nr; i++)
					dup |= reachable[i] == pid;
				if (!dup && nr < 256)
					reachable[nr++] = pid;
			}
		}
		if (d)
			closedir(d);
		usleep(500);
	}
	printf("{\"looked\":%lld,\"unconfined\":[", seen);
	for (int i = 0; i < nu; i++)
		printf("%s%d", i ? "," : "", unconfined[i]);
	printf("],\"helper_reachable\":[");
	for (int i = 0; i < nr; i++)
		printf("%s%d", i ? "," : "", reachable[i]);
	printf("]}\n");
	return 0;
}

static int filters(pid_t pid)
{
	int st;
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0 || waitpid(pid, &st, __WALL) < 0) {
		perror("ptrace");
		return 1;
	}
	printf("{\"filters\":[");
	for (long i = 0;; i++) {
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, NULL);
		if (n <= 0)
			break;
		struct sock_filter *f = calloc((size_t)n, sizeof *f);
		if (!f || ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, f) != n)
			break;
		printf("%s\"", i ? "," : "");
		for (size_t k = 0; k < (size_t)n * sizeof *f; k++)
			printf("%02x", ((unsigned char *)f)[k]);
		putchar('"');
		free(f);
	}
	printf("]}\n");
	ptrace(PTRACE_DETACH, pid, 0, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "report"))
		return report();
	if (argc == 3 && !strcmp(argv[1], "watch"))
		return watch(atol(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "filters"))
		return filters((pid_t)atoi(argv[2]));
	fprintf(stderr, "usage: confinement report | watch MS | filters PID\n");
	return 2;
}
