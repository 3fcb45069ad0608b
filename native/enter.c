/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* machina-helper enter: join a running container (namespaces, cgroup, capabilities) and run a
 * command there on a pty of the container's own devpts, or bind a host directory into it,
 * or copy files in or out (copy.c). */
#include "enter.h"

#include <errno.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "caps.h"
#include "clone.h"
#include "console.h"
#include "records.h"
#include "resolve.h"
#include "selinux.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ------------------------------------------------------------------ parsing */

static void *track(struct enter_spec *s, void *p)
{
	for (size_t i = 0; i < ARRAY_SIZE(s->mem); i++)
		if (!s->mem[i]) {
			s->mem[i] = p;
			return p;
		}
	free(p);
	return NULL;
}

static const char **grow_strs(struct enter_spec *s, const char ***arr, size_t *n, size_t add, const char ***slot)
{
	/* arrays of repeated records are rebuilt on each append (records are few) */
	const char **na = calloc(*n + add + 1, sizeof *na);
	if (!na)
		return NULL;
	if (*n)
		memcpy(na, *arr, *n * sizeof *na);
	for (size_t i = 0; i < ARRAY_SIZE(s->mem); i++)
		if (s->mem[i] == (void *)*arr) {
			free(s->mem[i]);
			s->mem[i] = NULL;
		}
	*arr = na;
	if (!track(s, na))
		return NULL;
	*slot = na + *n;
	*n += add;
	return na;
}

void enter_free(struct enter_spec *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(s->mem); i++)
		free(s->mem[i]);
	free(s->binds);
	free(s->groups);
	free(s->rlimits);
	sec_free(&s->sec);
	free(s->argpool);
	if (s->selinux_fd >= 0)
		close(s->selinux_fd);
	memset(s, 0, sizeof *s);
	s->selinux_fd = -1;
}

static int ns_flag(const char *n, unsigned *f)
{
	static const struct {
		const char *name;
		unsigned flag;
	} t[] = { { "mnt", CLONE_NEWNS },  { "pid", CLONE_NEWPID },       { "uts", CLONE_NEWUTS },  { "ipc", CLONE_NEWIPC },
		  { "net", CLONE_NEWNET }, { "cgroup", CLONE_NEWCGROUP }, { "user", CLONE_NEWUSER } };
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (!strcmp(n, t[i].name)) {
			*f |= t[i].flag;
			return 0;
		}
	return -1;
}

#define BAD(...) merr_set(e, 0, "", "", __VA_ARGS__)
#define OOM() merr_set(e, ENOMEM, "", "", "out of memory")
#define HANDLER(fn) static int fn(void *ctx, const struct rec *r, struct merr *e)
#define SPEC struct enter_spec *s = ctx
#define ARGS const char **a = r->a

HANDLER(on_prog)
{
	SPEC;
	s->prog = r->a[0];
	(void)e;
	return 0;
}

HANDLER(on_target)
{
	SPEC;
	long long pid;
	if (rec_ll(r->a[0], 1, 1 << 22, &pid) < 0)
		return BAD("enter spec: bad pid \"%s\"", r->a[0]);
	s->pid = (pid_t)pid;
	s->starttime = r->a[1];
	return 0;
}

HANDLER(on_namespaces)
{
	SPEC;
	for (size_t i = 0; i < r->n; i++)
		if (ns_flag(r->a[i], &s->ns_flags) < 0)
			return BAD("enter spec: unknown namespace");
	return 0;
}

HANDLER(on_cgroup)
{
	SPEC;
	const char **slot;
	if (!grow_strs(s, &s->cgroups, &s->n_cgroups, 1, &slot))
		return OOM();
	*slot = r->a[0];
	return 0;
}

HANDLER(on_caps_bounding)
{
	SPEC;
	if (rec_hex64(r->a[0], &s->caps_bounding) < 0)
		return BAD("enter spec: bad capability mask \"%s\"", r->a[0]);
	s->has_caps = 1;
	return 0;
}

HANDLER(on_caps_ambient)
{
	SPEC;
	if (s->has_ambient || rec_hex64(r->a[0], &s->caps_ambient) < 0)
		return BAD("enter spec: bad or repeated \"caps_ambient\" \"%s\"", r->a[0]);
	s->has_ambient = 1;
	return 0;
}

HANDLER(on_rlimit)
{
	SPEC;
	ARGS;
	rlim_t soft, hard;
	int res;
	if (rec_int(a[0], 0, RLIM_NLIMITS - 1, &res) < 0 || rec_rlim(a[1], &soft) < 0 || rec_rlim(a[2], &hard) < 0 || soft > hard)
		return BAD("enter spec: bad \"rlimit\" %s %s %s (RES SOFT HARD, SOFT <= HARD)", a[0], a[1], a[2]);
	struct enter_rlimit *nr = realloc(s->rlimits, (s->n_rlimits + 1) * sizeof *nr);
	if (!nr)
		return OOM();
	s->rlimits = nr;
	nr[s->n_rlimits++] = (struct enter_rlimit){ res, soft, hard };
	return 0;
}

/* seccomp_*: the container's own records, parsed (and later compiled or found in the cache) by
 * security.c exactly as for the container */
static int on_seccomp(struct enter_spec *s, const struct rec *r, struct merr *e)
{
	int ret = sec_record(&s->sec, r->name, r->a, r->n, r->idx, e);
	if (ret == 0)
		return BAD("enter spec: unknown record \"%s\"", r->name);
	return ret < 0 ? ret : 0;
}

HANDLER(on_no_new_privs)
{
	SPEC;
	s->no_new_privs = !strcmp(r->a[0], "1");
	(void)e;
	return 0;
}

