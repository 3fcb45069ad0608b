/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "spec.h"
#include "devices.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- number parsing (strict: no spaces, no trailing garbage) ---- */

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
	if (!*s)
		return -EINVAL;
	const char *p = s;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (!*p)
		return -EINVAL;
	unsigned long long v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (ULLONG_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > (unsigned long long)LLONG_MAX)
		return -ERANGE;
	long long r = neg ? -(long long)v : (long long)v;
	if (r < min || r > max)
		return -ERANGE;
	*out = r;
	return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
	long long v;
	int r = parse_ll(s, min, max, &v);
	if (r == 0)
		*out = (int)v;
	return r;
}

static int parse_octal(const char *s, unsigned max, mode_t *out)
{
	unsigned v = 0;
	if (!*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return -EINVAL;
		v = v * 8 + (unsigned)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

static int parse_hex64(const char *s, uint64_t *out)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!*s || strlen(s) > 16)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (*p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return -EINVAL;
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	if (strcmp(s, "0") == 0)
		*out = 0;
	else if (strcmp(s, "1") == 0)
		*out = 1;
	else
		return -EINVAL;
	return 0;
}

static int parse_rlim(const char *s, rlim_t *out)
{
	if (strcmp(s, "infinity") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	long long v;
	int r = parse_ll(s, 0, LLONG_MAX, &v);
	if (r == 0)
		*out = (rlim_t)v;
	return r;
}

/* FLAGS: a decimal MS_* bitmask, or (for hand-written specs) a comma list of names. */
int parse_mount_flags(const char *s, unsigned long *out)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} names[] = {
		{ "ro", MS_RDONLY },	      { "nosuid", MS_NOSUID },	   { "nodev", MS_NODEV },
		{ "noexec", MS_NOEXEC },      { "sync", MS_SYNCHRONOUS },  { "remount", MS_REMOUNT },
		{ "mand", MS_MANDLOCK },      { "dirsync", MS_DIRSYNC },   { "noatime", MS_NOATIME },
		{ "nodiratime", MS_NODIRATIME }, { "bind", MS_BIND },	   { "move", MS_MOVE },
		{ "rec", MS_REC },	      { "silent", MS_SILENT },	   { "unbindable", MS_UNBINDABLE },
		{ "private", MS_PRIVATE },    { "slave", MS_SLAVE },	   { "shared", MS_SHARED },
		{ "relatime", MS_RELATIME },  { "strictatime", MS_STRICTATIME }, { "lazytime", MS_LAZYTIME },
	};
	if (*s >= '0' && *s <= '9') {
		long long v;
		int r = parse_ll(s, 0, 0xffffffffLL, &v);
		if (r == 0)
			*out = (unsigned long)v;
		return r;
	}
	unsigned long f = 0;
	const char *p = s;
	while (*p) {
		const char *c = strchrnul(p, ',');
		size_t l = (size_t)(c - p);
		size_t i;
		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (strlen(names[i].name) == l && memcmp(names[i].name, p, l) == 0)
				break;
		if (i == ARRAY_SIZE(names))
			return -EINVAL;
		f |= names[i].flag;
		p = *c ? c + 1 : c;
	}
	*out = f;
	return 0;
}

/* ---- growth ---- */


/* ---- the parser ---- */

struct cursor {
	char *buf;
	size_t len, pos;
};

static const char *next_str(struct cursor *c)
{
	if (c->pos >= c->len)
		return NULL;
	char *s = c->buf + c->pos;
	char *z = memchr(s, 0, c->len - c->pos);
	if (!z)
		return NULL;
	c->pos = (size_t)(z - c->buf) + 1;
	return s;
}

enum rec_id {
	R_PROG, R_MACHINE, R_ROOT, R_READ_ONLY, R_NAMESPACES, R_HOSTNAME, R_STATUS_FD, R_REGISTRY,
	R_STATE_JSON, R_CGROUP, R_KILL_SIGNAL, R_BOOT, R_ON_REBOOT, R_NOTIFY_READY, R_NOTIFY_FORWARD,
	R_CONSOLE, R_CONSOLE_OPOST, R_CONSOLE_LOG, R_QUIET, R_MOUNT, R_REBIND, R_MKDIR, R_MKNOD, R_SYMLINK, R_WRITE, R_MASK,
	R_CGROUPNS, R_NOTIFY, R_COPY, R_REMOVE, R_ENV, R_CHDIR, R_CAPS_BOUNDING, R_CAPS_AMBIENT, R_RLIMIT, R_NO_NEW_PRIVS,
	R_IDMAP_BIND,
	R_USER, R_AS_PID2, R_EXEC, R_ARGS,
	R_UID_MAP, R_GID_MAP, R_CGROUP_OWNER, R_USERNS_LOCK, R_CHOWN_ROOT, R_IDMAP_ROOT, R_FSMOUNT,
	R_ROOT_TMPFS, R_ROOT_OVERLAY, R_PIVOT_ROOT_DIR, R_SCRATCH_DIR, R_HOST_MKDIR, R_HOST_SYMLINK, R_OVERLAY, R_SCRATCH_LIST, R_NETNS, R_ON_EXIT, R_HOST_UMOUNT, R_HOST_REMOVE, R_IMAGE_LOCK, R_ON_LEADER, R_SUPERVISOR_CGROUP,
	R_NET_VETH, R_NET_ADDR, R_NET_UP, R_NET_MASTER, R_NET_ROUTE, R_NET_SYSCTL, R_PRESTART, R_SELINUX_CONTEXT, R_DEVICE_POLICY, R_DEVICE_ALLOW, R_END, R__MAX
};

