/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container side: PID 1 of the new namespaces. Sets up the mounts, pivots, and execs
 * the payload (directly, or as PID 2 under the stub init). Errors go to the supervisor. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "binds.h"
#include "caps.h"
#include "console.h"
#include "hooks.h"
#include "mounts.h"
#include "proto.h"
#include "resolve.h"
#include "selinux.h"
#include "spec.h"
#include "userns.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int g_sock = -1;

__attribute__((noreturn)) static void fail(struct merr *e)
{
	struct msg m = { .type = MSG_ERROR, .err = *e };
	if (g_sock < 0 || msg_send(g_sock, &m, -1) < 0)
		merr_print(e); /* no supervisor to tell: say it ourselves */
	_exit(e->exit_code ? e->exit_code : 1);
}

static void stage(int st)
{
	struct msg m = { .type = MSG_STAGE, .stage = st, .t = realtime_us() };
	(void)msg_send(g_sock, &m, -1);
}

/* The notify socket is bound before the pivot, in op order, through the resolved parent
 * directory (/proc/self/fd/N/NAME), so a later op may make that directory read-only. */
static int notify_socket(int rootfd, const char *path, struct merr *e)
{
	char base[256];
	_cleanup_close_ int dfd = res_parent(rootfd, path, 1, base, e);
	if (dfd < 0)
		return dfd;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return merr_sys(e, "socket", path, "failed to create the notify socket \"%s\"", path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, base);
	if (n < 0 || (size_t)n >= sizeof sa.sun_path)
		return merr_set(e, ENAMETOOLONG, "bind", path, "notify socket path \"%s\" is too long", path);
	(void)unlinkat(dfd, base, 0);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return merr_sys(e, "bind", path, "failed to bind the notify socket \"%s\"", path);
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
		return merr_sys(e, "setsockopt", path, "failed to enable SO_PASSCRED on \"%s\"", path);
	return take_fd(&fd);
}

/* setrlimit(); with `closest` (SPEC.md `rlimit … closest`), an EPERM falls back to the limits
 * nearest the wanted ones that the process may set — both capped at the current hard limit —
 * as systemd's setrlimit_closest() (nspawn applies --rlimit= that way). */
static int setrlimit_mode(int res, const struct rlimit *want, int closest)
{
	if (setrlimit((__rlimit_resource_t)res, want) == 0)
		return 0;
	if (!closest || errno != EPERM)
		return -1;
	struct rlimit cur;
	if (getrlimit((__rlimit_resource_t)res, &cur) < 0)
		return -1;
	if (cur.rlim_max == RLIM_INFINITY) {
		errno = EPERM; /* the hard limit was not what stopped us */
		return -1;
	}
	struct rlimit fixed = {
		want->rlim_cur < cur.rlim_max ? want->rlim_cur : cur.rlim_max,
		want->rlim_max < cur.rlim_max ? want->rlim_max : cur.rlim_max,
	};
	if (fixed.rlim_cur == cur.rlim_cur && fixed.rlim_max == cur.rlim_max)
		return 0;
	return setrlimit((__rlimit_resource_t)res, &fixed);
}