HANDLER(on_user)
{
	SPEC;
	ARGS;
	long long x;
	if (rec_ll(a[0], 0, 0xfffffffe, &x) < 0)
		return BAD("enter spec: bad uid");
	s->uid = (uid_t)x;
	if (rec_ll(a[1], 0, 0xfffffffe, &x) < 0)
		return BAD("enter spec: bad gid");
	s->gid = (gid_t)x;
	s->n_groups = r->n - 2;
	s->groups = calloc(s->n_groups + 1, sizeof *s->groups);
	if (!s->groups)
		return OOM();
	for (size_t i = 0; i < s->n_groups; i++) {
		if (rec_ll(a[i + 2], 0, 0xfffffffe, &x) < 0)
			return BAD("enter spec: bad group");
		s->groups[i] = (gid_t)x;
	}
	s->has_user = 1;
	return 0;
}

/* env, args: repeated records add up */
static int append_strs(struct enter_spec *s, const struct rec *r, const char ***arr, size_t *n, struct merr *e)
{
	const char **slot;
	if (!grow_strs(s, arr, n, r->n, &slot))
		return OOM();
	for (size_t i = 0; i < r->n; i++)
		slot[i] = r->a[i];
	return 0;
}

HANDLER(on_env)
{
	SPEC;
	return append_strs(s, r, &s->env, &s->n_env, e);
}

HANDLER(on_args)
{
	SPEC;
	return append_strs(s, r, &s->args, &s->n_args, e);
}

HANDLER(on_selinux_context)
{
	SPEC;
	if (!*r->a[0] || strpbrk(r->a[0], "\n\r"))
		return BAD("enter spec: selinux_context needs a label (one line)");
	s->selinux_context = r->a[0];
	return 0;
}

HANDLER(on_chdir)
{
	SPEC;
	if (r->a[0][0] != '/')
		return BAD("enter spec: chdir needs an absolute path");
	s->chdir = r->a[0];
	return 0;
}

HANDLER(on_console)
{
	SPEC;
	if (!strcmp(r->a[0], "pty"))
		s->pty = 1;
	else if (!strcmp(r->a[0], "pipe"))
		s->pty = 0;
	else
		return BAD("enter spec: console must be pty or pipe");
	return 0;
}

HANDLER(on_detach)
{
	SPEC;
	if (strcmp(r->a[0], "-") && r->a[0][0] != '/')
		return BAD("enter spec: detach needs an absolute pid file path or \"-\"");
	s->detach = 1;
	s->pid_file = strcmp(r->a[0], "-") ? r->a[0] : NULL;
	return 0;
}

HANDLER(on_console_socket)
{
	SPEC;
	if (r->a[0][0] != '/')
		return BAD("enter spec: console_socket needs an absolute path");
	s->console_socket = r->a[0];
	return 0;
}

HANDLER(on_exec)
{
	SPEC;
	const char **p1, **p2;
	size_t n1 = s->n_exec, n2 = s->n_exec;
	if (!grow_strs(s, &s->exec_path, &n1, 1, &p1) || !grow_strs(s, &s->exec_argv0, &n2, 1, &p2))
		return OOM();
	*p1 = r->a[0];
	*p2 = r->a[1];
	s->n_exec = n1;
	return 0;
}

HANDLER(on_bind)
{
	SPEC;
	ARGS;
	if (a[0][0] != '/' || a[1][0] != '/')
		return BAD("enter spec: bind takes absolute paths");
	struct enter_bind *nb = realloc(s->binds, (s->n_binds + 1) * sizeof *nb);
	if (!nb)
		return OOM();
	s->binds = nb;
	nb[s->n_binds++] = (struct enter_bind){ a[0], a[1], !strcmp(a[2], "1"), !strcmp(a[3], "1") };
	return 0;
}

HANDLER(on_copy)
{
	SPEC;
	ARGS;
	if (s->has_copy)
		return BAD("enter spec: one \"copy\" at most");
	if (strcmp(a[0], "to") && strcmp(a[0], "from"))
		return BAD("enter spec: copy direction must be to or from");
	if (a[1][0] != '/' || a[2][0] != '/')
		return BAD("enter spec: copy takes absolute paths");
	s->has_copy = 1;
	s->copy_from = !strcmp(a[0], "from");
	s->copy_hpath = a[1];
	s->copy_cpath = a[2];
	s->copy_force = !strcmp(a[3], "1");
	return 0;
}

#define COPY_IDS_USAGE "FALLBACK (FROM TO COUNT)... (16 ranges at most)"

/* copy_uids, copy_gids */
HANDLER(on_copy_ids)
{
	SPEC;
	ARGS;
	struct copy_ids *m = !strcmp(r->name, "copy_uids") ? &s->copy_uids : &s->copy_gids;
	if ((r->n - 1) % 3 || (r->n - 1) / 3 > ARRAY_SIZE(m->r))
		return BAD("enter spec: \"%s\" takes " COPY_IDS_USAGE, r->name);
	long long x;
	if (rec_ll(a[0], 0, 0xfffffffe, &x) < 0)
		return BAD("enter spec: bad id in \"%s\"", r->name);
	m->fallback = (unsigned)x;
	m->n = (r->n - 1) / 3;
	for (size_t i = 0; i < m->n; i++) {
		const char **t3 = a + 1 + 3 * i;
		long long f, t, k;
		if (rec_ll(t3[0], 0, 0xffffffffLL, &f) < 0 || rec_ll(t3[1], 0, 0xffffffffLL, &t) < 0 ||
		    rec_ll(t3[2], 1, 0xffffffffLL, &k) < 0 || f + k > 0x100000000LL || t + k > 0x100000000LL)
			return BAD("enter spec: bad range in \"%s\"", r->name);
		m->r[i] = (struct copy_range){ (unsigned)f, (unsigned)t, (unsigned)k };
	}
	return 0;
}