#define VAR -1
static const struct {
	const char *name;
	int min, max; /* argument count bounds; max VAR = unbounded */
	int repeat;   /* may appear more than once */
} records[R__MAX] = {
	[R_PROG] = { "prog", 1, 1, 0 },
	[R_MACHINE] = { "machine", 1, 1, 0 },
	[R_ROOT] = { "root", 1, 1, 0 },
	[R_READ_ONLY] = { "read_only", 1, 1, 0 },
	[R_NAMESPACES] = { "namespaces", 0, VAR, 0 },
	[R_HOSTNAME] = { "hostname", 1, 1, 0 },
	[R_STATUS_FD] = { "status_fd", 1, 1, 0 },
	[R_REGISTRY] = { "registry", 1, 1, 0 },
	[R_STATE_JSON] = { "state_json", 1, 1, 0 },
	[R_CGROUP] = { "cgroup", 1, 1, 1 },
	[R_KILL_SIGNAL] = { "kill_signal", 1, 1, 0 },
	[R_BOOT] = { "boot", 1, 1, 0 },
	[R_ON_REBOOT] = { "on_reboot", 1, 1, 0 },
	[R_NOTIFY_READY] = { "notify_ready", 1, 1, 0 },
	[R_NOTIFY_FORWARD] = { "notify_forward", 1, 1, 0 },
	[R_CONSOLE] = { "console", 1, 1, 0 },
	[R_CONSOLE_OPOST] = { "console_opost", 1, 1, 0 },
	[R_CONSOLE_LOG] = { "console_log", 3, 3, 0 },
	[R_QUIET] = { "quiet", 1, 1, 0 },
	[R_MOUNT] = { "mount", 6, 6, 1 },
	[R_REBIND] = { "rebind", 3, 3, 1 },
	[R_MKDIR] = { "mkdir", 2, 2, 1 },
	[R_MKNOD] = { "mknod", 4, 4, 1 },
	[R_SYMLINK] = { "symlink", 2, 2, 1 },
	[R_WRITE] = { "write", 3, 3, 1 },
	[R_MASK] = { "mask", 1, 1, 1 },
	[R_CGROUPNS] = { "cgroupns", 0, 0, 0 },
	[R_NOTIFY] = { "notify", 1, 1, 0 },
	[R_COPY] = { "copy", 3, 3, 1 },
	[R_REMOVE] = { "remove", 1, 1, 1 },
	[R_ENV] = { "env", 0, VAR, 0 },
	[R_CHDIR] = { "chdir", 1, 1, 0 },
	[R_CAPS_BOUNDING] = { "caps_bounding", 1, 1, 0 },
	[R_CAPS_AMBIENT] = { "caps_ambient", 1, 1, 0 },
	[R_RLIMIT] = { "rlimit", 3, 4, 1 },
	[R_NO_NEW_PRIVS] = { "no_new_privs", 1, 1, 0 },
	[R_USER] = { "user", 2, VAR, 0 },
	[R_AS_PID2] = { "as_pid2", 1, 1, 0 },
	[R_EXEC] = { "exec", 2, 2, 1 },
	[R_ARGS] = { "args", 0, VAR, 0 },
	[R_UID_MAP] = { "uid_map", 3, 3, 1 },
	[R_GID_MAP] = { "gid_map", 3, 3, 1 },
	[R_CGROUP_OWNER] = { "cgroup_owner", 2, 2, 0 },
	[R_USERNS_LOCK] = { "userns_lock", 1, 1, 0 },
	[R_CHOWN_ROOT] = { "chown_root", 2, 2, 0 },
	[R_IDMAP_ROOT] = { "idmap_root", 2, 2, 0 },
	[R_FSMOUNT] = { "fsmount", 4, 4, 1 },
	[R_IDMAP_BIND] = { "idmap_bind", 7, 7, 1 },
	[R_ROOT_TMPFS] = { "root_tmpfs", 1, 1, 0 },
	[R_ROOT_OVERLAY] = { "root_overlay", 1, 1, 0 },
	[R_PIVOT_ROOT_DIR] = { "pivot_root_dir", 2, 2, 0 },
	[R_SCRATCH_DIR] = { "scratch_dir", 2, 2, 1 },
	[R_HOST_MKDIR] = { "host_mkdir", 2, 2, 1 },
	[R_HOST_SYMLINK] = { "host_symlink", 2, 2, 1 },
	[R_OVERLAY] = { "overlay", 5, VAR, 1 },
	[R_SCRATCH_LIST] = { "scratch_list", 1, 1, 0 },
	[R_NETNS] = { "netns", 1, 1, 0 },
	[R_ON_EXIT] = { "on_exit", 1, VAR, 0 },
	[R_HOST_UMOUNT] = { "host_umount", 1, 1, 1 },
	[R_HOST_REMOVE] = { "host_remove", 1, 1, 1 },
	[R_IMAGE_LOCK] = { "image_lock", 3, 3, 1 },
	[R_ON_LEADER] = { "on_leader", 1, VAR, 0 },
	[R_SUPERVISOR_CGROUP] = { "supervisor_cgroup", 1, 1, 0 },
	[R_NET_VETH] = { "net_veth", 4, 4, 0 },
	[R_NET_ADDR] = { "net_addr", 3, 3, 1 },
	[R_NET_UP] = { "net_up", 2, 2, 1 },
	[R_NET_MASTER] = { "net_master", 3, 3, 1 },
	[R_NET_ROUTE] = { "net_route", 3, 3, 1 },
	[R_NET_SYSCTL] = { "net_sysctl", 2, 2, 1 },
	[R_PRESTART] = { "prestart", 1, VAR, 0 },
	[R_DEVICE_POLICY] = { "device_policy", 1, 1, 0 },
	[R_DEVICE_ALLOW] = { "device_allow", 4, 4, 1 },
	[R_SELINUX_CONTEXT] = { "selinux_context", 1, 1, 0 },
	[R_END] = { "end", 0, 0, 0 },
};