static void exec_payload(const struct spec *s, struct merr *e)
{
	const char **argv = calloc(s->n_args + 2, sizeof(char *));
	if (!argv) {
		merr_set(e, ENOMEM, "malloc", "", "failed to allocate the argument list");
		fail(e);
	}
	for (size_t i = 0; i < s->n_args; i++)
		argv[i + 1] = s->args[i];
	const char *path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (size_t i = 0; i < s->n_env; i++)
		if (!strncmp(s->env[i], "PATH=", 5))
			path_env = s->env[i] + 5;

	int last_err = ENOENT;
	const char *last_path = s->execs[0].path;
	char tried[400];
	size_t tpos = 0;
	tried[0] = 0;
	stage(STAGE_EXEC);
	for (size_t c = 0; c < s->n_execs; c++) {
		const char *p = s->execs[c].path;
		argv[0] = s->execs[c].argv0;
		buf_printf(tried, sizeof tried, &tpos, "%s\"%s\"", c ? ", " : "", p);
		if (strchr(p, '/')) {
			execve(p, (char **)argv, (char **)s->env);
			last_err = errno;
			last_path = p;
		} else {
			/* PATH search, like execvp: EACCES is remembered, the search goes on */
			int saw_eacces = 0, err = ENOENT;
			const char *d = path_env;
			while (*d) {
				const char *end = strchrnul(d, ':');
				char full[PATH_MAX];
				size_t dl = (size_t)(end - d);
				if (dl + strlen(p) + 2 < sizeof full) {
					if (dl == 0)
						snprintf(full, sizeof full, "%s", p);
					else
						snprintf(full, sizeof full, "%.*s/%s", (int)dl, d, p);
					execve(full, (char **)argv, (char **)s->env);
					if (errno == EACCES)
						saw_eacces = 1;
					else if (errno != ENOENT && errno != ENOTDIR) {
						err = errno;
						last_path = p;
						break;
					}
				}
				d = *end ? end + 1 : end;
			}
			last_err = err == ENOENT && saw_eacces ? EACCES : err;
			last_path = p;
		}
		if (last_err != ENOENT && last_err != ENOTDIR)
			break;
	}
	merr_set(e, last_err, "execve", last_path, "failed to execute %s", tried);
	e->exit_code = (last_err == ENOENT || last_err == ENOTDIR) ? 127 : 126;
	fail(e);
}

/* exec_fifo (SPEC.md "OCI runtime"): everything is set up; tell the supervisor, then wait until
 * `start` opens the fifo for reading, as runc's exec.fifo. With oci_detach the supervisor exits
 * now: we no longer die with it. The fifo is reopened through the O_PATH fd taken on the host
 * before the clone (its host path is not reachable from here). The startContainer hooks run
 * once the start came, with the fifo still open: "1" written after them tells `start` they all
 * succeeded (a failure ends us, and `start` reads the end of the fifo instead). */
static void park_at_fifo(const struct spec *s, struct merr *e)
{
	char path[64];
	if (s->oci_detach)
		(void)prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	struct msg pm = { .type = MSG_PARKED };
	if (msg_send(g_sock, &pm, -1) < 0)
		_exit(1);
	snprintf(path, sizeof path, "/proc/self/fd/%d", s->exec_fifo_fd);
	int fd;
	while ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (fd < 0) {
		merr_sys(e, "open", s->exec_fifo, "failed to open the exec fifo \"%s\"", s->exec_fifo);
		fail(e);
	}
	if (write(fd, "0", 1) != 1) {
		merr_sys(e, "write", s->exec_fifo, "failed to write the exec fifo \"%s\"", s->exec_fifo);
		fail(e);
	}
	if (s->oci_hook_state[OCI_HOOK_START_CONTAINER]) {
		if (oci_hooks_run(s, OCI_HOOK_START_CONTAINER, -1, e) < 0)
			fail(e);
		if (write(fd, "1", 1) != 1) {
			merr_sys(e, "write", s->exec_fifo, "failed to write the exec fifo \"%s\"", s->exec_fifo);
			fail(e);
		}
	}
	close(fd);
	close(s->exec_fifo_fd);
}

/* Right before the filter is loaded (early or late): what a profile (an OCI config's) need not
 * allow. Every fd but 0-2 is closed by execve (the sync socket stays usable until then); the
 * signals are reset for the payload. */
