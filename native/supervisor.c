/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The supervisor ("machina-sup"): registry, clone, cgroups, signals, console relay, notify,
 * reboot loop, exit status. Single-threaded; one poll loop; no stdio buffers. */
#include "supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "binds.h"
#include "clone.h"
#include "conlog.h"
#include "devices.h"
#include "console.h"
#include "hooks.h"
#include "imagelock.h"
#include "netlink.h"
#include "proto.h"
#include "userns.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int g_status_fd = -1;
static struct conlog g_log = { .fd = -1, .rfd = -1, .wfd = -1 };

/* ---- status fd ---- */

/* One JSON object (LINE, ending in '}') with "t" (realtime_us: when it happened) added. */
static void status_line_at(const char *line, long long t)
{
	if (g_status_fd < 0)
		return;
	size_t l = strlen(line);
	char buf[1400];
	if (l < 2 || line[l - 1] != '}' || l + 32 > sizeof buf)
		return;
	memcpy(buf, line, l - 1);
	l--;
	l += (size_t)snprintf(buf + l, sizeof buf - l, ",\"t\":%lld}\n", t);
	if (write_all(g_status_fd, buf, l) < 0)
		g_status_fd = -1; /* reader went away: keep running */
}

static void status_line(const char *line)
{
	status_line_at(line, realtime_us());
}

static void report(const struct merr *e)
{
	char json[1300];
	merr_print(e);
	merr_json(e, json, sizeof json);
	status_line(json);
}

/* ---- host-side helpers ---- */