static int is_cpath(const char *p)
{
	return p[0] == '/';
}

/* HPATH, or "+CPATH" (a path inside the image, resolved in its root) */
static int is_layer(const char *p)
{
	return p[0] == '/' || (p[0] == '+' && p[1] == '/');
}

static int add_host_path(struct host_path **arr, size_t *n, const char *path, const char *target, mode_t mode)
{
	if (grow_arr(arr, n, sizeof(struct host_path)) < 0)
		return -ENOMEM;
	(*arr)[*n - 1] = (struct host_path){ .path = path, .target = target, .mode = mode };
	return 0;
}

void spec_free(struct spec *s)
{
	free(s->buf);
	free(s->cgroups);
	for (size_t i = 0; i < s->n_ops; i++)
		if (s->ops[i].kind == OP_OVERLAY)
			free(s->ops[i].layers);
	free(s->ops);
	free(s->scratch);
	free(s->host_mkdirs);
	free(s->host_umounts);
	free(s->host_removes);
	free(s->device_rules);
	free(s->image_locks);
	free(s->host_symlinks);
	free(s->env);
	free(s->rlimits);
	free(s->groups);
	free(s->execs);
	free(s->strs);
	userns_spec_free(&s->us);
	net_spec_free(&s->net);
	sec_free(&s->sec);
	memset(s, 0, sizeof *s);
	s->status_fd = -1;
}

void spec_shed_child(struct spec *s)
{
	for (size_t i = 0; i < s->n_ops; i++)
		if (s->ops[i].kind == OP_OVERLAY)
			free(s->ops[i].layers);
	free(s->ops);
	s->ops = NULL;
	s->n_ops = 0;
	free(s->env);
	s->env = NULL;
	s->n_env = 0;
	free(s->rlimits);
	s->rlimits = NULL;
	s->n_rlimits = 0;
	free(s->groups);
	s->groups = NULL;
	s->n_groups = 0;
	free(s->execs);
	s->execs = NULL;
	s->n_execs = 0;
	sec_free(&s->sec);
}

#define BAD(...) merr_set(e, 0, "", "", "invalid spec: " __VA_ARGS__)

static int add_op(struct spec *s, struct op **out)
{
	if (grow_arr(&s->ops, &s->n_ops, sizeof(struct op)) < 0)
		return -ENOMEM;
	*out = &s->ops[s->n_ops - 1];
	memset(*out, 0, sizeof **out);
	return 0;
}

/* Apply one record. argv points at count strings. */
static int apply(struct spec *s, enum rec_id id, const char *name, size_t idx, const char **a, size_t n,
		 struct merr *e)
{
	struct op *op;
	int r = 0;
	const char *bad = NULL; /* which argument was malformed */

#define WANT(cond, argname)            \
	do {                           \
		if (!(cond)) {         \
			bad = argname; \
			goto malformed; \
		}                      \
	} while (0)
#define OOM() return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec")