static void before_filter(struct merr *e)
{
	if (close_range(3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		merr_sys(e, "close_range", "", "failed to mark file descriptors close-on-exec");
		fail(e);
	}
	reset_signals();
}

/* Everything the payload process does between the pivot (or the stub's fork) and execve. */
__attribute__((noreturn)) static void payload(const struct spec *s, int console_slave, int devnull)
{
	struct merr e = { 0 };
	if (setsid() < 0 && errno != EPERM) {
		merr_sys(&e, "setsid", "", "failed to create a session");
		fail(&e);
	}
	if (console_slave >= 0) {
		if (ioctl(console_slave, TIOCSCTTY, 0) < 0) {
			merr_sys(&e, "ioctl", "/dev/console", "failed to make the console the controlling terminal");
			fail(&e);
		}
		for (int i = 0; i < 3; i++)
			if (dup2(console_slave, i) < 0) {
				merr_sys(&e, "dup2", "/dev/console", "failed to connect the console");
				fail(&e);
			}
	} else if (devnull >= 0) {
		for (int i = 0; i < 3; i++)
			if (dup2(devnull, i) < 0) {
				merr_sys(&e, "dup2", "/dev/null", "failed to connect /dev/null");
				fail(&e);
			}
	}
	for (size_t i = 0; i < s->n_rlimits; i++) {
		struct rlimit rl = { s->rlimits[i].soft, s->rlimits[i].hard };
		if (setrlimit_mode(s->rlimits[i].res, &rl, s->rlimits[i].closest) < 0) {
			merr_sys(&e, "setrlimit", "", "failed to set resource limit %d", s->rlimits[i].res);
			fail(&e);
		}
	}
	/* Seccomp (SPEC.md): late, after no_new_privs, while CAP_SYS_ADMIN is still effective; early
	 * (here, before any capability is dropped) when neither will hold at the late point. */
	int early_seccomp =
		s->sec.n_filters && !s->no_new_privs && s->has_caps_bounding && !(s->caps_bounding & (1ULL << 21 /* CAP_SYS_ADMIN */));
	if (early_seccomp)
		before_filter(&e);
	if (early_seccomp && sec_seccomp_load(&s->sec, &e) < 0)
		fail(&e);
	if (s->has_caps_bounding && caps_drop_bounding(s->caps_bounding, &e) < 0)
		fail(&e);
	if (s->has_user) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
			merr_sys(&e, "prctl", "", "failed to set PR_SET_KEEPCAPS");
			fail(&e);
		}
		if (setgroups(s->n_groups, s->groups) < 0) {
			merr_sys(&e, "setgroups", "", "failed to set the supplementary groups");
			fail(&e);
		}
		if (setresgid(s->gid, s->gid, s->gid) < 0) {
			merr_sys(&e, "setresgid", "", "failed to change to group %u", (unsigned)s->gid);
			fail(&e);
		}
		if (setresuid(s->uid, s->uid, s->uid) < 0) {
			merr_sys(&e, "setresuid", "", "failed to change to user %u", (unsigned)s->uid);
			fail(&e);
		}
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cleared by the credential change */
	}
	if (s->has_caps_bounding && caps_set(s->caps_bounding, &e) < 0)
		fail(&e);
	if (s->has_caps_ambient && caps_raise_ambient(s->caps_ambient, &e) < 0)
		fail(&e);
	const char *wd = s->chdir ? s->chdir : "/";
	if (chdir(wd) < 0) {
		merr_sys(&e, "chdir", wd, "failed to change directory to \"%s\"", wd);
		fail(&e);
	}
	umask((mode_t)s->umask);
	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		merr_sys(&e, "prctl", "", "failed to set PR_SET_NO_NEW_PRIVS");
		fail(&e);
	}
	/* -Z: the label of the next execve (setexeccon); its fd is closed again at once. Before the
	 * late seccomp filters, so that a filter can never keep the label from being set. */
	if (s->selinux_context && selinux_set_exec_label(SELINUX_EXEC_ATTR, s->selinux_context, &e) < 0)
		fail(&e);
	if (s->exec_fifo_fd >= 0)
		park_at_fifo(s, &e);
	if (!early_seccomp)
		before_filter(&e);
	if (s->sec.n_filters && !early_seccomp && sec_seccomp_load(&s->sec, &e) < 0)
		fail(&e);
	exec_payload(s, &e);
	__builtin_unreachable();
}

/* The root's mounts, from "/" made a recursive slave through the pivot (SPEC.md "Container
 * setup"). Run by the container's PID 1 without a user namespace; with one, by a setup process
 * of the host's user namespace (host_setup_main), so that the container's own mount namespace,
 * copied from this one, has every mount locked. *nfd gets the notify socket (or -1). */