/* The enter spec's records (SPEC.md, "Enter spec"); seccomp_* go to security.c. Every record may
 * repeat (caps_ambient and copy refuse a second one themselves). `end` has no handler. */
static const struct rec_def records[] = {
	{ "prog", 1, 1, 1, on_prog, NULL },
	{ "target", 2, 2, 1, on_target, NULL },
	{ "namespaces", 0, REC_VAR, 1, on_namespaces, NULL },
	{ "cgroup", 1, 1, 1, on_cgroup, NULL },
	{ "caps_bounding", 1, 1, 1, on_caps_bounding, NULL },
	{ "caps_ambient", 1, 1, 1, on_caps_ambient, NULL },
	{ "rlimit", 3, 3, 1, on_rlimit, NULL },
	{ "no_new_privs", 1, 1, 1, on_no_new_privs, NULL },
	{ "user", 2, REC_VAR, 1, on_user, "UID GID GROUPS..." },
	{ "env", 0, REC_VAR, 1, on_env, NULL },
	{ "args", 0, REC_VAR, 1, on_args, NULL },
	{ "selinux_context", 1, 1, 1, on_selinux_context, NULL },
	{ "chdir", 1, 1, 1, on_chdir, NULL },
	{ "console", 1, 1, 1, on_console, NULL },
	{ "detach", 1, 1, 1, on_detach, NULL },
	{ "console_socket", 1, 1, 1, on_console_socket, NULL },
	{ "exec", 2, 2, 1, on_exec, NULL },
	{ "bind", 4, 4, 1, on_bind, NULL },
	{ "copy", 4, 4, 1, on_copy, NULL },
	{ "copy_uids", 1, 1 + 3 * 16, 1, on_copy_ids, COPY_IDS_USAGE },
	{ "copy_gids", 1, 1 + 3 * 16, 1, on_copy_ids, COPY_IDS_USAGE },
	{ "end", 0, 0, 1, NULL, NULL },
};
#define N_RECORDS ARRAY_SIZE(records)

#undef HANDLER
#undef SPEC
#undef ARGS

/* A reader status as the enter spec's message. */
static int read_error(enum rec_status st, const struct rec_reader *rd, const struct rec *r, struct merr *e)
{
	switch (st) {
	case REC_BAD_MAGIC:
	case REC_NO_VERSION: return BAD("enter spec: bad header (expected %s %s)", ENTER_MAGIC, ENTER_VERSION);
	case REC_BAD_VERSION: return BAD("enter spec: unsupported version \"%s\"", rd->version);
	case REC_NOMEM: return OOM();
	case REC_NO_NAME:
	case REC_NO_COUNT:
	case REC_BAD_COUNT: return BAD("enter spec: truncated or bad record count");
	case REC_SHORT_ARGS: return BAD("enter spec: record \"%s\" is truncated", r->name);
	case REC_OK: break;
	}
	return BAD("enter spec: unreadable");
}

/* One record: its table entry's arity and handler, or security.c for seccomp_*. */
static int apply_record(struct enter_spec *s, const struct rec *r, struct merr *e)
{
	size_t id = rec_find(records, N_RECORDS, r->name);
	if (id == N_RECORDS) {
		if (!strncmp(r->name, "seccomp_", 8))
			return on_seccomp(s, r, e);
		return BAD("enter spec: unknown record \"%s\"", r->name);
	}
	const struct rec_def *d = &records[id];
	if (!rec_arity_ok(d, r->n)) {
		if (d->usage)
			return BAD("enter spec: \"%s\" takes %s", r->name, d->usage);
		return BAD("enter spec: record \"%s\" takes %d arguments", r->name, d->min);
	}
	return d->fn ? d->fn(s, r, e) : 0;
}

/* What no single record can tell: required records and combinations. */
static int check_enter(const struct enter_spec *s, struct merr *e)
{
	if (!s->pid)
		return BAD("enter spec: \"target\" is required");
	if (!s->n_exec && !s->n_binds && !s->has_copy)
		return BAD("enter spec: nothing to do (no \"exec\", \"bind\" or \"copy\")");
	if (s->has_copy && (s->n_exec || s->n_binds))
		return BAD("enter spec: \"copy\" goes alone (no \"exec\" or \"bind\")");
	if (s->n_binds && !(s->ns_flags & CLONE_NEWNS))
		return BAD("enter spec: \"bind\" needs the mnt namespace");
	if ((s->detach || s->console_socket) && !s->n_exec)
		return BAD("enter spec: detach and console_socket need \"exec\"");
	if (s->console_socket && (!s->detach || !s->pty))
		return BAD("enter spec: console_socket needs detach and console pty");
	if ((s->sec.n_filters || s->n_rlimits || s->has_ambient) && !s->n_exec)
		return BAD("enter spec: seccomp, rlimit and caps_ambient records confine a command (need \"exec\")");
	return 0;
}

int enter_parse(struct enter_spec *s, char *buf, size_t len, struct merr *e)
{
	memset(s, 0, sizeof *s);
	s->selinux_fd = -1;
	s->pid_fd = -1;
	s->born_in = -1;
	s->buf = buf;
	track(s, buf);
	struct rec_reader rd;
	enum rec_status st = rec_open(&rd, buf, len, ENTER_MAGIC, ENTER_VERSION);
	/* every argument of every record lives in one pool of slices (sec keeps pointers into it) */
	s->argpool = rd.pool;
	if (st != REC_OK)
		return read_error(st, &rd, NULL, e);
	for (;;) {
		struct rec r;
		if ((st = rec_head(&rd, &r)) != REC_OK || (st = rec_args(&rd, &r)) != REC_OK)
			return read_error(st, &rd, &r, e);
		if (!strcmp(r.name, "end") && r.n == 0)
			break;
		int ret = apply_record(s, &r, e);
		if (ret < 0)
			return ret;
	}
	if (rec_left(&rd))
		return BAD("enter spec: data after \"end\"");
	return check_enter(s, e);
}