/* mkdir -p; `each` (if any) is called for every directory on the way, made now or already there. */
static int mkdir_p_each(const char *path, mode_t mode, int (*each)(const char *dir, struct merr *e), struct merr *e)
{
	char buf[4096];
	size_t l = strlen(path);
	if (l >= sizeof buf)
		return merr_set(e, ENAMETOOLONG, "mkdir", path, "failed to create directory \"%.200s\"", path);
	memcpy(buf, path, l + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return merr_sys(e, "mkdir", buf, "failed to create directory \"%s\"", buf);
			int r = each ? each(buf, e) : 0;
			if (r < 0)
				return r;
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

static int mkdir_p_host(const char *path, mode_t mode, struct merr *e)
{
	return mkdir_p_each(path, mode, NULL, e);
}

/*
 * cgroup v1 cpuset: a new cpuset's cpuset.cpus and cpuset.mems are empty and the kernel refuses
 * tasks in it until both are set. Give each empty one its parent's, as runc's ensureParent does.
 * Not a v1 cgroup, no cpuset files, or already set: nothing to do.
 */
static int cpuset_inherit(const char *dir, struct merr *e)
{
	struct statfs sf;
	if (statfs(dir, &sf) < 0 || sf.f_type != CGROUP_SUPER_MAGIC)
		return 0;
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (size_t i = 0; i < 2; i++) {
		char path[4200], parent[4200], buf[4096];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? 0 : merr_sys(e, "open", path, "failed to open \"%s\"", path);
		ssize_t n = read(fd, buf, sizeof buf - 1);
		if (n < 0)
			return merr_sys(e, "read", path, "failed to read \"%s\"", path);
		if (n > 0 && buf[0] != '\n')
			continue;
		const char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			continue;
		snprintf(parent, sizeof parent, "%.*s/%s", (int)(slash - dir), dir, files[i]);
		_cleanup_close_ int pfd = open(parent, O_RDONLY | O_CLOEXEC);
		if (pfd < 0)
			return merr_sys(e, "open", parent, "failed to open \"%s\"", parent);
		n = read(pfd, buf, sizeof buf - 1);
		if (n < 0)
			return merr_sys(e, "read", parent, "failed to read \"%s\"", parent);
		if (n == 0 || buf[0] == '\n')
			continue; /* the parent's is empty too (not ours to fill) */
		if (write(fd, buf, (size_t)n) != n)
			return merr_sys(e, "write", path, "failed to give \"%s\" its parent's value", path);
	}
	return 0;
}

/* mkdir -p of a cgroup directory; every cgroup v1 cpuset on the way gets cpus and mems (cpuset_inherit). */
static int mkdir_cgroup(const char *path, struct merr *e)
{
	return mkdir_p_each(path, 0755, cpuset_inherit, e);
}

/*
 * Create the container's cgroups before the clone, and return an fd of the first one on
 * cgroup2 for CLONE_INTO_CGROUP (-1 if none): starting the child inside its cgroup avoids a
 * migration, which costs a grace period (~10 ms) on a cold cgroup hierarchy.
 */
static int prepare_cgroups(const struct spec *s, size_t *into, struct merr *e)
{
	int fd = -1;
	for (size_t i = 0; i < s->n_cgroups; i++) {
		int r = mkdir_cgroup(s->cgroups[i], e);
		if (r < 0) {
			if (fd >= 0)
				close(fd);
			return r;
		}
		struct statfs sf;
		if (fd < 0 && statfs(s->cgroups[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
			fd = open(s->cgroups[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
			*into = i;
		}
	}
	return fd;
}

static int join_cgroup(const char *dir, pid_t pid, struct merr *e)
{
	char path[4200], num[24];
	int r = mkdir_cgroup(dir, e);
	if (r < 0)
		return r;
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "open", path, "failed to open \"%s\"", path);
	int n = snprintf(num, sizeof num, "%d\n", (int)pid);
	if (write(fd, num, (size_t)n) != n)
		return merr_sys(e, "write", path, "failed to move the container into cgroup \"%s\"", dir);
	return 0;
}

/* Remove a cgroup and every cgroup below it (a booted init creates its own), depth first. */
static int rmdir_tree(const char *dir, int depth)
{
	if (depth > 64)
		return -ELOOP;
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char sub[4200];
			if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= (int)sizeof sub)
				continue;
			(void)rmdir_tree(sub, depth + 1);
		}
		closedir(d);
	}
	return rmdir(dir) == 0 ? 0 : -errno;
}

/* A cgroup whose last processes are still exiting is busy: retry for up to 2 s. */
static void remove_cgroup(const char *dir)
{
	/* Checked every 1 ms (the last processes of a dead PID namespace are usually gone within
	 * a few ms; a coarser step would add its whole length to every stop), for up to 2 s. */
	for (int i = 0; i < 2000; i++) {
		int r = rmdir_tree(dir, 0);
		if (r == 0 || r == -ENOENT)
			return;
		if (r != -EBUSY && r != -ENOTEMPTY)
			return;
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* ---- registry ---- */

struct registry {
	const char *dir;
	int lockfd;
};

/* Whether fd is still the file at path (a remover may have unlinked it under us). */
static int same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Take the machine's lock. Whoever removes a stale entry (the next start, machinactl) holds
 * its lock while unlinking it, so a lock that is busy or stops being the file at the path
 * is retried for a moment before the machine counts as running.
 */
static int registry_lock(struct registry *g, const struct spec *s, struct merr *e)
{
	char path[4200];
	g->dir = s->registry;
	g->lockfd = -1;
	if (!g->dir)
		return 0;
	snprintf(path, sizeof path, "%s/lock", g->dir);
	for (int attempt = 0; attempt < 50; attempt++) { /* 50 x 4 ms */
		int r = mkdir_p_host(g->dir, 0755, e);
		if (r < 0)
			return r;
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return merr_sys(e, "open", path, "failed to open \"%s\"", path);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			if (same_file(fd, path)) {
				g->lockfd = fd;
				return 0;
			}
		} else if (errno != EWOULDBLOCK) {
			r = merr_sys(e, "flock", path, "failed to lock \"%s\"", path);
			close(fd);
			return r;
		}
		close(fd);
		struct timespec ts = { 0, 4 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return merr_set(e, 0, "flock", path, "machine \"%s\" is already running", s->machine ? s->machine : g->dir);
}

static int registry_write(struct registry *g, const struct spec *s, pid_t leader, struct merr *e)
{
	char tmp[4200], final[4200], head[64];
	if (!g->dir)
		return 0;
	snprintf(tmp, sizeof tmp, "%s/.state.json.tmp", g->dir);
	snprintf(final, sizeof final, "%s/state.json", g->dir);
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return merr_sys(e, "open", tmp, "failed to write \"%s\"", tmp);
	int n = snprintf(head, sizeof head, "{\"leader\":%d,\"supervisor\":%d", (int)leader, (int)getpid());
	const char *body = s->state_json ? s->state_json : "";
	if (write_all(fd, head, (size_t)n) < 0 || (*body && (write_all(fd, ",", 1) < 0 || write_all(fd, body, strlen(body)) < 0)) ||
	    write_all(fd, "}\n", 2) < 0)
		return merr_sys(e, "write", tmp, "failed to write \"%s\"", tmp);
	if (rename(tmp, final) < 0)
		return merr_sys(e, "rename", final, "failed to write \"%s\"", final);
	return 0;
}

/*
 * host_record: each file written atomically (PATH.#machina + rename, 0644) right after
 * state.json, so for every leader, with every "{leader}" in its body replaced by the leader's
 * pid. Removing them at exit is a host_remove of the same path.
 */
static int host_records_write(const struct spec *s, pid_t leader, struct merr *e)
{
	char tmp[4200], pid[24];
	snprintf(pid, sizeof pid, "%d", (int)leader);
	for (size_t i = 0; i < s->n_host_records; i++) {
		const struct host_record *h = &s->host_records[i];
		snprintf(tmp, sizeof tmp, "%s.#machina", h->path);
		_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return merr_sys(e, "open", tmp, "failed to write \"%s\"", tmp);
		(void)fchmod(fd, 0644);
		for (const char *p = h->body; *p;) {
			const char *q = strstr(p, "{leader}");
			size_t n = q ? (size_t)(q - p) : strlen(p);
			if ((n && write_all(fd, p, n) < 0) || (q && write_all(fd, pid, strlen(pid)) < 0)) {
				int r = merr_sys(e, "write", tmp, "failed to write \"%s\"", tmp);
				unlink(tmp);
				return r;
			}
			p = q ? q + strlen("{leader}") : p + n;
		}
		if (rename(tmp, h->path) < 0) {
			int r = merr_sys(e, "rename", h->path, "failed to write \"%s\"", h->path);
			unlink(tmp);
			return r;
		}
	}
	/* host_record_link: with the files, so that a start that ends before its first leader leaves none */
	for (size_t i = 0; i < s->n_host_record_links; i++) {
		const struct host_record *l = &s->host_record_links[i];
		snprintf(tmp, sizeof tmp, "%s.#machina", l->path);
		unlink(tmp);
		if (symlink(l->body, tmp) < 0)
			return merr_sys(e, "symlink", tmp, "failed to create \"%s\"", tmp);
		if (rename(tmp, l->path) < 0) {
			int r = merr_sys(e, "rename", l->path, "failed to create \"%s\"", l->path);
			unlink(tmp);
			return r;
		}
	}
	return 0;
}

static void registry_remove(struct registry *g)
{
	char path[4200];
	if (!g->dir || g->lockfd < 0)
		return;
	snprintf(path, sizeof path, "%s/state.json", g->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/.state.json.tmp", g->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock", g->dir);
	unlink(path);
	rmdir(g->dir);
	close(g->lockfd);
	g->lockfd = -1;
}

/* ---- notify ---- */

static int g_fwd_fd = -1;

static void notify_forward(const struct spec *s, const char *msg, size_t len)
{
	if (!s->notify_forward)
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t pl = strlen(s->notify_forward);
	if (pl >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, s->notify_forward, pl);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	if (g_fwd_fd < 0)
		g_fwd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (g_fwd_fd >= 0)
		(void)sendto(g_fwd_fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + (sa.sun_path[0] ? 1 : 0)));
}

static void signal_ready(const struct spec *s, int *ready_sent)
{
	if (*ready_sent)
		return;
	*ready_sent = 1;
	status_line("{\"event\":\"ready\"}");
	notify_forward(s, "READY=1", 7);
}

static void notify_read(const struct spec *s, int fd, int *ready_sent)
{
	static char buf[4097];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf[n] = 0;
		for (char *line = buf; line && *line;) {
			char *nl = strchr(line, '\n');
			if (nl)
				*nl = 0;
			if (!strcmp(line, "READY=1"))
				signal_ready(s, ready_sent);
			else if (!strncmp(line, "STATUS=", 7))
				notify_forward(s, line, strlen(line));
			line = nl ? nl + 1 : NULL;
		}
	}
}

/* ---- one container lifetime ---- */

struct run {
	pid_t pid;
	int pidfd, sock, notify_fd;
	int term_requested, killed;
	int errored, started, exited, setup_ready, parked;
	struct merr err;
	siginfo_t si;
	struct relay relay;
};

static void dispatch(const struct spec *s, struct run *R, struct msg *mp, int fd)
{
	struct msg m = *mp;
	switch (m.type) {
	case MSG_SETUP: R->setup_ready = 1; break;
	case MSG_STAGE:
		status_line_at(m.stage == STAGE_MOUNTS  ? "{\"stage\":\"mounts\"}"
			       : m.stage == STAGE_PIVOT ? "{\"stage\":\"pivot\"}"
							: "{\"stage\":\"exec\"}",
			       m.t ? m.t : realtime_us());
		break;
	case MSG_ERROR:
		if (!R->errored) {
			R->errored = 1;
			R->err = m.err;
			report(&m.err);
		}
		break;
	case MSG_PARKED: R->parked = 1; break;
	case MSG_FD_CONSOLE:
		if (fd >= 0 && s->console_socket) {
			struct merr e = { 0 };
			if (console_send_socket(s->console_socket, fd, &e) < 0 && !R->errored) {
				R->errored = 1;
				R->err = e;
				report(&e);
				(void)kill(R->pid, SIGKILL);
			}
		} else if (fd >= 0 && R->relay.master < 0) {
			struct merr e;
			if (relay_start(&R->relay, fd, s->console == CONSOLE_INTERACTIVE, &e) < 0)
				report(&e);
			fd = -1;
		}
		break;
	case MSG_FD_NOTIFY:
		if (fd >= 0 && R->notify_fd < 0) {
			R->notify_fd = fd;
			fd = -1;
		}
		break;
	}
	if (fd >= 0)
		close(fd);
}

/* One message from the child (R->sock) or the setup process during the user namespace setup:
 * 1 = handled, 0 = EOF, -errno. */
static int handle_setup_msg(const struct spec *s, struct run *R, int sock)
{
	struct msg m;
	int fd;
	int r = msg_recv(sock, &m, &fd);
	if (r <= 0) {
		if (sock == R->sock) {
			close(R->sock);
			R->sock = -1;
		}
		return r;
	}
	dispatch(s, R, &m, fd);
	return 1;
}

static void handle_msg(const struct spec *s, struct run *R, int *ready_sent)
{
	struct msg m;
	int fd;
	int r = msg_recv(R->sock, &m, &fd);
	if (r <= 0) {
		close(R->sock);
		R->sock = -1;
		if (!R->errored && !R->started) {
			/* the sync socket is close-on-exec: EOF without error = the payload runs */
			char line[128];
			R->started = 1;
			snprintf(line, sizeof line, "{\"event\":\"started\",\"leader\":%d,\"supervisor\":%d}", (int)R->pid, (int)getpid());
			status_line(line);
			if (!s->notify_ready)
				signal_ready(s, ready_sent);
		}
		return;
	}
	dispatch(s, R, &m, fd);
}

static void handle_signal(const struct spec *s, struct run *R, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof si) == sizeof si) {
		int sig = (int)si.ssi_signo;
		switch (sig) {
		case SIGTERM:
		case SIGINT:
		case SIGHUP:
			if (!R->term_requested) {
				R->term_requested = 1;
				(void)kill(R->pid, s->kill_signal);
			} else if (sig == SIGTERM) {
				R->killed = 1;
				(void)kill(R->pid, SIGKILL);
			} else {
				(void)kill(R->pid, s->kill_signal);
			}
			break;
		case SIGWINCH: relay_winch(&R->relay); break;
		default: break;
		}
	}
}

/* netns: the container joins a network namespace prepared by the TypeScript side (src/net/).
 * The supervisor enters it just for the clone (so the child, its sysfs fsmount and any user
 * namespace created with it live there) and returns to its own at once. */
/* netns, ipcns, utsns, mntns, pidns: namespaces the container joins instead of creating them
 * (nsfs bind mounts, e.g. a pod's, or /proc/PID/ns/…). The supervisor joins them right before
 * each clone and returns to its own right after, so the child (and a user namespace cloned with
 * it) is born in them. For the PID namespace that is the namespace of the supervisor's children
 * (pid_for_children); joining a mount namespace resets the root and working directory, which the
 * supervisor gets back with its own namespace (and g_cwd). */
struct joined_ns {
	int flag;
	const char *kind, *self;
	int fd, own;
};
static struct joined_ns g_joined[] = {
	{ CLONE_NEWNET, "network", "/proc/self/ns/net", -1, -1 },
	{ CLONE_NEWIPC, "IPC", "/proc/self/ns/ipc", -1, -1 },
	{ CLONE_NEWUTS, "UTS", "/proc/self/ns/uts", -1, -1 },
	{ CLONE_NEWNS, "mount", "/proc/self/ns/mnt", -1, -1 },
	{ CLONE_NEWPID, "PID", "/proc/self/ns/pid_for_children", -1, -1 },
};
static int g_cwd = -1; /* with mntns: the supervisor's working directory */

static const char *joined_path(const struct spec *s, size_t i)
{
	const char *p[] = { s->netns_path, s->ipcns_path, s->utsns_path, s->mntns_path, s->pidns_path };
	return p[i];
}

static int netns_open(const struct spec *s, struct merr *e)
{
	for (size_t i = 0; i < ARRAY_SIZE(g_joined); i++) {
		const char *path = joined_path(s, i);
		struct joined_ns *j = &g_joined[i];
		if (!path)
			continue;
		j->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (j->fd < 0)
			return merr_sys(e, "open", path, "failed to open the %s namespace \"%s\"", j->kind, path);
		j->own = open(j->self, O_RDONLY | O_CLOEXEC);
		if (j->own < 0)
			return merr_sys(e, "open", j->self, "failed to open the supervisor's %s namespace", j->kind);
	}
	/* utsns with hostname: never the supervisor's own UTS namespace (that would rename the host) */
	struct stat a, b;
	if (s->hostname && s->utsns_path && fstat(g_joined[2].fd, &a) == 0 && fstat(g_joined[2].own, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev)
		return merr_set(e, EINVAL, "setns", s->utsns_path,
				"the UTS namespace \"%s\" is the host's: setting the hostname in it would rename the host", s->utsns_path);
	if (s->mntns_path && (g_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return merr_sys(e, "open", ".", "failed to open the supervisor's working directory");
	return 0;
}

static int netns_enter(const struct spec *s, struct merr *e)
{
	for (size_t i = 0; i < ARRAY_SIZE(g_joined); i++)
		if (g_joined[i].fd >= 0 && setns(g_joined[i].fd, g_joined[i].flag) < 0)
			return merr_sys(e, "setns", joined_path(s, i), "failed to join the %s namespace \"%s\"", g_joined[i].kind,
					joined_path(s, i));
	return 0;
}

static void netns_leave(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(g_joined); i++)
		if (g_joined[i].own >= 0 && setns(g_joined[i].own, g_joined[i].flag) < 0)
			_exit(1); /* never go on in the container's namespaces */
	if (g_cwd >= 0 && fchdir(g_cwd) < 0)
		_exit(1);
}

/* With a user namespace the child is cloned into a mount namespace of the host's user namespace
 * (M0, made by unshare just before the clone), not into one of its own: the setup process builds
 * the root there, and the child's own copy of it then has every mount locked (SPEC.md "User
 * namespaces"). The supervisor returns to its own mount namespace right after the clone. */
static int g_own_mntns_fd = -1;

static int mntns_open(const struct spec *s, struct merr *e)
{
	if (!s->us.enabled)
		return 0;
	g_own_mntns_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (g_own_mntns_fd < 0)
		return merr_sys(e, "open", "/proc/self/ns/mnt", "failed to open the supervisor's mount namespace");
	return 0;
}

static int mntns_enter_setup(const struct spec *s, struct merr *e)
{
	if (s->us.enabled && unshare(CLONE_NEWNS) < 0)
		return merr_sys(e, "unshare", "", "failed to create the mount namespace for the container's setup");
	return 0;
}

static void mntns_leave(const struct spec *s)
{
	if (s->us.enabled && setns(g_own_mntns_fd, CLONE_NEWNS) < 0)
		_exit(1); /* never go on in the container's mount namespace */
}

/* User namespace: after the child said MSG_SETUP (it is root of its namespaces), fork the setup
 * process, relay what it says (stages, an error, the notify socket) and wait for it. 0, or -1
 * when the setup failed (reported). */
static int host_setup(const struct spec *s, struct run *R)
{
	struct merr e = { 0 };
	while (!R->setup_ready && !R->errored && R->sock >= 0) {
		struct pollfd q = { .fd = R->sock, .events = POLLIN };
		if (poll(&q, 1, -1) < 0 && errno != EINTR) {
			merr_sys(&e, "poll", "", "failed to wait for the container");
			report(&e);
			return -1;
		}
		handle_setup_msg(s, R, R->sock);
	}
	if (!R->setup_ready)
		return -1; /* the child failed (reported) or is gone */
	int sq[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sq) < 0) {
		merr_sys(&e, "socketpair", "", "failed to create the setup socket");
		report(&e);
		return -1;
	}
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		merr_sys(&e, "fork", "", "failed to start the container's setup");
		report(&e);
		close(sq[0]);
		close(sq[1]);
		return -1;
	}
	if (pid == 0) {
		close(sq[0]);
		host_setup_main(s, R->pidfd, sq[1], self);
	}
	close(sq[1]);
	int errored = R->errored;
	while (handle_setup_msg(s, R, sq[0]) > 0)
		;
	close(sq[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		if (R->errored == errored) {
			merr_set(&e, EIO, "fork", "", "the container's setup failed");
			report(&e);
			R->errored = 1;
		}
		return -1;
	}
	return R->errored ? -1 : 0;
}

/* on_exit: run the undo command once the container is gone (stdin /dev/null, our stderr), wait
 * up to 60 s for it. Its failure is reported by the command itself; the exit status stays. */
/* prestart: a command run in the background while the container is being set up (the nft
 * table of src/net/), awaited before the payload runs: the child sets up its root meanwhile and
 * waits for a last MSG_GO before it execs. */
static pid_t g_prestart = -1;

/* oci_detach: the payload waits at the exec fifo and is left running; nothing is undone. */
static int g_detached;

static int prestart_wait(const struct spec *s, struct merr *e)
{
	if (g_prestart < 0)
		return 0;
	int timed_out = 0;
	int st = hook_wait(g_prestart, 60000, &timed_out);
	g_prestart = -1;
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (!e)
		return -1;
	if (timed_out)
		return merr_set(e, ETIMEDOUT, "prestart", s->prestart[0], "the prestart command \"%s\" did not finish within 60 s",
				s->prestart[0]);
	if (st >= 0 && WIFSIGNALED(st))
		return merr_set(e, 0, "prestart", s->prestart[0], "the prestart command \"%s\" was killed by signal %d", s->prestart[0],
				WTERMSIG(st));
	return merr_set(e, 0, "prestart", s->prestart[0], "the prestart command \"%s\" failed with exit status %d", s->prestart[0],
			st >= 0 ? WEXITSTATUS(st) : -1);
}

static void run_on_exit(const struct spec *s)
{
	(void)prestart_wait(s, NULL); /* never undo before it is done */
	if (s->exit_mark) {
		int fd = open(s->exit_mark, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd >= 0)
			close(fd);
	}
	if (!s->on_exit || !s->n_on_exit)
		return;
	if (s->on_exit_detach)
		(void)hook_start_detached(s->on_exit, s->n_on_exit);
	else
		(void)hook_run(s->on_exit, s->n_on_exit, 0, 0, 60000, NULL);
}

/* on_leader: run once the leader exists and sits in its cgroups, before it goes on (e.g. the
 * registration with systemd-machined). A failure ends this start. */
static int run_on_leader(const struct spec *s, pid_t leader, struct merr *e)
{
	if (!s->on_leader || !s->n_on_leader)
		return 0;
	int timed_out = 0;
	int st = hook_run(s->on_leader, s->n_on_leader, leader, 1, 60000, &timed_out);
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (timed_out)
		return merr_set(e, ETIMEDOUT, "on_leader", s->on_leader[0], "the on_leader command \"%s\" did not finish within 60 s",
				s->on_leader[0]);
	if (st >= 0 && WIFSIGNALED(st))
		return merr_set(e, 0, "on_leader", s->on_leader[0], "the on_leader command \"%s\" was killed by signal %d", s->on_leader[0],
				WTERMSIG(st));
	if (st >= 0)
		return merr_set(e, 0, "on_leader", s->on_leader[0], "the on_leader command \"%s\" failed with exit status %d",
				s->on_leader[0], WEXITSTATUS(st));
	return merr_set(e, ECHILD, "fork", s->on_leader[0], "failed to run the on_leader command \"%s\"", s->on_leader[0]);
}

/* Once a container is released, the long-lived supervisor keeps only what it still needs: the
 * child's setup data goes when no other clone can follow (no reboot), and the heap's free pages
 * go back to the kernel. */
static void shed(struct spec *s)
{
	if (!(s->boot || s->as_pid2) || s->on_reboot_exit133)
		spec_shed_child(s);
	malloc_trim(0);
}

/* clone3 of the container: born in its first cgroup with CLONE_INTO_CGROUP when cgfd >= 0
 * (closed here), else (or on an older kernel: *into reset) joined after the clone. */
static long clone_child(const struct clone_args *ca, int cgfd, size_t *into)
{
	if (cgfd >= 0) {
		int unsupported;
		long pid = clone_into_cgroup(ca, cgfd, &unsupported);
		if (pid != 0)
			close(cgfd);
		if (!unsupported)
			return pid;
		*into = (size_t)-1; /* older kernel: fall back to joining after the clone */
	}
	return syscall(SYS_clone3, ca, sizeof *ca);
}

/* The container runs: events until the leader exits (the sync socket's messages, sd_notify,
 * the console log, the console relay, signals), then what was sent just before. -1 when poll
 * fails (e set; the child is still there). */
static int wait_exit(struct spec *s, struct run *R, int sfd, int *ready_sent, struct merr *e)
{
	while (!R->exited && !(s->oci_detach && R->parked && !R->errored)) {
		struct pollfd p[8];
		int n = 0, isock = -1, inotify = -1, ilog = -1, ipid, irel;
		p[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		ipid = n;
		p[n++] = (struct pollfd){ .fd = R->pidfd, .events = POLLIN };
		if (R->sock >= 0) {
			isock = n;
			p[n++] = (struct pollfd){ .fd = R->sock, .events = POLLIN };
		}
		if (R->notify_fd >= 0) {
			inotify = n;
			p[n++] = (struct pollfd){ .fd = R->notify_fd, .events = POLLIN };
		}
		if (g_log.rfd >= 0) {
			ilog = n;
			p[n++] = (struct pollfd){ .fd = g_log.rfd, .events = POLLIN };
		}
		irel = n;
		n += relay_pollfds(&R->relay, p + n);
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return merr_sys(e, "poll", "", "failed to wait for events");
		}
		if (isock >= 0 && p[isock].revents)
			handle_msg(s, R, ready_sent);
		if (inotify >= 0 && p[inotify].revents)
			notify_read(s, R->notify_fd, ready_sent);
		if (ilog >= 0 && p[ilog].revents)
			conlog_pump(&g_log, 4); /* a few buffers, then the other fds get their turn */
		if (relay_handle(&R->relay, p + irel, n - irel)) {
			R->killed = 1;
			(void)kill(R->pid, SIGKILL);
		}
		if (p[0].revents)
			handle_signal(s, R, sfd);
		if (p[ipid].revents) {
			memset(&R->si, 0, sizeof R->si);
			if (waitid((idtype_t)P_PIDFD, (id_t)R->pidfd, &R->si, WEXITED | WNOHANG) == 0 && R->si.si_pid)
				R->exited = 1;
		}
	}
	/* Messages sent just before the exit, and the last output. */
	while (R->sock >= 0) {
		struct pollfd q = { .fd = R->sock, .events = POLLIN };
		if (poll(&q, 1, 0) <= 0)
			break;
		handle_msg(s, R, ready_sent);
	}
	relay_drain(&R->relay);
	relay_close(&R->relay);
	conlog_pump(&g_log, 0);
	return 0;
}

/* The exit status of a finished run: the leader's, 128+N for a signal, 0 for a boot
 * container's power-off (SIGINT) or reboot (SIGHUP not asked for: *reboot set). */
static int exit_status(const struct spec *s, const struct run *R, int *reboot)
{
	if (R->si.si_code == CLD_EXITED)
		return R->si.si_status;
	int sig = R->si.si_status;
	if ((s->boot || s->as_pid2) && sig == SIGINT)
		return 0; /* powered off */
	if ((s->boot || s->as_pid2) && sig == SIGHUP && !R->term_requested) {
		*reboot = 1;
		return 0;
	}
	return 128 + sig;
}

/* Returns the exit status; *reboot set when the container rebooted. -1 = setup error in the
 * supervisor (already reported). msg gets the exit line (empty after a setup failure, which
 * has printed its own message, and after a reboot). */
static int run_once(struct spec *s, struct registry *g, int sfd, int *reboot, int *ready_sent, char *msg, size_t msgsz)
{
	struct run R = { .pid = -1, .pidfd = -1, .sock = -1, .notify_fd = -1 };
	struct merr e = { 0 };
	int sp[2];
	int rc = 1;
	relay_init(&R.relay);
	*reboot = 0;
	msg[0] = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		merr_sys(&e, "socketpair", "", "failed to create the sync socket");
		report(&e);
		return 1;
	}
	struct clone_args ca = {
		.flags = (s->us.enabled ? s->clone_flags & ~(uint64_t)CLONE_NEWNS : s->clone_flags) | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&R.pidfd,
		.exit_signal = SIGCHLD,
	};
	size_t into = (size_t)-1;
	int cgfd = -1;
	if (netns_enter(s, &e) < 0 || userns_before_clone(s, &e) < 0 || mntns_enter_setup(s, &e) < 0 ||
	    (cgfd = prepare_cgroups(s, &into, &e)) < -1 || (cgfd == -1 && e.err)) {
		netns_leave();
		mntns_leave(s);
		report(&e);
		userns_after_clone(s);
		close(sp[0]);
		close(sp[1]);
		return 1;
	}
	long pid = clone_child(&ca, cgfd, &into);
	if (pid != 0) {
		netns_leave();
		mntns_leave(s);
	}
	if (pid > 0 && !s->us.enabled)
		userns_after_clone(s); /* with a user namespace the setup process still needs them */
	if (pid < 0) {
		userns_after_clone(s);
		merr_sys(&e, "clone3", "", "failed to create the container's namespaces");
		report(&e);
		close(sp[0]);
		close(sp[1]);
		return 1;
	}
	if (pid == 0) {
		close(sp[0]);
		close(sfd);
		child_main(s, sp[1]);
	}
	R.pid = (pid_t)pid;
	R.sock = sp[0];
	close(sp[1]);
	status_line("{\"stage\":\"namespaces\"}");

	for (size_t i = 0; i < s->n_cgroups; i++)
		if (i != into && join_cgroup(s->cgroups[i], R.pid, &e) < 0)
			goto kill_child;
	if (run_on_leader(s, R.pid, &e) < 0)
		goto kill_child;
	if (sec_cgroup_write(&s->sec, &e) < 0)
		goto kill_child;
	if (devices_apply(s->device_cgroup, s->device_rules, s->n_device_rules, &e) < 0)
		goto kill_child;
	if (userns_setup_child(s, R.pid, &e) < 0)
		goto kill_child;
	/* the main veth, its peer straight into the child's network namespace (net_* records) */
	if (net_setup(&s->net, R.pid, &e) < 0)
		goto kill_child;
	if (registry_write(g, s, R.pid, &e) < 0 || host_records_write(s, R.pid, &e) < 0)
		goto kill_child;
	{
		struct msg go = { .type = MSG_GO };
		go.has_ws = (s->console == CONSOLE_INTERACTIVE || s->console == CONSOLE_READ_ONLY) && host_winsize(&go.ws);
		if (msg_send(R.sock, &go, -1) < 0) {
			merr_set(&e, EPIPE, "sendmsg", "", "failed to start the container");
			goto kill_child;
		}
	}
	if (s->us.enabled) {
		int hr = host_setup(s, &R);
		userns_after_clone(s);
		if (hr < 0)
			goto kill_quiet;
		struct msg go = { .type = MSG_GO };
		if (msg_send(R.sock, &go, -1) < 0) {
			merr_set(&e, EPIPE, "sendmsg", "", "failed to start the container");
			goto kill_child;
		}
	}
	if (s->n_prestart) {
		/* the child is setting up its root; the payload waits for the prestart's outcome */
		if (prestart_wait(s, &e) < 0)
			goto kill_child;
		struct msg go = { .type = MSG_GO };
		if (msg_send(R.sock, &go, -1) < 0) {
			merr_set(&e, EPIPE, "sendmsg", "", "failed to start the container");
			goto kill_child;
		}
	}
	shed(s);

	if (wait_exit(s, &R, sfd, ready_sent, &e) < 0)
		goto kill_child;
	if (s->oci_detach && R.parked && !R.exited && !R.errored) {
		char line[128];
		snprintf(line, sizeof line, "{\"event\":\"parked\",\"leader\":%d,\"supervisor\":%d}", (int)R.pid, (int)getpid());
		status_line(line);
		g_detached = 1;
		rc = 0;
		goto out;
	}
	if (s->oci_detach && R.errored)
		goto kill_quiet;

	rc = exit_status(s, &R, reboot);
	if (!R.errored && !*reboot)
		exit_line(s->machine ? s->machine : s->root, R.si.si_code == CLD_EXITED, R.si.si_status,
			  (s->boot || s->as_pid2) && R.si.si_code != CLD_EXITED && R.si.si_status == SIGINT, msg, msgsz);
	goto out;

kill_child:
	report(&e);
kill_quiet:
	(void)kill(R.pid, SIGKILL);
	{
		siginfo_t si;
		(void)waitid((idtype_t)P_PIDFD, (id_t)R.pidfd, &si, WEXITED);
	}
	relay_close(&R.relay);
	rc = 1;
out:
	userns_after_clone(s); /* after a failure before the setup process */
	/* both ends of the veth, before a reboot's next clone creates it again; at the end, with a
	 * detached on_exit, the kernel deletes the pair with the container's network namespace and
	 * on_exit (the network's teardown) removes the host end if it is still there */
	if (*reboot || !s->on_exit_detach)
		net_cleanup(&s->net);
	if (R.sock >= 0)
		close(R.sock);
	if (R.notify_fd >= 0)
		close(R.notify_fd);
	if (R.pidfd >= 0)
		close(R.pidfd);
	return rc;
}

/* exec_fifo: an O_PATH fd of the fifo for the child, which reopens it for writing (child.c). */
static int exec_fifo_open(struct spec *s, struct merr *e)
{
	struct stat st;
	if (!s->exec_fifo)
		return 0;
	s->exec_fifo_fd = open(s->exec_fifo, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	if (s->exec_fifo_fd < 0)
		return merr_sys(e, "open", s->exec_fifo, "failed to open the exec fifo \"%s\"", s->exec_fifo);
	if (fstat(s->exec_fifo_fd, &st) < 0)
		return merr_sys(e, "fstat", s->exec_fifo, "failed to stat \"%s\"", s->exec_fifo);
	if (!S_ISFIFO(st.st_mode))
		return merr_set(e, EINVAL, "open", s->exec_fifo, "\"%s\" is not a fifo", s->exec_fifo);
	return 0;
}

int supervisor_run(struct spec *s)
{
	struct merr e = { 0 };
	struct registry g = { .lockfd = -1 };
	int rc = 1, ready_sent = 0;
	char exit_msg[512] = "";
	char line[96];

	g_status_fd = s->status_fd;
	if (g_status_fd >= 0)
		(void)fcntl(g_status_fd, F_SETFD, FD_CLOEXEC);
	(void)prctl(PR_SET_NAME, "machina-sup", 0, 0, 0);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (s->console_log) {
		/* from here on our stdout/stderr is the console log; the payload's is the pipe */
		if (conlog_open(&g_log, s->console_log, s->console_log_max, s->console_log_keep, 1, s->console == CONSOLE_PIPE, &e) < 0) {
			report(&e);
			return 1;
		}
		s->console_log_wfd = g_log.wfd;
	}
	status_line("{\"stage\":\"spec\"}");

	/* seccomp_cache: the filters are compiled (or found compiled) here, once, before the clone */
	if (sec_seccomp_prepare(&s->sec, &e) < 0) {
		report(&e);
		return 1;
	}
	sec_seccomp_shed(&s->sec); /* the programs are all the children load from now on */
	if (registry_lock(&g, s, &e) < 0) {
		report(&e);
		return 1;
	}
	if (image_locks_take(s, &e) < 0) {
		report(&e);
		run_on_exit(s);
		registry_remove(&g);
		return 1;
	}
	/* --keep-unit in a service with Delegate=yes: leave the unit's cgroup to the payload's
	 * sibling, as systemd-nspawn does (cgroup2 allows no processes in an inner node) */
	if (s->supervisor_cgroup && cgroup_enter_self(s->supervisor_cgroup, &e) < 0) {
		report(&e);
		run_on_exit(s);
		registry_remove(&g);
		return 1;
	}
	/* with the table there already, the prestart (nft -f of its base) is not needed: a netlink read
	 * instead of two execs; when the read fails, the prestart runs and tells */
	int prestart = s->prestart && s->n_prestart &&
		       !(s->prestart_unless_table && nft_table_exists(s->prestart_unless_family, s->prestart_unless_table) == 1);
	if (prestart && (g_prestart = hook_start(s->prestart, s->n_prestart, 0, 1)) < 0) {
		merr_sys(&e, "fork", s->prestart[0], "failed to start the prestart command \"%s\"", s->prestart[0]);
		report(&e);
		run_on_exit(s);
		registry_remove(&g);
		return 1;
	}
	if (netns_open(s, &e) < 0 || mntns_open(s, &e) < 0 || userns_prepare(s, &e) < 0) {
		report(&e);
		userns_cleanup(s);
		run_on_exit(s);
		registry_remove(&g);
		return 1;
	}
	if (binds_host_prepare(s, &e) < 0 || exec_fifo_open(s, &e) < 0) {
		report(&e);
		binds_host_cleanup(s);
		userns_cleanup(s);
		run_on_exit(s);
		registry_remove(&g);
		return 1;
	}

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGWINCH);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	_cleanup_close_ int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		merr_sys(&e, "signalfd", "", "failed to create the signal fd");
		report(&e);
		goto out;
	}

	for (;;) {
		int reboot;
		rc = run_once(s, &g, sfd, &reboot, &ready_sent, exit_msg, sizeof exit_msg);
		if (!reboot)
			break;
		status_line("{\"event\":\"reboot\"}");
		if (s->on_reboot_exit133) {
			rc = 133;
			break;
		}
		ready_sent = 0;
	}
out:
	if (!g_detached) {
		for (size_t i = 0; i < s->n_cgroups; i++)
			remove_cgroup(s->cgroups[i]);
		binds_host_cleanup(s); /* after the container is gone, before the registry */
		run_on_exit(s);        /* the network's undo (src/net/), likewise */
	}
	/* the UID range first: a start of the same machine that follows the registry entry's removal
	 * (machinactl terminate returns then) must find the range free */
	userns_cleanup(s);
	registry_remove(&g);
	console_restore();
	if (!s->quiet && exit_msg[0])
		(void)write_all(2, exit_msg, strlen(exit_msg)); /* after the terminal left raw mode */
	snprintf(line, sizeof line, "{\"event\":\"exited\",\"status\":%d}", rc);
	status_line(line);
	return rc;
}