static int setup_root(const struct spec *s, int host_side, int *nfd, struct merr *e)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return merr_sys(e, "mount", "/", "failed to make \"/\" a recursive slave mount");
	int r = userns_attach_root(s, e); /* the idmapped root, if any, instead of the bind mount */
	if (r < 0)
		return r;
	if (r == 0 && mount(s->root, s->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return merr_sys(e, "mount", s->root, "failed to bind mount \"%s\" on itself", s->root);
	_cleanup_close_ int rootfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return merr_sys(e, "open", s->root, "failed to open \"%s\"", s->root);
	/* The root (its parents may be 0700) was opened as host root; from here on files and
	 * file systems (a tmpfs or overlay root, too) are created as the container's root. */
	if (host_side && userns_host_act_as_root(s, e) < 0)
		return -1;
	if (binds_prepare_root(s, &rootfd, e) < 0) /* pivot_root_dir, root_tmpfs, root_overlay */
		return -1;
	for (size_t i = 0; i < s->n_ops; i++) {
		if (s->ops[i].kind == OP_NOTIFY) {
			if (*nfd >= 0)
				close(*nfd);
			*nfd = notify_socket(rootfd, s->ops[i].path, e);
			if (*nfd < 0)
				return -1;
			continue;
		}
		if (host_side && s->ops[i].kind == OP_CGROUPNS)
			continue; /* the container's PID 1 made it; we joined it */
		if (op_run(rootfd, &s->ops[i], e) < 0)
			return -1;
	}
	/* createContainer (SPEC.md "OCI runtime"), as runc: the mounts are set up, the old root is
	 * still there (PATH is the host's), the working directory is the new root; before it is
	 * made read-only, so that a hook may still change it. */
	if (oci_hooks_run(s, OCI_HOOK_CREATE_CONTAINER, rootfd, e) < 0)
		return -1;
	if (s->read_only && remount_bind(rootfd, "/", MS_RDONLY, e) < 0)
		return -1;
	stage(STAGE_PIVOT);
	return pivot_to(rootfd, s->root, e);
}

/* With a user namespace (SPEC.md "User namespaces"): the setup process. Forked by the
 * supervisor; joins the container's mount (the host-owned one it was cloned into), network,
 * UTS, IPC and cgroup namespaces and, for its child, the PID namespace, so that proc, sysfs,
 * mqueue and cgroup2 are the container's; that child sets the root up as host root acting as
 * the container's root, pivots, and exits. */
__attribute__((noreturn)) void host_setup_main(const struct spec *s, int pidfd, int sock, pid_t parent)
{
	struct merr e = { 0 };
	g_sock = sock;
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != parent)
		_exit(1); /* the supervisor died before the line above: no signal will come */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)prctl(PR_SET_NAME, "machina-setup", 0, 0, 0);
	int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | (s->ns_cgroup ? CLONE_NEWCGROUP : 0);
	if (setns(pidfd, flags) < 0) {
		merr_sys(&e, "setns", "", "failed to join the container's namespaces for its setup");
		fail(&e);
	}
	pid_t pid = fork();
	if (pid < 0) {
		merr_sys(&e, "fork", "", "failed to start the container's setup");
		fail(&e);
	}
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		int nfd = -1;
		umask(0);
		if (setup_root(s, 1, &nfd, &e) < 0)
			fail(&e);
		if (nfd >= 0) {
			struct msg nm = { .type = MSG_FD_NOTIFY };
			if (msg_send(sock, &nm, nfd) < 0)
				_exit(1);
		}
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