/* ------------------------------------------------------------------ running */

static int check_target(struct enter_spec *s, int pidfd, struct merr *e)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (n <= 0)
		return merr_set(e, ESRCH, "open", path, "the container's leader %d is gone", (int)s->pid);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	/* fields after ") ": state(3) ... starttime(22) = the 20th */
	for (int i = 0; p && i < 20; i++)
		p = strchr(p + 1, ' ');
	if (!p)
		return merr_set(e, EINVAL, "read", path, "cannot parse \"%s\"", path);
	char *end = strchr(p + 1, ' ');
	if (end)
		*end = 0;
	if (strcmp(p + 1, s->starttime))
		return merr_set(e, ESRCH, "", path, "the container's leader %d is gone (pid reused)", (int)s->pid);
	(void)pidfd;
	return 0;
}

static int setns_all(int pidfd, unsigned flags, struct merr *e)
{
	if (!flags)
		return 0;
	if (setns(pidfd, (int)flags) < 0)
		return merr_sys(e, "setns", "", "failed to enter the container's namespaces (0x%x)", flags);
	return 0;
}

/* The host id that a container's id 0 is (inside 0 of /proc/PID/{uid,gid}_map); 0 without a
 * user namespace. */
static long map_zero(pid_t pid, const char *which)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long inside, outside, count;
		if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0)
			return (long)outside;
	}
	return -1;
}

/* Mount points a bind creates belong to the container's root: with a user namespace the files
 * are created with the file system ids of its root (through an ID-mapped root the host's uid 0
 * could not own anything: EOVERFLOW), the capabilities raised again. */
static int act_as_container_root(long uid, long gid, struct enter_spec *s, struct merr *e)
{
	if (uid < 0 || gid < 0)
		return merr_set(e, ESRCH, "read", "uid_map", "failed to read the ID map of the container's leader %d", (int)s->pid);
	if (uid == 0 && gid == 0)
		return 0;
	(void)setfsgid((gid_t)gid);
	(void)setfsuid((uid_t)uid);
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return merr_sys(e, "capget", "", "failed to read the capabilities");
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	if (syscall(SYS_capset, &h, d) < 0)
		return merr_sys(e, "capset", "", "failed to raise the capabilities again");
	return 0;
}