	switch (id) {
	case R_PROG: s->prog = a[0]; WANT(*a[0], "NAME"); break;
	case R_MACHINE: s->machine = a[0]; break;
	case R_ROOT: WANT(is_cpath(a[0]), "HPATH"); s->root = a[0]; break;
	case R_READ_ONLY: WANT(parse_bool(a[0], &s->read_only) == 0, "0|1"); break;
	case R_NAMESPACES: {
		int mnt = 0, pid = 0;
		for (size_t i = 0; i < n; i++) {
			if (!strcmp(a[i], "mnt")) { s->clone_flags |= CLONE_NEWNS; mnt = 1; }
			else if (!strcmp(a[i], "pid")) { s->clone_flags |= CLONE_NEWPID; pid = 1; }
			else if (!strcmp(a[i], "uts")) s->clone_flags |= CLONE_NEWUTS;
			else if (!strcmp(a[i], "ipc")) s->clone_flags |= CLONE_NEWIPC;
			else if (!strcmp(a[i], "net")) s->clone_flags |= CLONE_NEWNET;
			else if (!strcmp(a[i], "cgroup")) s->ns_cgroup = 1;
			else if (!strcmp(a[i], "user")) { s->clone_flags |= CLONE_NEWUSER; s->us.enabled = 1; }
			else
				return BAD("record %zu (\"namespaces\"): unknown namespace \"%s\"", idx, a[i]);
		}
		if (!mnt || !pid)
			return BAD("record %zu (\"namespaces\"): \"mnt\" and \"pid\" are required", idx);
		break;
	}
	case R_HOSTNAME: WANT(strlen(a[0]) <= 64, "NAME (at most 64 bytes)"); s->hostname = a[0]; break;
	case R_STATUS_FD: WANT(parse_int(a[0], 0, INT_MAX, &s->status_fd) == 0, "N"); break;
	case R_REGISTRY: WANT(is_cpath(a[0]), "HPATH"); s->registry = a[0]; break;
	case R_STATE_JSON: s->state_json = a[0]; break;
	case R_CGROUP:
		WANT(is_cpath(a[0]), "HPATH");
		if (grow_arr(&s->cgroups, &s->n_cgroups, sizeof(char *)) < 0)
			OOM();
		s->cgroups[s->n_cgroups - 1] = a[0];
		break;
	case R_KILL_SIGNAL: WANT(parse_int(a[0], 1, _NSIG - 1, &s->kill_signal) == 0, "N (a signal number)"); break;
	case R_BOOT: WANT(parse_bool(a[0], &s->boot) == 0, "0|1"); break;
	case R_ON_REBOOT:
		if (!strcmp(a[0], "restart")) s->on_reboot_exit133 = 0;
		else if (!strcmp(a[0], "exit133")) s->on_reboot_exit133 = 1;
		else WANT(0, "restart|exit133");
		break;
	case R_NOTIFY_READY: WANT(parse_bool(a[0], &s->notify_ready) == 0, "0|1"); break;
	case R_NOTIFY_FORWARD: WANT(*a[0], "PATH"); s->notify_forward = a[0]; break;
	case R_CONSOLE:
		if (!strcmp(a[0], "interactive")) s->console = CONSOLE_INTERACTIVE;
		else if (!strcmp(a[0], "read-only")) s->console = CONSOLE_READ_ONLY;
		else if (!strcmp(a[0], "passive")) s->console = CONSOLE_PASSIVE;
		else if (!strcmp(a[0], "pipe")) s->console = CONSOLE_PIPE;
		else WANT(0, "interactive|read-only|passive|pipe");
		break;
	case R_CONSOLE_OPOST: WANT(parse_bool(a[0], &s->console_opost) == 0, "0|1"); break;
	case R_CONSOLE_LOG: {
		long long max;
		WANT(is_cpath(a[0]), "HPATH");
		WANT(parse_ll(a[1], 1, (long long)1 << 50, &max) == 0, "MAXBYTES (1 or more)");
		WANT(parse_int(a[2], 1, 100, &s->console_log_keep) == 0, "KEEP (1-100)");
		s->console_log = a[0];
		s->console_log_max = (uint64_t)max;
		break;
	}
	case R_QUIET: WANT(parse_bool(a[0], &s->quiet) == 0, "0|1"); break;
	case R_MOUNT:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_MOUNT;
		op->src = a[0];
		op->path = a[1];
		op->fstype = *a[2] ? a[2] : NULL;
		op->data = *a[4] ? a[4] : NULL;
		WANT(is_cpath(a[1]), "CPATH");
		WANT(parse_mount_flags(a[3], &op->flags) == 0, "FLAGS");
		if (op->flags & MS_BIND)
			WANT(is_layer(a[0]), "SRC (an absolute host path, or +PATH inside the image, for a bind mount)");
		if (!strcmp(a[5], "dir")) op->create = CREATE_DIR;
		else if (!strcmp(a[5], "auto")) op->create = CREATE_AUTO;
		else if (!strcmp(a[5], "file")) op->create = CREATE_FILE;
		else if (!strcmp(a[5], "none")) op->create = CREATE_NONE;
		else if (!strcmp(a[5], "optional")) op->create = CREATE_OPTIONAL;
		else WANT(0, "CREATE (dir|file|auto|none|optional)");
		if (op->create == CREATE_AUTO)
			WANT(op->flags & MS_BIND, "CREATE (auto needs a bind mount)");
		break;
	case R_REBIND:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_REBIND;
		op->path = a[0];
		WANT(is_cpath(a[0]), "CPATH");
		WANT(parse_mount_flags(a[1], &op->flags) == 0, "FLAGS");
		WANT(parse_bool(a[2], &op->optional) == 0, "OPTIONAL (0|1)");
		break;
	case R_MKDIR:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_MKDIR;
		op->path = a[0];
		WANT(is_cpath(a[0]), "CPATH");
		WANT(parse_octal(a[1], 07777, &op->mode) == 0, "MODE (octal)");
		break;
	case R_MKNOD: {
		long long mj, mn;
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_MKNOD;
		op->path = a[0];
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "CPATH");
		WANT(parse_octal(a[1], 0177777, &op->mode) == 0 && (op->mode & S_IFMT), "MODE (octal, with file type bits)");
		WANT(parse_ll(a[2], 0, 0xfff, &mj) == 0, "MAJOR");
		WANT(parse_ll(a[3], 0, 0xfffff, &mn) == 0, "MINOR");
		op->major = (unsigned)mj;
		op->minor = (unsigned)mn;
		break;
	}
	case R_SYMLINK:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_SYMLINK;
		op->src = a[0];
		op->path = a[1];
		WANT(*a[0], "TARGET");
		WANT(is_cpath(a[1]) && strcmp(a[1], "/") != 0, "CPATH");
		break;
	case R_WRITE:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_WRITE;
		op->path = a[0];
		op->data = a[2];
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "CPATH");
		WANT(parse_octal(a[1], 07777, &op->mode) == 0, "MODE (octal)");
		break;
	case R_MASK:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_MASK;
		op->path = a[0];
		WANT(is_cpath(a[0]), "CPATH");
		break;
	case R_CGROUPNS:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_CGROUPNS;
		s->has_cgroupns_op = 1;
		break;
	case R_NOTIFY:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_NOTIFY;
		op->path = a[0];
		WANT(is_cpath(a[0]) && strlen(a[0]) < 108, "CPATH (absolute, shorter than 108 bytes)");
		break;
	case R_COPY:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_COPY;
		op->src = a[0];
		op->path = a[1];
		WANT(is_cpath(a[0]), "HPATH");
		WANT(is_cpath(a[1]) && strcmp(a[1], "/") != 0, "CPATH");
		WANT(parse_octal(a[2], 07777, &op->mode) == 0, "MODE (octal)");
		break;
	case R_REMOVE:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_REMOVE;
		op->path = a[0];
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "CPATH");
		break;
	case R_ENV:
		s->env = calloc(n + 1, sizeof(char *));
		if (!s->env) OOM();
		for (size_t i = 0; i < n; i++) {
			const char *eq = strchr(a[i], '=');
			if (!eq || eq == a[i])
				return BAD("record %zu (\"env\"): argument %zu is not K=V: \"%s\"", idx, i + 1, a[i]);
			s->env[i] = a[i];
		}
		s->n_env = n;
		break;
	case R_CHDIR: WANT(is_cpath(a[0]), "CPATH"); s->chdir = a[0]; break;
	case R_CAPS_BOUNDING: WANT(parse_hex64(a[0], &s->caps_bounding) == 0, "HEX"); s->has_caps_bounding = 1; break;
	case R_CAPS_AMBIENT: WANT(parse_hex64(a[0], &s->caps_ambient) == 0, "HEX"); s->has_caps_ambient = 1; break;
	case R_RLIMIT: {
		if (grow_arr(&s->rlimits, &s->n_rlimits, sizeof(struct rlim)) < 0) OOM();
		struct rlim *rl = &s->rlimits[s->n_rlimits - 1];
		WANT(parse_int(a[0], 0, RLIM_NLIMITS - 1, &rl->res) == 0, "RES");
		WANT(parse_rlim(a[1], &rl->soft) == 0, "SOFT");
		WANT(parse_rlim(a[2], &rl->hard) == 0, "HARD");
		WANT(rl->soft <= rl->hard, "SOFT (greater than HARD)");
		if (n == 4)
			WANT(strcmp(a[3], "exact") == 0 || strcmp(a[3], "closest") == 0, "MODE (exact|closest)");
		rl->closest = n == 4 && strcmp(a[3], "closest") == 0;
		break;
	}
	case R_NO_NEW_PRIVS: WANT(parse_bool(a[0], &s->no_new_privs) == 0, "0|1"); break;
	case R_USER: {
		long long v;
		WANT(parse_ll(a[0], 0, 0xfffffffeLL, &v) == 0, "UID");
		s->uid = (uid_t)v;
		WANT(parse_ll(a[1], 0, 0xfffffffeLL, &v) == 0, "GID");
		s->gid = (gid_t)v;
		s->n_groups = n - 2;
		s->groups = calloc(s->n_groups + 1, sizeof(gid_t));
		if (!s->groups) OOM();
		for (size_t i = 2; i < n; i++) {
			WANT(parse_ll(a[i], 0, 0xfffffffeLL, &v) == 0, "GROUPS");
			s->groups[i - 2] = (gid_t)v;
		}
		s->has_user = 1;
		break;
	}
	case R_AS_PID2: WANT(parse_bool(a[0], &s->as_pid2) == 0, "0|1"); break;
	case R_EXEC:
		WANT(*a[0], "PATH");
		if (grow_arr(&s->execs, &s->n_execs, sizeof(struct exec_cand)) < 0) OOM();
		s->execs[s->n_execs - 1] = (struct exec_cand){ a[0], a[1] };
		break;
	case R_ARGS:
		s->args = a;
		s->n_args = n;
		break;
	case R_SELINUX_CONTEXT:
		WANT(*a[0] && !strpbrk(a[0], "\n\r"), "LABEL (not empty, one line)");
		s->selinux_context = a[0];
		break;
	case R_UID_MAP:
	case R_GID_MAP:
	case R_CGROUP_OWNER:
	case R_USERNS_LOCK:
	case R_CHOWN_ROOT:
	case R_IDMAP_ROOT:
		r = userns_parse_record(&s->us, name, a, n, &bad);
		if (r == -ENOMEM) OOM();
		if (r < 0) goto malformed;
		break;
	case R_NET_VETH:
	case R_NET_ADDR:
	case R_NET_UP:
	case R_NET_MASTER:
	case R_NET_ROUTE:
	case R_NET_SYSCTL:
		r = net_parse_record(&s->net, name, a, n, &bad);
		if (r == -ENOMEM) OOM();
		if (r < 0) goto malformed;
		break;
	case R_IDMAP_BIND: {
		long long v;
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_IDMAP_BIND;
		op->fd = -1;
		op->src = a[0];
		op->path = a[1];
		WANT(is_layer(a[0]), "SRC (an absolute host path, or +PATH inside the image)");
		WANT(is_cpath(a[1]), "CPATH");
		WANT(parse_mount_flags(a[2], &op->flags) == 0, "FLAGS");
		if (!strcmp(a[3], "dir")) op->create = CREATE_DIR;
		else if (!strcmp(a[3], "auto")) op->create = CREATE_AUTO;
		else if (!strcmp(a[3], "file")) op->create = CREATE_FILE;
		else if (!strcmp(a[3], "none")) op->create = CREATE_NONE;
		else if (!strcmp(a[3], "optional")) op->create = CREATE_OPTIONAL;
		else WANT(0, "CREATE (dir|file|auto|none|optional)");
		if (!strcmp(a[4], "owner"))
			op->idmap_from = -1;
		else {
			WANT(parse_ll(a[4], 0, 0xfffffffeLL, &v) == 0, "FROM (a number or \"owner\")");
			op->idmap_from = (long)v;
		}
		WANT(parse_ll(a[5], 0, 0xfffffffeLL, &v) == 0, "TO");
		op->idmap_to = (unsigned long)v;
		WANT(parse_ll(a[6], 1, 0xfffffffeLL, &v) == 0 && op->idmap_to + (unsigned long)v - 1 <= 0xfffffffeUL &&
			     (op->idmap_from < 0 ? v == 1 : (unsigned long)op->idmap_from + (unsigned long)v - 1 <= 0xfffffffeUL),
		     "COUNT (1 with FROM \"owner\")");
		op->idmap_count = (unsigned long)v;
		break;
	}
	case R_FSMOUNT:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_FSMOUNT;
		op->fd = -1;
		op->fstype = a[0];
		op->path = a[1];
		op->data = *a[3] ? a[3] : NULL;
		WANT(*a[0], "FSTYPE");
		WANT(is_cpath(a[1]), "CPATH");
		WANT(parse_mount_flags(a[2], &op->flags) == 0, "FLAGS");
		break;
	case R_ROOT_TMPFS:
	case R_ROOT_OVERLAY:
		if (s->root_mode != ROOT_BIND)
			return BAD("record %zu (\"%s\"): only one of root_tmpfs and root_overlay may be given", idx, name);
		s->root_mode = id == R_ROOT_TMPFS ? ROOT_TMPFS : ROOT_OVERLAY;
		s->root_data = a[0];
		break;
	case R_PIVOT_ROOT_DIR:
		WANT(is_cpath(a[0]), "NEW (a container path)");
		WANT(!*a[1] || is_cpath(a[1]), "OLD (a container path or empty)");
		s->pivot_new = a[0];
		s->pivot_old = *a[1] ? a[1] : NULL;
		break;
	case R_SCRATCH_DIR:
	case R_HOST_MKDIR: {
		mode_t mode;
		WANT(id == R_SCRATCH_DIR ? is_layer(a[0]) : is_cpath(a[0]), id == R_SCRATCH_DIR ? "HPATH or +CPATH" : "HPATH");
		WANT(strcmp(a[0], "/") != 0 && strcmp(a[0], "+/") != 0, "path (not the root)");
		WANT(parse_octal(a[1], 07777, &mode) == 0, "MODE (octal)");
		if (id == R_SCRATCH_DIR ? add_host_path(&s->scratch, &s->n_scratch, a[0], NULL, mode)
					: add_host_path(&s->host_mkdirs, &s->n_host_mkdirs, a[0], NULL, mode))
			OOM();
		break;
	}
	case R_SCRATCH_LIST:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH");
		s->scratch_list = a[0];
		break;
	case R_NETNS:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH");
		s->netns_path = a[0];
		break;
	case R_ON_EXIT:
		WANT(is_cpath(a[0]), "ARGV (an absolute program path first)");
		s->on_exit = a;
		s->n_on_exit = n;
		break;
	case R_DEVICE_POLICY:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH (the container's cgroup2 directory)");
		s->device_cgroup = a[0];
		break;
	case R_DEVICE_ALLOW: {
		struct device_rule rule;
		if (devices_parse_allow(&rule, a, &bad) < 0)
			goto malformed;
		if (grow_arr(&s->device_rules, &s->n_device_rules, sizeof rule) < 0)
			OOM();
		s->device_rules[s->n_device_rules - 1] = rule;
		break;
	}
	case R_PRESTART:
		WANT(is_cpath(a[0]), "ARGV (an absolute program path first)");
		s->prestart = a;
		s->n_prestart = n;
		break;
	case R_ON_LEADER:
		WANT(is_cpath(a[0]), "ARGV (an absolute program path first)");
		s->on_leader = a;
		s->n_on_leader = n;
		break;
	case R_SUPERVISOR_CGROUP:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH");
		s->supervisor_cgroup = a[0];
		break;
	case R_HOST_SYMLINK:
		WANT(*a[0], "TARGET");
		WANT(is_cpath(a[1]) && strcmp(a[1], "/") != 0, "HPATH");
		if (add_host_path(&s->host_symlinks, &s->n_host_symlinks, a[1], a[0], 0))
			OOM();
		break;
	case R_OVERLAY:
		if ((r = add_op(s, &op)) < 0) OOM();
		op->kind = OP_OVERLAY;
		op->path = a[0];
		WANT(is_cpath(a[0]), "CPATH");
		WANT(parse_mount_flags(a[1], &op->flags) == 0, "FLAGS");
		op->upper = a[2];
		op->work = a[3];
		WANT(!*a[2] || is_layer(a[2]), "UPPER (HPATH, +CPATH or empty)");
		WANT(!*a[2] == !*a[3] && (!*a[3] || is_layer(a[3])), "WORK (HPATH or +CPATH, empty exactly when UPPER is)");
		op->layers = calloc(n - 4 + 1, sizeof(char *));
		if (!op->layers) OOM();
		op->n_layers = n - 4;
		for (size_t i = 4; i < n; i++) {
			WANT(is_layer(a[i]), "LOWER (HPATH or +CPATH)");
			op->layers[i - 4] = a[i];
		}
		break;
	case R_HOST_UMOUNT:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH (not the root)");
		if (grow_arr(&s->host_umounts, &s->n_host_umounts, sizeof(char *)) < 0)
			OOM();
		s->host_umounts[s->n_host_umounts - 1] = a[0];
		break;
	case R_HOST_REMOVE:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH (not the root)");
		if (grow_arr(&s->host_removes, &s->n_host_removes, sizeof(char *)) < 0)
			OOM();
		s->host_removes[s->n_host_removes - 1] = a[0];
		break;
	case R_IMAGE_LOCK:
		WANT(is_cpath(a[0]) && strcmp(a[0], "/") != 0, "HPATH (a lock file)");
		WANT(!strcmp(a[1], "exclusive") || !strcmp(a[1], "shared"), "MODE (exclusive or shared)");
		WANT(*a[2], "IMAGE");
		if (grow_arr(&s->image_locks, &s->n_image_locks, sizeof(struct image_lock)) < 0)
			OOM();
		s->image_locks[s->n_image_locks - 1] = (struct image_lock){ a[0], a[1][0] == 'e', a[2] };
		break;
	case R_END:
	case R__MAX:
		break;
	}
	return 0;