void child_main(const struct spec *s, int sock)
{
	struct merr e = { 0 };
	struct msg m;
	int fd;
	g_sock = sock;
	if (s->console_log_wfd >= 0) {
		/* console_log: our output and the payload's goes through the supervisor's pipe */
		(void)dup2(s->console_log_wfd, 1);
		(void)dup2(s->console_log_wfd, 2);
	}
	(void)prctl(PR_SET_NAME, "machina-init", 0, 0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

	/* Wait until the supervisor has put us into our cgroups. */
	int r = msg_recv(sock, &m, &fd);
	if (r <= 0 || m.type != MSG_GO)
		_exit(1);
	umask(0);
	stage(STAGE_MOUNTS);

	if (s->ns_cgroup && (s->us.enabled || !s->has_cgroupns_op) && unshare(CLONE_NEWCGROUP) < 0) {
		merr_sys(&e, "unshare", "", "failed to create a cgroup namespace");
		fail(&e);
	}
	_cleanup_close_ int devnull = -1;
	_cleanup_close_ int nfd = -1;
	if (s->us.enabled) {
		/* We were cloned into a mount namespace of the host's user namespace. Once the
		 * setup process has built the root there and pivoted, our own copy of it (owned by
		 * our user namespace, so less privileged) has every mount locked: read-only stays
		 * read-only, nothing can be unmounted to reveal what is below. */
		if (userns_become_root(s, &e) < 0)
			fail(&e);
		struct msg sm = { .type = MSG_SETUP };
		struct msg go;
		if (msg_send(sock, &sm, -1) < 0)
			_exit(1);
		r = msg_recv(sock, &go, &fd);
		if (r <= 0 || go.type != MSG_GO)
			_exit(1);
		if (unshare(CLONE_NEWNS) < 0) {
			merr_sys(&e, "unshare", "", "failed to create the container's mount namespace");
			fail(&e);
		}
		if (chdir("/") < 0) {
			merr_sys(&e, "chdir", "/", "failed to change directory to \"/\"");
			fail(&e);
		}
	}
	if (s->console == CONSOLE_PASSIVE) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0) {
			merr_sys(&e, "open", "/dev/null", "failed to open \"/dev/null\"");
			fail(&e);
		}
	}
	if (!s->us.enabled && setup_root(s, 0, &nfd, &e) < 0)
		fail(&e);
	/* root_propagation (machina-oci's linux.rootfsPropagation): on the root mount of the
	 * container's own mount namespace, after the pivot (with a user namespace: on our copy). */
	if (s->root_propagation && mount(NULL, "/", NULL, s->root_propagation, NULL) < 0) {
		merr_sys(&e, "mount", "/", "failed to set the propagation of \"/\" (flags 0x%lx)", s->root_propagation);
		fail(&e);
	}
	if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
		merr_sys(&e, "sethostname", "", "failed to set the hostname to \"%s\"", s->hostname);
		fail(&e);
	}
	if (sec_process_setup(&s->sec, &e) < 0)
		fail(&e);
	if (nfd >= 0) {
		struct msg nm = { .type = MSG_FD_NOTIFY };
		if (msg_send(sock, &nm, nfd) < 0)
			_exit(1);
	}
	_cleanup_close_ int slave = -1;
	if (s->console == CONSOLE_INTERACTIVE || s->console == CONSOLE_READ_ONLY) {
		int master;
		if (console_open_pty(s->console_opost, m.has_ws ? &m.ws : NULL, &master, &slave, &e) < 0)
			fail(&e);
		struct msg cm = { .type = MSG_FD_CONSOLE };
		int sr = msg_send(sock, &cm, master);
		close(master);
		if (sr < 0)
			_exit(1);
	}
	if (s->n_prestart) {
		/* the supervisor's prestart (the network's nft table) must be done before the payload runs */
		struct msg go;
		r = msg_recv(sock, &go, &fd);
		if (r <= 0 || go.type != MSG_GO)
			_exit(1);
	}
	if (s->as_pid2) {
		stub_prepare();
		pid_t pid = fork();
		if (pid < 0) {
			merr_sys(&e, "fork", "", "failed to start the payload");
			fail(&e);
		}
		if (pid > 0) {
			/* The stub keeps nothing open: not the sync socket, the registry lock, the
			 * status fd or the console (its stdio is /dev/null unless the console is pipe). */
			int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (nul >= 0 && s->console != CONSOLE_PIPE) {
				dup2(nul, 0), dup2(nul, 1), dup2(nul, 2);
			}
			close_range(3U, ~0U, 0);
			stub_main(pid);
		}
	}
	payload(s, slave, devnull);
}