static int do_binds(struct enter_spec *s, const int *trees, struct merr *e)
{
	_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return merr_sys(e, "open", "/", "failed to open the container's root");
	for (size_t i = 0; i < s->n_binds; i++) {
		struct enter_bind *b = &s->binds[i];
		struct stat st;
		if (fstat(trees[i], &st) < 0)
			return merr_sys(e, "fstat", b->src, "failed to stat \"%s\"", b->src);
		_cleanup_close_ int target = -1;
		if (b->mkdir) {
			if (S_ISDIR(st.st_mode)) {
				target = res_mkdir_p(root, b->dst, 0755, e);
			} else {
				char base[256];
				_cleanup_close_ int parent = res_parent(root, b->dst, 1, base, e);
				if (parent < 0)
					return parent;
				int f = openat(parent, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
				if (f < 0 && errno != EISDIR)
					return merr_sys(e, "openat", b->dst, "failed to create \"%s\" in the container", b->dst);
				if (f >= 0)
					close(f);
				target = res_open(root, b->dst, O_PATH, e);
			}
		} else {
			target = res_open(root, b->dst, O_PATH, e);
		}
		if (target < 0)
			return target;
		struct stat tst;
		if (fstat(target, &tst) < 0)
			return merr_sys(e, "fstat", b->dst, "failed to stat \"%s\" in the container", b->dst);
		if (S_ISDIR(st.st_mode) != S_ISDIR(tst.st_mode))
			return merr_set(e, S_ISDIR(st.st_mode) ? ENOTDIR : EISDIR, "move_mount", b->dst,
					"cannot bind \"%s\" on \"%s\": one is a directory, the other is not", b->src, b->dst);
		if (syscall(SYS_move_mount, trees[i], "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return merr_sys(e, "move_mount", b->dst, "failed to mount \"%s\" on \"%s\" in the container", b->src, b->dst);
	}
	return 0;
}

static int open_host_parent(struct enter_spec *s, int *dir, char base[256], struct merr *e)
{
	/* the host's own path: its parents are followed as usual (the administrator's), the last
	 * component is not */
	_cleanup_close_ int hroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (hroot < 0)
		return merr_sys(e, "open", "/", "failed to open /");
	char dirpath[PATH_MAX];
	size_t len = strlen(s->copy_hpath);
	while (len > 1 && s->copy_hpath[len - 1] == '/')
		len--;
	if (len >= sizeof dirpath)
		return merr_set(e, ENAMETOOLONG, "open", s->copy_hpath, "path too long");
	memcpy(dirpath, s->copy_hpath, len);
	dirpath[len] = 0;
	char *slash = strrchr(dirpath, '/');
	const char *b = slash + 1;
	if (!*b || !strcmp(b, ".") || !strcmp(b, "..") || strlen(b) > 255)
		return merr_set(e, EINVAL, "open", s->copy_hpath, "\"%s\" names no file", s->copy_hpath);
	strcpy(base, b);
	if (slash == dirpath)
		slash[1] = 0;
	else
		*slash = 0;
	*dir = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dir < 0)
		return merr_sys(e, "open", dirpath, "failed to open the directory \"%s\" on the host", dirpath);
	struct stat st;
	if (!s->copy_from && fstatat(*dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return merr_sys(e, "fstatat", s->copy_hpath, "failed to stat \"%s\" on the host", s->copy_hpath);
	return 0;
}

/* copy-to / copy-from: the container side resolved in the container's root (openat2
 * RESOLVE_IN_ROOT: its symlinks, absolute or ../.., stay inside), then fd-relative copies that
 * never follow a symlink (copy.c). */
static int do_copy(struct enter_spec *s, int rootfd, int hostdir, const char *hostbase, struct merr *e)
{
	char cbase[256];
	_cleanup_close_ int cdir = res_parent(rootfd, s->copy_cpath, 0, cbase, e);
	if (cdir < 0) {
		/* name the path asked for, not only the component that failed */
		char msg[sizeof e->msg];
		memcpy(msg, e->msg, sizeof msg);
		snprintf(e->msg, sizeof e->msg, "\"%.200s\": %.300s", s->copy_cpath, msg);
		return cdir;
	}
	if (s->copy_from) {
		struct stat st;
		if (fstatat(cdir, cbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return merr_sys(e, "fstatat", s->copy_cpath, "failed to stat \"%s\" in the container", s->copy_cpath);
		return copy_replace(cdir, cbase, hostdir, hostbase, s->copy_force, &s->copy_uids, &s->copy_gids, s->copy_cpath,
				    s->copy_hpath, e);
	}
	return copy_replace(hostdir, hostbase, cdir, cbase, s->copy_force, &s->copy_uids, &s->copy_gids, s->copy_hpath, s->copy_cpath, e);
}

/* Search PATH (from the spec's env) for a name without '/'. */
static void exec_one(struct enter_spec *s, const char *path, char **argv, char **envp)
{
	if (strchr(path, '/')) {
		execve(path, argv, envp);
		return;
	}
	const char *pathenv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (size_t i = 0; i < s->n_env; i++)
		if (!strncmp(s->env[i], "PATH=", 5))
			pathenv = s->env[i] + 5;
	char buf[4096];
	int saved = ENOENT;
	for (const char *p = pathenv; *p;) {
		const char *colon = strchrnul(p, ':');
		int l = snprintf(buf, sizeof buf, "%.*s/%s", (int)(colon - p), p, path);
		if (l > 0 && (size_t)l < sizeof buf) {
			execve(buf, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		p = *colon ? colon + 1 : colon;
	}
	errno = saved;
}

/* The command's confinement — what the container's payload got (child.c's order), from the
 * records the container was started with — applied in the helper itself, before the fork, so
 * that the command is born confined: it is never visible in the container's pid namespace
 * without the container's seccomp filter, bounding set, credentials and no_new_privs.
 * Seccomp is loaded last (after no_new_privs, while CAP_SYS_ADMIN is still effective), or
 * first when neither will hold then. */
static int confine(struct enter_spec *s, struct merr *e)
{
	int stays_root = !s->has_user || s->uid == 0;
	int sys_admin = !s->has_caps || (s->caps_bounding & (1ULL << 21 /* CAP_SYS_ADMIN */));
	int early = s->sec.n_filters && !s->no_new_privs && !(stays_root && sys_admin);
	uint64_t ambient = s->has_ambient ? s->caps_ambient : 0;
	if (early && sec_seccomp_load(&s->sec, e) < 0)
		return -1;
	if (s->has_caps && caps_drop_bounding(s->caps_bounding, e) < 0)
		return -1;
	if (s->has_user) {
		/* a non-root user keeps the permitted set through setresuid only to trim it below */
		if (s->has_caps && !stays_root && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return merr_sys(e, "prctl", "", "failed to set PR_SET_KEEPCAPS");
		if (setgroups(s->n_groups, s->groups) < 0)
			return merr_sys(e, "setgroups", "", "failed to set the supplementary groups");
		if (setresgid(s->gid, s->gid, s->gid) < 0)
			return merr_sys(e, "setresgid", "", "failed to change to group %u", (unsigned)s->gid);
		if (setresuid(s->uid, s->uid, s->uid) < 0)
			return merr_sys(e, "setresuid", "", "failed to change to user %u", (unsigned)s->uid);
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	/* root: permitted = effective = inheritable = the bounding set (as the container's payload);
	 * another user: inheritable = the bounding set (as after a setuid() in the container),
	 * permitted = effective = only the container's ambient capabilities */
	if (s->has_caps && caps_set_sets(stays_root ? s->caps_bounding : s->caps_bounding & ambient, s->caps_bounding, e) < 0)
		return -1;
	if (ambient && caps_raise_ambient(ambient, e) < 0)
		return -1;
	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return merr_sys(e, "prctl", "", "failed to set no_new_privs");
	if (s->sec.n_filters && !early && sec_seccomp_load(&s->sec, e) < 0)
		return -1;
	/* -Z of the container: the exec label, written to our own attr/exec opened from the host's
	 * /proc before entering (the container's /proc could be a fake one); the fork inherits it
	 * and the command's execve applies it */
	if (s->selinux_fd >= 0 && selinux_write_exec_label(s->selinux_fd, SELINUX_EXEC_ATTR, s->selinux_context, e) < 0)
		return -1;
	/* a credential change resets the dumpable flag to fs.suid_dumpable: clear it again */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return merr_sys(e, "prctl", "", "failed to make the helper non-dumpable");
	/* nothing of the host but stdio reaches the command */
	if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		return merr_sys(e, "close_range", "", "failed to mark fds close-on-exec");
	return 0;
}

/* The child: born in the container's pid namespace, already confined (confine()), with the
 * pty (or the caller's pipes) as its stdio and nothing else of the host. It only takes its
 * controlling terminal and executes. Reports a failure on errfd (a struct merr) and exits; on
 * success execve closes errfd (CLOEXEC). */
static void child(struct enter_spec *s, int pty, int errfd)
{
	struct merr e = { 0 };
	e.exit_code = 1;
	char *argv[REC_MAX_ARGS > 4096 ? 4096 : REC_MAX_ARGS];
	if (setsid() < 0) {
		merr_sys(&e, "setsid", "", "failed to start a session");
		goto fail;
	}
	if (pty && ioctl(0, TIOCSCTTY, 0) < 0) {
		merr_sys(&e, "ioctl", "TIOCSCTTY", "failed to make the pty the controlling terminal");
		goto fail;
	}
	reset_signals();
	size_t argc = 0;
	argv[argc++] = NULL; /* argv0 set per candidate */
	for (size_t i = 0; i < s->n_args && argc < ARRAY_SIZE(argv) - 1; i++)
		argv[argc++] = (char *)s->args[i];
	argv[argc] = NULL;
	int err = ENOENT;
	for (size_t i = 0; i < s->n_exec; i++) {
		argv[0] = (char *)s->exec_argv0[i];
		exec_one(s, s->exec_path[i], argv, (char **)s->env);
		if (errno != ENOENT && errno != ENOTDIR) {
			err = errno;
			break;
		}
	}
	merr_set(&e, err, "execve", s->exec_path[0], "failed to execute \"%s\" in the container", s->exec_path[0]);
	e.exit_code = err == ENOENT || err == ENOTDIR ? 127 : 126;
fail:
	(void)write_all(errfd, &e, sizeof e);
	_exit(e.exit_code ? e.exit_code : 1);
}

static int open_pty(int *master, int *slave, struct merr *e)
{
	_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return merr_sys(e, "open", "/", "failed to open the container's root");
	_cleanup_close_ int m = res_open(root, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, e);
	if (m < 0)
		return m;
	if (unlockpt(m) < 0)
		return merr_sys(e, "ioctl", "/dev/pts/ptmx", "failed to unlock the pty");
	int sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0)
		return merr_sys(e, "ioctl", "/dev/pts/ptmx", "failed to open the pty's peer");
	struct winsize ws;
	if (host_winsize(&ws))
		(void)ioctl(sl, TIOCSWINSZ, &ws);
	*master = take_fd(&m);
	*slave = sl;
	return 0;
}

static int status_of(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

/* Where the enterer reports a failure (a struct merr, printed by the relay); -1: print it. */
static int g_report = -1;

static int fail_with(struct merr *e)
{
	if (g_report >= 0) {
		(void)write_all(g_report, e, sizeof *e);
		return e->exit_code ? e->exit_code : 1;
	}
	merr_print(e);
	return 1;
}

static int send_fd(int sock, int fd)
{
	char byte = 0, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	memset(ctl, 0, sizeof ctl);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* The fd sent on sock, or -1 (the enterer failed before it had one). */
static int recv_fd(int sock)
{
	char byte, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	ssize_t n;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&m) : NULL;
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

/* The signals the relay forwards (and the enterer passes on to the command). */
static void forwarded(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGCHLD);
	sigaddset(mask, SIGWINCH);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGQUIT);
}

/* Enter and, with `exec`, start the command and wait for it (its status, as an exit status).
 * For a command this runs in the enterer, a child of the relay: sock passes the pty's master
 * to the relay; the host's stdio is only kept with console pipe (it is the command's). */
/* Nothing of the host's terminal stays in the process that becomes the command: not its session
 * (/dev/tty would name it), nor, with a pty, its stdio. Without a pty the relay's socket is closed. */
static int leave_caller(struct enter_spec *s, int *sock, struct merr *e)
{
	if (s->n_exec && setsid() < 0)
		return merr_sys(e, "setsid", "", "failed to leave the caller's session");
	if (s->n_exec && s->pty) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			return merr_sys(e, "dup2", "/dev/null", "failed to detach from the terminal");
		close(null);
	} else if (*sock >= 0) {
		close(*sock);
		*sock = -1;
	}
	return 0;
}

/* The leader (pidfd_open, then its start time), our SELinux exec attribute (from the host's
 * /proc, before entering) and the container's root. */
static int open_target(struct enter_spec *s, int *pidfd, int *rootfd, char rootpath[64], struct merr *e)
{
	*pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (*pidfd < 0)
		return merr_sys(e, "pidfd_open", "", "the container's leader %d is gone", (int)s->pid);
	if (check_target(s, *pidfd, e) < 0)
		return -1;
	if (s->n_exec && s->selinux_context) {
		s->selinux_fd = open(SELINUX_EXEC_ATTR, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (s->selinux_fd < 0)
			return merr_sys(e, "open", SELINUX_EXEC_ATTR, "failed to open \"%s\" to set the SELinux exec label \"%s\"",
					SELINUX_EXEC_ATTR, s->selinux_context);
	}
	snprintf(rootpath, 64, "/proc/%d/root", (int)s->pid);
	*rootfd = open(rootpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*rootfd < 0)
		return merr_sys(e, "open", rootpath, "failed to open the container's root");
	return 0;
}

/* cgroup.procs of each cgroup to join (at most 64), opened on the host */
static int open_cgroups(struct enter_spec *s, int cgfds[64], size_t *ncg, struct merr *e)
{
	for (*ncg = 0; *ncg < s->n_cgroups && *ncg < 64; (*ncg)++) {
		char p[4200];
		if (s->born_in == (long)*ncg) {
			cgfds[*ncg] = -1; /* born in it (fork_enterer) */
			continue;
		}
		snprintf(p, sizeof p, "%s/cgroup.procs", s->cgroups[*ncg]);
		cgfds[*ncg] = open(p, O_WRONLY | O_CLOEXEC);
		if (cgfds[*ncg] < 0)
			return merr_sys(e, "open", p, "failed to open the container's cgroup \"%s\"", p);
	}
	return 0;
}

/* a detached copy of each bind source (at most 64), read-only where asked, opened on the host */
static int open_bind_trees(struct enter_spec *s, int trees[64], size_t *ntree, struct merr *e)
{
	for (*ntree = 0; *ntree < s->n_binds && *ntree < 64; (*ntree)++) {
		struct enter_bind *b = &s->binds[*ntree];
		int t = (int)syscall(SYS_open_tree, AT_FDCWD, b->src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		trees[*ntree] = t;
		if (t < 0)
			return merr_sys(e, "open_tree", b->src, "failed to open \"%s\"", b->src);
		if (b->read_only) {
			struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
			if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
				return merr_sys(e, "mount_setattr", b->src, "failed to make \"%s\" read-only", b->src);
		}
	}
	return 0;
}

/* From the host, before anything of the container is entered: the seccomp programs (the
 * container's records: the same cache file, or compiled the same way), the cgroup (the helper
 * joins it itself, so the command is born in it), the rlimits. */
static int prepare_command(struct enter_spec *s, const int *cgfds, size_t ncg, struct merr *e)
{
	if (sec_seccomp_prepare(&s->sec, e) < 0)
		return -1;
	for (size_t i = 0; i < ncg; i++) {
		if (cgfds[i] < 0)
			continue;
		if (write(cgfds[i], "0", 1) < 0)
			return merr_sys(e, "write", s->cgroups[i], "failed to join the container's cgroup \"%s\"", s->cgroups[i]);
		close(cgfds[i]);
	}
	for (size_t i = 0; i < s->n_rlimits; i++) {
		struct rlimit rl = { (rlim_t)s->rlimits[i].soft, (rlim_t)s->rlimits[i].hard };
		if (setrlimit((__rlimit_resource_t)s->rlimits[i].res, &rl) < 0)
			return merr_sys(e, "setrlimit", "", "failed to set resource limit %d", s->rlimits[i].res);
	}
	return 0;
}

/* A pty of the container's devpts: the master to the relay; the peer becomes our stdio, so the
 * command is born with it. */
static int take_pty(int *sock, struct merr *e)
{
	_cleanup_close_ int master = -1, slave = -1;
	if (open_pty(&master, &slave, e) < 0)
		return -1;
	if (send_fd(*sock, master) < 0)
		return merr_sys(e, "sendmsg", "", "failed to pass the pty to the relay");
	close(take_fd(&master));
	close(take_fd(sock));
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			return merr_sys(e, "dup2", "", "failed to set up stdio");
	return 0;
}

/* Fork the command (confined already) and wait for it, passing the relay's signals on (under the
 * container's filter by now). */
static int run_command(struct enter_spec *s, struct merr *e)
{
	sigset_t mask;
	forwarded(&mask);
	pid_t pid = fork();
	if (pid < 0) {
		merr_sys(e, "fork", "", "failed to fork");
		return fail_with(e);
	}
	if (pid == 0)
		child(s, s->pty, g_report);
	if (s->detach) {
		/* left to the caller's subreaper (conmon, a containerd shim) when we exit: its pid, as
		 * the host sees it, in the pid file */
		if (s->pid_fd >= 0) {
			char buf[24];
			int len = snprintf(buf, sizeof buf, "%d", (int)pid);
			if (write(s->pid_fd, buf, (size_t)len) != len) {
				merr_sys(e, "write", s->pid_file, "failed to write the pid file \"%s\"", s->pid_file);
				kill(pid, SIGKILL);
				return fail_with(e);
			}
			close(s->pid_fd);
		}
		return 0;
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&mask, &si);
		if (sig < 0 && errno != EINTR)
			return 1;
		if (sig > 0 && sig != SIGCHLD && sig != SIGWINCH)
			kill(pid, sig);
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return status_of(st);
	}
}

static int enter_here(struct enter_spec *s, int sock)
{
	struct merr e = { 0 };
	_cleanup_close_ int pidfd = -1, rootfd = -1, hostdir = -1;
	char hostbase[256] = "", rootpath[64];
	int cgfds[64], trees[64];
	size_t ncg = 0, ntree = 0;
	if (leave_caller(s, &sock, &e) < 0 || open_target(s, &pidfd, &rootfd, rootpath, &e) < 0)
		goto fail;
	if (s->pid_file && (s->pid_fd = open(s->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
		merr_sys(&e, "open", s->pid_file, "failed to create the pid file \"%s\"", s->pid_file);
		goto fail;
	}
	/* the container root's host ids, read from the host's /proc before entering (for binds) */
	long root_uid = s->n_binds ? map_zero(s->pid, "uid_map") : 0, root_gid = s->n_binds ? map_zero(s->pid, "gid_map") : 0;
	if (open_cgroups(s, cgfds, &ncg, &e) < 0 || open_bind_trees(s, trees, &ntree, &e) < 0)
		goto fail;
	/* copy: the host side is opened here, before entering (its parent directory; the last
	 * component is never followed) */
	if (s->has_copy && open_host_parent(s, &hostdir, hostbase, &e) < 0)
		goto fail;
	unsigned ns = s->ns_flags;
	if (s->n_exec) {
		if (prepare_command(s, cgfds, ncg, &e) < 0)
			goto fail;
	} else {
		ns &= ~(unsigned)CLONE_NEWCGROUP;
	}
	/* every namespace in one call (the user namespace's capabilities then apply to the rest) */
	if (setns_all(pidfd, ns, &e) < 0)
		goto fail;
	if (s->ns_flags & CLONE_NEWNS) {
		if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0) {
			merr_sys(&e, "chroot", rootpath, "failed to change to the container's root");
			goto fail;
		}
	}
	if (s->n_binds && (act_as_container_root(root_uid, root_gid, s, &e) < 0 || do_binds(s, trees, &e) < 0))
		goto fail;
	if (s->has_copy)
		return do_copy(s, rootfd, hostdir, hostbase, &e) < 0 ? fail_with(&e) : 0;
	for (size_t i = 0; i < ntree; i++)
		close(trees[i]);
	if (!s->n_exec)
		return 0;
	if (s->pty && take_pty(&sock, &e) < 0)
		goto fail;
	if (s->chdir && chdir(s->chdir) < 0) {
		merr_sys(&e, "chdir", s->chdir, "failed to change to \"%s\" in the container", s->chdir);
		goto fail;
	}
	close(take_fd(&pidfd));
	close(take_fd(&rootfd));
	if (confine(s, &e) < 0)
		goto fail;
	return run_command(s, &e);
fail:
	return fail_with(&e);
}

/*
 * The enterer, forked: born in the container's first cgroup on cgroup2 (CLONE_INTO_CGROUP) when
 * it has one, so that no cgroup.procs write migrates it later — a migration waits for an RCU
 * grace period (~10 ms) on a quiet hierarchy. s->born_in says which cgroup it was born in (-1:
 * none; an older kernel without CLONE_INTO_CGROUP joins them all by writing, as before).
 */
static pid_t fork_enterer(struct enter_spec *s)
{
	s->born_in = -1;
	if (s->n_cgroups > 0) {
		_cleanup_close_ int cg = open(s->cgroups[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct statfs sf;
		if (cg >= 0 && fstatfs(cg, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
			const struct clone_args ca = { .exit_signal = SIGCHLD };
			int unsupported;
			long pid = clone_into_cgroup(&ca, cg, &unsupported);
			if (pid == 0)
				s->born_in = 0;
			if (!unsupported)
				return (pid_t)pid;
		}
	}
	return fork();
}

/* The relay: the process the caller started. It keeps the host's stdio, relays the pty whose
 * master the enterer sends, forwards signals to the enterer and exits with its status (the
 * command's). The enterer — a fresh child, never visible in the container — enters and forks
 * the command. */
static int relay_command(struct enter_spec *s)
{
	struct merr e = { 0 };
	_cleanup_close_ int sfd = -1;
	int sv[2], errp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		merr_sys(&e, "socketpair", "", "failed to create the enterer's channels");
		merr_print(&e);
		return 1;
	}
	sigset_t mask;
	forwarded(&mask);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	pid_t pid = fork_enterer(s);
	if (pid < 0) {
		merr_sys(&e, "fork", "", "failed to fork the enterer");
		merr_print(&e);
		return 1;
	}
	if (pid == 0) {
		close(sv[0]);
		close(errp[0]);
		g_report = errp[1];
		_exit(enter_here(s, sv[1]));
	}
	close(sv[1]);
	close(errp[1]);
	/* the pty's master arrives while signals are already handled (entering may take a while) */
	int sock = s->pty ? sv[0] : (close(sv[0]), -1);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	struct relay r;
	relay_init(&r);
	int status = -1, done = 0;
	while (!done) {
		struct pollfd p[4];
		int n = 0;
		p[n].fd = sfd;
		p[n].events = POLLIN;
		p[n++].revents = 0;
		if (sock >= 0) {
			p[n].fd = sock;
			p[n].events = POLLIN;
			p[n++].revents = 0;
		}
		int irel = n;
		n += relay_pollfds(&r, p + n);
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (sock >= 0 && p[1].revents) {
			int master = recv_fd(sock); /* -1: the enterer failed before it had a pty */
			close(sock);
			sock = -1;
			if (master >= 0 && s->console_socket) {
				if (console_send_socket(s->console_socket, master, &e) < 0) {
					merr_print(&e);
					kill(pid, SIGKILL);
				}
				close(master);
			} else if (master >= 0 && relay_start(&r, master, isatty(0), &e) < 0) {
				merr_print(&e);
				kill(pid, SIGKILL);
			}
			continue;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGWINCH)
					relay_winch(&r);
				else if (si.ssi_signo != SIGCHLD)
					kill(pid, (int)si.ssi_signo);
			}
			int st;
			pid_t w = waitpid(pid, &st, WNOHANG);
			if (w == pid) {
				status = st;
				done = 1;
			}
		}
		if (!done && relay_handle(&r, p + irel, n - irel))
			kill(pid, SIGHUP); /* ^]^]^] disconnects: hang up the command */
	}
	relay_drain(&r);
	relay_close(&r);
	struct merr ce;
	ssize_t got = read(errp[0], &ce, sizeof ce);
	close(errp[0]);
	if (got == (ssize_t)sizeof ce) {
		ce.syscall[sizeof ce.syscall - 1] = ce.path[sizeof ce.path - 1] = ce.msg[sizeof ce.msg - 1] = 0;
		merr_print(&ce);
		return ce.exit_code ? ce.exit_code : 1;
	}
	return status < 0 ? 1 : status_of(status);
}

int enter_run(struct enter_spec *s)
{
	struct merr e = { 0 };
	if (s->prog)
		g_prog = s->prog;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		merr_sys(&e, "prctl", "", "failed to make the helper non-dumpable");
		merr_print(&e);
		return 1;
	}
	/* no host fds are carried in: only stdio survives from here on */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
		merr_sys(&e, "close_range", "", "failed to close inherited fds");
		merr_print(&e);
		return 1;
	}
	return s->n_exec ? relay_command(s) : enter_here(s, -1);
}