malformed:
	return BAD("record %zu (\"%s\"): malformed %s", idx, name, bad);
#undef WANT
#undef OOM
}

int spec_parse(struct spec *s, char *buf, size_t len, struct merr *e)
{
	memset(s, 0, sizeof *s);
	s->buf = buf;
	s->len = len;
	s->status_fd = -1;
	s->kill_signal = SIGKILL;
	s->console = CONSOLE_PIPE;
	s->console_opost = 1;
	s->quiet = 1;
	s->console_log_wfd = -1;
	s->us.lock_fd = -1;
	s->us.root_tree_fd = -1;

	struct cursor c = { buf, len, 0 };
	unsigned seen[R__MAX] = { 0 };
	int r;

	if (len > SPEC_MAX_SIZE) {
		r = BAD("too large (%zu bytes, the limit is %u)", len, SPEC_MAX_SIZE);
		goto fail;
	}
	const char *magic = next_str(&c);
	if (!magic || strcmp(magic, SPEC_MAGIC) != 0) {
		r = BAD("bad header (expected \"%s\")", SPEC_MAGIC);
		goto fail;
	}
	const char *ver = next_str(&c);
	if (!ver) {
		r = BAD("truncated after the header");
		goto fail;
	}
	if (strcmp(ver, SPEC_VERSION) != 0) {
		r = BAD("unsupported version \"%.16s\" (this helper reads version %s)", ver, SPEC_VERSION);
		goto fail;
	}

	/* Argument pointers for the whole spec live in one array (args record keeps a slice). */
	const char **argv = NULL;
	size_t n_argv_total = 0;
	size_t idx = 0;
	int ended = 0;
	/* Upper bound of strings in the buffer: count NULs once. */
	size_t nstr = 0;
	for (size_t i = c.pos; i < len; i++)
		nstr += buf[i] == 0;
	argv = s->strs = calloc(nstr + 1, sizeof(char *));
	if (!argv) {
		r = merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
		goto fail;
	}

	while (!ended) {
		idx++;
		const char *name = next_str(&c);
		if (!name) {
			r = BAD("truncated: missing \"end\" record");
			goto fail_argv;
		}
		if (idx > SPEC_MAX_RECORDS) {
			r = BAD("too many records (the limit is %u)", SPEC_MAX_RECORDS);
			goto fail_argv;
		}
		enum rec_id id;
		for (id = 0; id < R__MAX; id++)
			if (!strcmp(records[id].name, name))
				break;
		const char *cnt = next_str(&c);
		long long n;
		if (!cnt) {
			r = BAD("truncated in record %zu (\"%s\")", idx, name);
			goto fail_argv;
		}
		if (parse_ll(cnt, 0, SPEC_MAX_ARGS, &n) < 0) {
			r = BAD("record %zu (\"%s\"): bad argument count \"%.32s\"", idx, name, cnt);
			goto fail_argv;
		}
		if (id != R__MAX && (n < records[id].min || (records[id].max != VAR && n > records[id].max))) {
			if (records[id].min == records[id].max)
				r = BAD("record %zu (\"%s\"): expected %d arguments, got %lld", idx, name, records[id].min, n);
			else
				r = BAD("record %zu (\"%s\"): expected at least %d arguments, got %lld", idx, name, records[id].min, n);
			goto fail_argv;
		}
		const char **a = argv + n_argv_total;
		for (long long i = 0; i < n; i++) {
			const char *arg = next_str(&c);
			if (!arg) {
				r = BAD("truncated in record %zu (\"%s\"): %lld of %lld arguments present", idx, name, i, n);
				goto fail_argv;
			}
			a[i] = arg;
		}
		n_argv_total += (size_t)n + 1; /* +1 keeps each slice NULL-terminated */
		if (id == R__MAX) {
			/* Records of security.c (they check their own arguments). */
			r = sec_record(&s->sec, name, a, (size_t)n, idx, e);
			if (r == 0)
				r = BAD("record %zu: unknown record \"%.64s\"", idx, name);
			if (r < 0)
				goto fail_argv;
			continue;
		}
		if (seen[id]++ && !records[id].repeat) {
			r = BAD("record %zu: duplicate record \"%s\"", idx, name);
			goto fail_argv;
		}
		if (id == R_END) {
			ended = 1;
			if (c.pos != len) {
				r = BAD("%zu bytes of trailing data after \"end\"", len - c.pos);
				goto fail_argv;
			}
			break;
		}
		r = apply(s, id, name, idx, a, (size_t)n, e);
		if (r < 0)
			goto fail_argv;
	}

	if (!s->root) {
		r = BAD("missing record \"root\"");
		goto fail_argv;
	}
	if (!seen[R_NAMESPACES]) {
		r = BAD("missing record \"namespaces\"");
		goto fail_argv;
	}
	if (s->console_log && s->console != CONSOLE_PIPE && s->console != CONSOLE_PASSIVE) {
		r = BAD("\"console_log\" needs console \"pipe\" or \"passive\"");
		goto fail_argv;
	}
	if (s->hostname && !(s->clone_flags & CLONE_NEWUTS)) {
		r = BAD("\"hostname\" needs the \"uts\" namespace (it would rename the host)");
		goto fail_argv;
	}
	if (s->netns_path && (s->clone_flags & CLONE_NEWNET)) {
		r = BAD("\"netns\" and the \"net\" namespace may not be combined");
		goto fail_argv;
	}
	if (s->n_device_rules && !s->device_cgroup) {
		r = BAD("\"device_allow\" needs \"device_policy\"");
		goto fail_argv;
	}
	if (s->net.n_ops && !s->netns_path && !(s->clone_flags & CLONE_NEWNET)) {
		r = BAD("\"net_*\" records need a network namespace of the container's (\"net\" or \"netns\")");
		goto fail_argv;
	}
	{
		const char *why;
		if (userns_validate(&s->us, &why) < 0) {
			r = BAD("%s", why);
			goto fail_argv;
		}
	}
	if (!s->n_execs) {
		r = BAD("missing record \"exec\"");
		goto fail_argv;
	}
	if (s->caps_ambient & ~s->caps_bounding && s->has_caps_bounding) {
		r = BAD("caps_ambient contains capabilities not in caps_bounding");
		goto fail_argv;
	}
	if (!s->env) {
		s->env = calloc(1, sizeof(char *));
		if (!s->env) {
			r = merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
			goto fail_argv;
		}
	}
	if (s->prog)
		g_prog = s->prog;
	return 0;

fail_argv:
fail:
	spec_free(s);
	return r;
}

int spec_read_fd(int fd, const char *what, char **bufp, size_t *lenp, struct merr *e)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
	for (;;) {
		if (len == cap) {
			if (cap > SPEC_MAX_SIZE) {
				free(buf);
				return merr_set(e, 0, "", what, "invalid spec: too large (the limit is %u bytes)", SPEC_MAX_SIZE);
			}
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int r2 = merr_sys(e, "read", what, "failed to read the spec from %s", what);
			free(buf);
			return r2;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}
