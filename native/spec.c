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
	free(s->host_records);
	free(s->host_record_links);
	free(s->host_symlinks);
	free(s->env);
	free(s->rlimits);
	free(s->groups);
	free(s->execs);
	free(s->oci_hooks);
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
	free(s->oci_hooks);
	s->oci_hooks = NULL;
	s->n_oci_hooks = 0;
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

/* ---- the records: one handler each (the table below gives names, arity, repetition) ---- */

static int malformed(const struct rec *r, struct merr *e, const char *what)
{
	return BAD("record %zu (\"%s\"): malformed %s", r->idx, r->name, what);
}

static int oom(struct merr *e)
{
	return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
}

/* a malformed argument: "record N ("NAME"): malformed WHAT" */
#define WANT(cond, what)                                \
	do {                                            \
		if (!(cond))                            \
			return malformed(r, e, (what)); \
	} while (0)
#define HANDLER(fn) static int fn(void *ctx, const struct rec *r, struct merr *e)
#define SPEC struct spec *s = ctx
#define ARGS const char **a = r->a
/* an op of the list, in spec order: declares op, returns on ENOMEM */
#define NEW_OP(k)               \
	struct op *op;          \
	if (add_op(s, &op) < 0) \
		return oom(e);  \
	op->kind = (k)

static int is_root(const char *p)
{
	return strcmp(p, "/") == 0;
}

static int parse_create(const char *v, int *out)
{
	static const struct {
		const char *name;
		int mode;
	} modes[] = { { "dir", CREATE_DIR },   { "auto", CREATE_AUTO },         { "file", CREATE_FILE },
		      { "none", CREATE_NONE }, { "optional", CREATE_OPTIONAL }, { "copyup", CREATE_COPYUP } };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(v, modes[i].name)) {
			*out = modes[i].mode;
			return 0;
		}
	return -EINVAL;
}

HANDLER(on_prog)
{
	SPEC;
	WANT(*r->a[0], "NAME");
	s->prog = r->a[0];
	return 0;
}

HANDLER(on_machine)
{
	SPEC;
	s->machine = r->a[0];
	(void)e;
	return 0;
}

HANDLER(on_root)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "HPATH");
	s->root = r->a[0];
	return 0;
}

HANDLER(on_read_only)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->read_only) == 0, "0|1");
	return 0;
}

HANDLER(on_namespaces)
{
	SPEC;
	ARGS;
	for (size_t i = 0; i < r->n; i++) {
		if (!strcmp(a[i], "mnt"))
			s->clone_flags |= CLONE_NEWNS;
		else if (!strcmp(a[i], "pid"))
			s->clone_flags |= CLONE_NEWPID;
		else if (!strcmp(a[i], "uts"))
			s->clone_flags |= CLONE_NEWUTS;
		else if (!strcmp(a[i], "ipc"))
			s->clone_flags |= CLONE_NEWIPC;
		else if (!strcmp(a[i], "net"))
			s->clone_flags |= CLONE_NEWNET;
		else if (!strcmp(a[i], "cgroup"))
			s->ns_cgroup = 1;
		else if (!strcmp(a[i], "user")) {
			s->clone_flags |= CLONE_NEWUSER;
			s->us.enabled = 1;
		} else
			return BAD("record %zu (\"namespaces\"): unknown namespace \"%s\"", r->idx, a[i]);
	}
	return 0;
}

HANDLER(on_hostname)
{
	SPEC;
	WANT(strlen(r->a[0]) <= 64, "NAME (at most 64 bytes)");
	s->hostname = r->a[0];
	return 0;
}

HANDLER(on_status_fd)
{
	SPEC;
	WANT(rec_int(r->a[0], 0, INT_MAX, &s->status_fd) == 0, "N");
	return 0;
}

HANDLER(on_registry)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "HPATH");
	s->registry = r->a[0];
	return 0;
}

HANDLER(on_state_json)
{
	SPEC;
	s->state_json = r->a[0];
	(void)e;
	return 0;
}

HANDLER(on_cgroup)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "HPATH");
	if (grow_arr(&s->cgroups, &s->n_cgroups, sizeof(char *)) < 0)
		return oom(e);
	s->cgroups[s->n_cgroups - 1] = r->a[0];
	return 0;
}

HANDLER(on_kill_signal)
{
	SPEC;
	WANT(rec_int(r->a[0], 1, _NSIG - 1, &s->kill_signal) == 0, "N (a signal number)");
	return 0;
}

HANDLER(on_boot)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->boot) == 0, "0|1");
	return 0;
}

HANDLER(on_on_reboot)
{
	SPEC;
	if (!strcmp(r->a[0], "restart"))
		s->on_reboot_exit133 = 0;
	else if (!strcmp(r->a[0], "exit133"))
		s->on_reboot_exit133 = 1;
	else
		WANT(0, "restart|exit133");
	return 0;
}

HANDLER(on_exit_mark)
{
	SPEC;
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "HPATH (a file)");
	s->exit_mark = r->a[0];
	return 0;
}

HANDLER(on_on_exit_detach)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->on_exit_detach) == 0, "0|1");
	return 0;
}

HANDLER(on_notify_ready)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->notify_ready) == 0, "0|1");
	return 0;
}

HANDLER(on_notify_forward)
{
	SPEC;
	WANT(*r->a[0], "PATH");
	s->notify_forward = r->a[0];
	return 0;
}

HANDLER(on_console)
{
	SPEC;
	static const struct {
		const char *name;
		int mode;
	} modes[] = { { "interactive", CONSOLE_INTERACTIVE },
		      { "read-only", CONSOLE_READ_ONLY },
		      { "passive", CONSOLE_PASSIVE },
		      { "pipe", CONSOLE_PIPE } };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(r->a[0], modes[i].name)) {
			s->console = modes[i].mode;
			return 0;
		}
	return malformed(r, e, "interactive|read-only|passive|pipe");
}

HANDLER(on_console_opost)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->console_opost) == 0, "0|1");
	return 0;
}

HANDLER(on_console_log)
{
	SPEC;
	ARGS;
	long long max;
	WANT(is_cpath(a[0]), "HPATH");
	WANT(rec_ll(a[1], 1, (long long)1 << 50, &max) == 0, "MAXBYTES (1 or more)");
	WANT(rec_int(a[2], 1, 100, &s->console_log_keep) == 0, "KEEP (1-100)");
	s->console_log = a[0];
	s->console_log_max = (uint64_t)max;
	return 0;
}

HANDLER(on_oci_detach)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->oci_detach) == 0, "0|1");
	return 0;
}

HANDLER(on_umask)
{
	SPEC;
	mode_t m;
	WANT(rec_octal(r->a[0], 0777, &m) == 0, "octal MODE (0-777)");
	s->umask = (int)m;
	return 0;
}

HANDLER(on_root_propagation)
{
	SPEC;
	unsigned long f;
	const unsigned long types = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE;
	WANT(parse_mount_flags(r->a[0], &f) == 0 && (f & ~(types | MS_REC)) == 0 && __builtin_popcountl(f & types) == 1,
	     "FLAGS (one of shared, slave, private, unbindable, maybe with rec)");
	s->root_propagation = f;
	return 0;
}

HANDLER(on_exec_fifo)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "HPATH");
	s->exec_fifo = r->a[0];
	return 0;
}

static int oci_hook_stage(const char *a)
{
	return !strcmp(a, "create_container") ? OCI_HOOK_CREATE_CONTAINER : !strcmp(a, "start_container") ? OCI_HOOK_START_CONTAINER : -1;
}

/* oci_hook STAGE PATH TIMEOUT NARGV ARGV… ENV… */
HANDLER(on_oci_hook)
{
	SPEC;
	ARGS;
	int stage = oci_hook_stage(a[0]), timeout, nargv;
	WANT(stage >= 0, "STAGE (create_container or start_container)");
	WANT(is_cpath(a[1]), "PATH (absolute)");
	WANT(rec_int(a[2], 0, INT_MAX, &timeout) == 0, "TIMEOUT (seconds, 0 = none)");
	WANT(rec_int(a[3], 1, (int)(r->n - 4), &nargv) == 0, "NARGV (1 to the number of arguments left)");
	for (size_t i = 4 + (size_t)nargv; i < r->n; i++)
		WANT(strchr(a[i], '=') && a[i][0] != '=', "ENV (NAME=VALUE)");
	if (grow_arr(&s->oci_hooks, &s->n_oci_hooks, sizeof(struct oci_hook)) < 0)
		return oom(e);
	s->oci_hooks[s->n_oci_hooks - 1] = (struct oci_hook){
		.stage = stage,
		.path = a[1],
		.timeout_s = timeout,
		.argv = a + 4,
		.n_argv = (size_t)nargv,
		.env = a + 4 + nargv,
		.n_env = r->n - 4 - (size_t)nargv,
	};
	return 0;
}

/* oci_hook_state STAGE BODY (once per stage) */
HANDLER(on_oci_hook_state)
{
	SPEC;
	int stage = oci_hook_stage(r->a[0]);
	WANT(stage >= 0, "STAGE (create_container or start_container)");
	if (s->oci_hook_state[stage])
		return BAD("duplicate record \"oci_hook_state\" for stage \"%s\"", r->a[0]);
	s->oci_hook_state[stage] = r->a[1];
	return 0;
}

HANDLER(on_console_socket)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "HPATH");
	s->console_socket = r->a[0];
	return 0;
}

HANDLER(on_quiet)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->quiet) == 0, "0|1");
	return 0;
}

HANDLER(on_mount)
{
	SPEC;
	ARGS;
	NEW_OP(OP_MOUNT);
	op->src = a[0];
	op->path = a[1];
	op->fstype = *a[2] ? a[2] : NULL;
	op->data = *a[4] ? a[4] : NULL;
	WANT(is_cpath(a[1]), "CPATH");
	WANT(parse_mount_flags(a[3], &op->flags) == 0, "FLAGS");
	if (op->flags & MS_BIND)
		WANT(is_layer(a[0]), "SRC (an absolute host path, or +PATH inside the image, for a bind mount)");
	WANT(parse_create(a[5], &op->create) == 0, "CREATE (dir|file|auto|none|optional|copyup)");
	if (op->create == CREATE_AUTO)
		WANT(op->flags & MS_BIND, "CREATE (auto needs a bind mount)");
	if (op->create == CREATE_COPYUP)
		WANT(!(op->flags & MS_BIND), "CREATE (copyup is for a new file system, not a bind mount)");
	return 0;
}

HANDLER(on_rebind)
{
	SPEC;
	ARGS;
	NEW_OP(OP_REBIND);
	op->path = a[0];
	WANT(is_cpath(a[0]), "CPATH");
	WANT(parse_mount_flags(a[1], &op->flags) == 0, "FLAGS");
	WANT(rec_bool(a[2], &op->optional) == 0, "OPTIONAL (0|1)");
	return 0;
}

HANDLER(on_mkdir)
{
	SPEC;
	ARGS;
	NEW_OP(OP_MKDIR);
	op->path = a[0];
	WANT(is_cpath(a[0]), "CPATH");
	WANT(rec_octal(a[1], 07777, &op->mode) == 0, "MODE (octal)");
	return 0;
}

HANDLER(on_mknod)
{
	SPEC;
	ARGS;
	long long mj, mn;
	NEW_OP(OP_MKNOD);
	op->path = a[0];
	WANT(is_cpath(a[0]) && !is_root(a[0]), "CPATH");
	WANT(rec_octal(a[1], 0177777, &op->mode) == 0 && (op->mode & S_IFMT), "MODE (octal, with file type bits)");
	WANT(rec_ll(a[2], 0, 0xfff, &mj) == 0, "MAJOR");
	WANT(rec_ll(a[3], 0, 0xfffff, &mn) == 0, "MINOR");
	op->major = (unsigned)mj;
	op->minor = (unsigned)mn;
	return 0;
}

HANDLER(on_symlink)
{
	SPEC;
	ARGS;
	NEW_OP(OP_SYMLINK);
	op->src = a[0];
	op->path = a[1];
	WANT(*a[0], "TARGET");
	WANT(is_cpath(a[1]) && !is_root(a[1]), "CPATH");
	return 0;
}

HANDLER(on_write)
{
	SPEC;
	ARGS;
	NEW_OP(OP_WRITE);
	op->path = a[0];
	op->data = a[2];
	WANT(is_cpath(a[0]) && !is_root(a[0]), "CPATH");
	WANT(rec_octal(a[1], 07777, &op->mode) == 0, "MODE (octal)");
	return 0;
}

HANDLER(on_mask)
{
	SPEC;
	NEW_OP(OP_MASK);
	op->path = r->a[0];
	WANT(is_cpath(r->a[0]), "CPATH");
	return 0;
}

HANDLER(on_cgroupns)
{
	SPEC;
	NEW_OP(OP_CGROUPNS);
	(void)op;
	(void)r;
	s->has_cgroupns_op = 1;
	return 0;
}

HANDLER(on_notify)
{
	SPEC;
	NEW_OP(OP_NOTIFY);
	op->path = r->a[0];
	WANT(is_cpath(r->a[0]) && strlen(r->a[0]) < 108, "CPATH (absolute, shorter than 108 bytes)");
	return 0;
}

HANDLER(on_copy)
{
	SPEC;
	ARGS;
	NEW_OP(OP_COPY);
	op->src = a[0];
	op->path = a[1];
	WANT(is_cpath(a[0]), "HPATH");
	WANT(is_cpath(a[1]) && !is_root(a[1]), "CPATH");
	WANT(rec_octal(a[2], 07777, &op->mode) == 0, "MODE (octal)");
	return 0;
}

HANDLER(on_remove)
{
	SPEC;
	NEW_OP(OP_REMOVE);
	op->path = r->a[0];
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "CPATH");
	return 0;
}

HANDLER(on_env)
{
	SPEC;
	ARGS;
	s->env = calloc(r->n + 1, sizeof(char *));
	if (!s->env)
		return oom(e);
	for (size_t i = 0; i < r->n; i++) {
		const char *eq = strchr(a[i], '=');
		if (!eq || eq == a[i])
			return BAD("record %zu (\"env\"): argument %zu is not K=V: \"%s\"", r->idx, i + 1, a[i]);
		s->env[i] = a[i];
	}
	s->n_env = r->n;
	return 0;
}

HANDLER(on_chdir)
{
	SPEC;
	WANT(is_cpath(r->a[0]), "CPATH");
	s->chdir = r->a[0];
	return 0;
}

HANDLER(on_caps_bounding)
{
	SPEC;
	WANT(rec_hex64(r->a[0], &s->caps_bounding) == 0, "HEX");
	s->has_caps_bounding = 1;
	return 0;
}

HANDLER(on_caps_ambient)
{
	SPEC;
	WANT(rec_hex64(r->a[0], &s->caps_ambient) == 0, "HEX");
	s->has_caps_ambient = 1;
	return 0;
}

HANDLER(on_rlimit)
{
	SPEC;
	ARGS;
	if (grow_arr(&s->rlimits, &s->n_rlimits, sizeof(struct rlim)) < 0)
		return oom(e);
	struct rlim *rl = &s->rlimits[s->n_rlimits - 1];
	WANT(rec_int(a[0], 0, RLIM_NLIMITS - 1, &rl->res) == 0, "RES");
	WANT(rec_rlim(a[1], &rl->soft) == 0, "SOFT");
	WANT(rec_rlim(a[2], &rl->hard) == 0, "HARD");
	WANT(rl->soft <= rl->hard, "SOFT (greater than HARD)");
	if (r->n == 4)
		WANT(strcmp(a[3], "exact") == 0 || strcmp(a[3], "closest") == 0, "MODE (exact|closest)");
	rl->closest = r->n == 4 && strcmp(a[3], "closest") == 0;
	return 0;
}

HANDLER(on_no_new_privs)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->no_new_privs) == 0, "0|1");
	return 0;
}

HANDLER(on_user)
{
	SPEC;
	ARGS;
	long long v;
	WANT(rec_ll(a[0], 0, 0xfffffffeLL, &v) == 0, "UID");
	s->uid = (uid_t)v;
	WANT(rec_ll(a[1], 0, 0xfffffffeLL, &v) == 0, "GID");
	s->gid = (gid_t)v;
	s->n_groups = r->n - 2;
	s->groups = calloc(s->n_groups + 1, sizeof(gid_t));
	if (!s->groups)
		return oom(e);
	for (size_t i = 2; i < r->n; i++) {
		WANT(rec_ll(a[i], 0, 0xfffffffeLL, &v) == 0, "GROUPS");
		s->groups[i - 2] = (gid_t)v;
	}
	s->has_user = 1;
	return 0;
}

HANDLER(on_as_pid2)
{
	SPEC;
	WANT(rec_bool(r->a[0], &s->as_pid2) == 0, "0|1");
	return 0;
}

HANDLER(on_exec)
{
	SPEC;
	ARGS;
	WANT(*a[0], "PATH");
	if (grow_arr(&s->execs, &s->n_execs, sizeof(struct exec_cand)) < 0)
		return oom(e);
	s->execs[s->n_execs - 1] = (struct exec_cand){ a[0], a[1] };
	return 0;
}

HANDLER(on_args)
{
	SPEC;
	s->args = r->a;
	s->n_args = r->n;
	(void)e;
	return 0;
}

HANDLER(on_selinux_context)
{
	SPEC;
	WANT(*r->a[0] && !strpbrk(r->a[0], "\n\r"), "LABEL (not empty, one line)");
	s->selinux_context = r->a[0];
	return 0;
}

/* uid_map, gid_map, cgroup_owner, userns_lock, chown_root, idmap_root (userns.c) */
HANDLER(on_userns)
{
	SPEC;
	const char *bad = NULL;
	int ret = userns_parse_record(&s->us, r->name, r->a, r->n, &bad);
	if (ret == -ENOMEM)
		return oom(e);
	return ret < 0 ? malformed(r, e, bad) : 0;
}

/* net_veth, net_addr, net_up, net_master, net_route, net_sysctl (netlink.c) */
HANDLER(on_net)
{
	SPEC;
	const char *bad = NULL;
	int ret = net_parse_record(&s->net, r->name, r->a, r->n, &bad);
	if (ret == -ENOMEM)
		return oom(e);
	return ret < 0 ? malformed(r, e, bad) : 0;
}

HANDLER(on_idmap_bind)
{
	SPEC;
	ARGS;
	long long v;
	NEW_OP(OP_IDMAP_BIND);
	op->fd = -1;
	op->src = a[0];
	op->path = a[1];
	WANT(is_layer(a[0]), "SRC (an absolute host path, or +PATH inside the image)");
	WANT(is_cpath(a[1]), "CPATH");
	WANT(parse_mount_flags(a[2], &op->flags) == 0, "FLAGS");
	WANT(parse_create(a[3], &op->create) == 0 && op->create != CREATE_COPYUP, "CREATE (dir|file|auto|none|optional)");
	if (!strcmp(a[4], "owner"))
		op->idmap_from = -1;
	else {
		WANT(rec_ll(a[4], 0, 0xfffffffeLL, &v) == 0, "FROM (a number or \"owner\")");
		op->idmap_from = (long)v;
	}
	WANT(rec_ll(a[5], 0, 0xfffffffeLL, &v) == 0, "TO");
	op->idmap_to = (unsigned long)v;
	WANT(rec_ll(a[6], 1, 0xfffffffeLL, &v) == 0 && op->idmap_to + (unsigned long)v - 1 <= 0xfffffffeUL &&
		     (op->idmap_from < 0 ? v == 1 : (unsigned long)op->idmap_from + (unsigned long)v - 1 <= 0xfffffffeUL),
	     "COUNT (1 with FROM \"owner\")");
	op->idmap_count = (unsigned long)v;
	return 0;
}

HANDLER(on_fsmount)
{
	SPEC;
	ARGS;
	NEW_OP(OP_FSMOUNT);
	op->fd = -1;
	op->fstype = a[0];
	op->path = a[1];
	op->data = *a[3] ? a[3] : NULL;
	WANT(*a[0], "FSTYPE");
	WANT(is_cpath(a[1]), "CPATH");
	WANT(parse_mount_flags(a[2], &op->flags) == 0, "FLAGS");
	return 0;
}

/* root_tmpfs, root_overlay */
HANDLER(on_root_mode)
{
	SPEC;
	if (s->root_mode != ROOT_BIND)
		return BAD("record %zu (\"%s\"): only one of root_tmpfs and root_overlay may be given", r->idx, r->name);
	s->root_mode = !strcmp(r->name, "root_tmpfs") ? ROOT_TMPFS : ROOT_OVERLAY;
	s->root_data = r->a[0];
	return 0;
}

HANDLER(on_pivot_root_dir)
{
	SPEC;
	ARGS;
	WANT(is_cpath(a[0]), "NEW (a container path)");
	WANT(!*a[1] || is_cpath(a[1]), "OLD (a container path or empty)");
	s->pivot_new = a[0];
	s->pivot_old = *a[1] ? a[1] : NULL;
	return 0;
}

static int host_dir(const struct rec *r, struct merr *e, int layer, mode_t *mode)
{
	const char **a = r->a;
	WANT(layer ? is_layer(a[0]) : is_cpath(a[0]), layer ? "HPATH or +CPATH" : "HPATH");
	WANT(!is_root(a[0]) && strcmp(a[0], "+/") != 0, "path (not the root)");
	WANT(rec_octal(a[1], 07777, mode) == 0, "MODE (octal)");
	return 0;
}

HANDLER(on_scratch_dir)
{
	SPEC;
	mode_t mode;
	int ret = host_dir(r, e, 1, &mode);
	if (ret < 0)
		return ret;
	return add_host_path(&s->scratch, &s->n_scratch, r->a[0], NULL, mode) < 0 ? oom(e) : 0;
}

HANDLER(on_host_mkdir)
{
	SPEC;
	mode_t mode;
	int ret = host_dir(r, e, 0, &mode);
	if (ret < 0)
		return ret;
	return add_host_path(&s->host_mkdirs, &s->n_host_mkdirs, r->a[0], NULL, mode) < 0 ? oom(e) : 0;
}

HANDLER(on_host_symlink)
{
	SPEC;
	ARGS;
	WANT(*a[0], "TARGET");
	WANT(is_cpath(a[1]) && !is_root(a[1]), "HPATH");
	return add_host_path(&s->host_symlinks, &s->n_host_symlinks, a[1], a[0], 0) < 0 ? oom(e) : 0;
}

HANDLER(on_scratch_list)
{
	SPEC;
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "HPATH");
	s->scratch_list = r->a[0];
	return 0;
}

/* netns, ipcns, utsns, mntns, pidns: a namespace (nsfs bind mount, /proc/PID/ns/…) the container joins */
HANDLER(on_join_ns)
{
	SPEC;
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "HPATH");
	const char **slot = !strcmp(r->name, "netns")   ? &s->netns_path
			    : !strcmp(r->name, "ipcns") ? &s->ipcns_path
			    : !strcmp(r->name, "mntns") ? &s->mntns_path
			    : !strcmp(r->name, "pidns") ? &s->pidns_path
							: &s->utsns_path;
	*slot = r->a[0];
	return 0;
}

/* on_exit, prestart, on_leader: ARGV of a host command (hooks.c) */
static int host_argv(const struct rec *r, struct merr *e, const char ***argv, size_t *n)
{
	WANT(is_cpath(r->a[0]), "ARGV (an absolute program path first)");
	*argv = r->a;
	*n = r->n;
	return 0;
}

HANDLER(on_on_exit)
{
	SPEC;
	return host_argv(r, e, &s->on_exit, &s->n_on_exit);
}

HANDLER(on_prestart)
{
	SPEC;
	return host_argv(r, e, &s->prestart, &s->n_prestart);
}

HANDLER(on_prestart_unless_table)
{
	SPEC;
	WANT(nft_family(r->a[0]) >= 0, "FAMILY (ip, ip6 or inet)");
	WANT(r->a[1][0] && strlen(r->a[1]) < 256, "NAME (an nft table's name)");
	s->prestart_unless_family = r->a[0];
	s->prestart_unless_table = r->a[1];
	return 0;
}

HANDLER(on_on_leader)
{
	SPEC;
	return host_argv(r, e, &s->on_leader, &s->n_on_leader);
}

HANDLER(on_supervisor_cgroup)
{
	SPEC;
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "HPATH");
	s->supervisor_cgroup = r->a[0];
	return 0;
}

HANDLER(on_overlay)
{
	SPEC;
	ARGS;
	size_t n = r->n;
	NEW_OP(OP_OVERLAY);
	op->path = a[0];
	WANT(is_cpath(a[0]), "CPATH");
	WANT(parse_mount_flags(a[1], &op->flags) == 0, "FLAGS");
	op->upper = a[2];
	op->work = a[3];
	WANT(!*a[2] || is_layer(a[2]), "UPPER (HPATH, +CPATH or empty)");
	WANT(!*a[2] == !*a[3] && (!*a[3] || is_layer(a[3])), "WORK (HPATH or +CPATH, empty exactly when UPPER is)");
	op->layers = calloc(n - 4 + 1, sizeof(char *));
	if (!op->layers)
		return oom(e);
	op->n_layers = n - 4;
	for (size_t i = 4; i < n; i++) {
		WANT(is_layer(a[i]), "LOWER (HPATH or +CPATH)");
		op->layers[i - 4] = a[i];
	}
	return 0;
}

/* host_umount, host_remove: a host path the supervisor handles at exit */
static int host_exit_path(const struct rec *r, struct merr *e, const char ***arr, size_t *n)
{
	WANT(is_cpath(r->a[0]) && !is_root(r->a[0]), "HPATH (not the root)");
	if (grow_arr(arr, n, sizeof(char *)) < 0)
		return oom(e);
	(*arr)[*n - 1] = r->a[0];
	return 0;
}

HANDLER(on_host_umount)
{
	SPEC;
	return host_exit_path(r, e, &s->host_umounts, &s->n_host_umounts);
}

HANDLER(on_host_remove)
{
	SPEC;
	return host_exit_path(r, e, &s->host_removes, &s->n_host_removes);
}

HANDLER(on_host_record)
{
	SPEC;
	ARGS;
	WANT(is_cpath(a[0]) && !is_root(a[0]), "HPATH (a file)");
	if (grow_arr(&s->host_records, &s->n_host_records, sizeof(struct host_record)) < 0)
		return oom(e);
	s->host_records[s->n_host_records - 1] = (struct host_record){ a[0], a[1] };
	return 0;
}

HANDLER(on_host_record_link)
{
	SPEC;
	ARGS;
	WANT(*a[0] && !strchr(a[0], '/'), "TARGET (a name in the link's directory)");
	WANT(is_cpath(a[1]) && !is_root(a[1]), "HPATH (the link)");
	if (grow_arr(&s->host_record_links, &s->n_host_record_links, sizeof(struct host_record)) < 0)
		return oom(e);
	s->host_record_links[s->n_host_record_links - 1] = (struct host_record){ a[1], a[0] };
	return 0;
}

HANDLER(on_image_lock)
{
	SPEC;
	ARGS;
	WANT(is_cpath(a[0]) && !is_root(a[0]), "HPATH (a lock file)");
	WANT(!strcmp(a[1], "exclusive") || !strcmp(a[1], "shared"), "MODE (exclusive or shared)");
	WANT(*a[2], "IMAGE");
	if (grow_arr(&s->image_locks, &s->n_image_locks, sizeof(struct image_lock)) < 0)
		return oom(e);
	s->image_locks[s->n_image_locks - 1] = (struct image_lock){ a[0], a[1][0] == 'e', a[2] };
	return 0;
}

HANDLER(on_device_policy)
{
	SPEC;
	WANT(is_cpath(r->a[0]) && strcmp(r->a[0], "/") != 0, "HPATH (the container's cgroup2 directory)");
	s->device_cgroup = r->a[0];
	return 0;
}

HANDLER(on_device_allow)
{
	SPEC;
	ARGS;
	struct device_rule rule;
	const char *why = NULL;
	WANT(devices_parse_allow(&rule, a, &why) == 0, why);
	if (grow_arr(&s->device_rules, &s->n_device_rules, sizeof rule) < 0)
		return oom(e);
	s->device_rules[s->n_device_rules - 1] = rule;
	return 0;
}

#undef WANT
#undef HANDLER
#undef SPEC
#undef ARGS
#undef NEW_OP

/* The RunSpec's records (SPEC.md, "Records"). The seccomp and other security records are not
 * here: security.c reads those (sec_record). `end` has no handler. */
static const struct rec_def records[] = {
	{ "prog", 1, 1, 0, on_prog, NULL },
	{ "machine", 1, 1, 0, on_machine, NULL },
	{ "root", 1, 1, 0, on_root, NULL },
	{ "read_only", 1, 1, 0, on_read_only, NULL },
	{ "namespaces", 0, REC_VAR, 0, on_namespaces, NULL },
	{ "hostname", 1, 1, 0, on_hostname, NULL },
	{ "status_fd", 1, 1, 0, on_status_fd, NULL },
	{ "registry", 1, 1, 0, on_registry, NULL },
	{ "state_json", 1, 1, 0, on_state_json, NULL },
	{ "cgroup", 1, 1, 1, on_cgroup, NULL },
	{ "kill_signal", 1, 1, 0, on_kill_signal, NULL },
	{ "boot", 1, 1, 0, on_boot, NULL },
	{ "on_reboot", 1, 1, 0, on_on_reboot, NULL },
	{ "notify_ready", 1, 1, 0, on_notify_ready, NULL },
	{ "notify_forward", 1, 1, 0, on_notify_forward, NULL },
	{ "console", 1, 1, 0, on_console, NULL },
	{ "console_opost", 1, 1, 0, on_console_opost, NULL },
	{ "console_log", 3, 3, 0, on_console_log, NULL },
	{ "quiet", 1, 1, 0, on_quiet, NULL },
	{ "oci_detach", 1, 1, 0, on_oci_detach, NULL },
	{ "exec_fifo", 1, 1, 0, on_exec_fifo, NULL },
	{ "umask", 1, 1, 0, on_umask, NULL },
	{ "root_propagation", 1, 1, 0, on_root_propagation, NULL },
	{ "console_socket", 1, 1, 0, on_console_socket, NULL },
	{ "oci_hook", 5, REC_VAR, 1, on_oci_hook, NULL },
	{ "oci_hook_state", 2, 2, 1, on_oci_hook_state, NULL },
	{ "mount", 6, 6, 1, on_mount, NULL },
	{ "rebind", 3, 3, 1, on_rebind, NULL },
	{ "mkdir", 2, 2, 1, on_mkdir, NULL },
	{ "mknod", 4, 4, 1, on_mknod, NULL },
	{ "symlink", 2, 2, 1, on_symlink, NULL },
	{ "write", 3, 3, 1, on_write, NULL },
	{ "mask", 1, 1, 1, on_mask, NULL },
	{ "cgroupns", 0, 0, 0, on_cgroupns, NULL },
	{ "notify", 1, 1, 0, on_notify, NULL },
	{ "copy", 3, 3, 1, on_copy, NULL },
	{ "remove", 1, 1, 1, on_remove, NULL },
	{ "env", 0, REC_VAR, 0, on_env, NULL },
	{ "chdir", 1, 1, 0, on_chdir, NULL },
	{ "caps_bounding", 1, 1, 0, on_caps_bounding, NULL },
	{ "caps_ambient", 1, 1, 0, on_caps_ambient, NULL },
	{ "rlimit", 3, 4, 1, on_rlimit, NULL },
	{ "no_new_privs", 1, 1, 0, on_no_new_privs, NULL },
	{ "user", 2, REC_VAR, 0, on_user, NULL },
	{ "as_pid2", 1, 1, 0, on_as_pid2, NULL },
	{ "exec", 2, 2, 1, on_exec, NULL },
	{ "args", 0, REC_VAR, 0, on_args, NULL },
	{ "uid_map", 3, 3, 1, on_userns, NULL },
	{ "gid_map", 3, 3, 1, on_userns, NULL },
	{ "cgroup_owner", 2, 2, 0, on_userns, NULL },
	{ "userns_lock", 1, 1, 0, on_userns, NULL },
	{ "chown_root", 2, 2, 0, on_userns, NULL },
	{ "idmap_root", 2, 2, 0, on_userns, NULL },
	{ "fsmount", 4, 4, 1, on_fsmount, NULL },
	{ "idmap_bind", 7, 7, 1, on_idmap_bind, NULL },
	{ "root_tmpfs", 1, 1, 0, on_root_mode, NULL },
	{ "root_overlay", 1, 1, 0, on_root_mode, NULL },
	{ "pivot_root_dir", 2, 2, 0, on_pivot_root_dir, NULL },
	{ "scratch_dir", 2, 2, 1, on_scratch_dir, NULL },
	{ "host_mkdir", 2, 2, 1, on_host_mkdir, NULL },
	{ "host_symlink", 2, 2, 1, on_host_symlink, NULL },
	{ "overlay", 5, REC_VAR, 1, on_overlay, NULL },
	{ "scratch_list", 1, 1, 0, on_scratch_list, NULL },
	{ "netns", 1, 1, 0, on_join_ns, NULL },
	{ "ipcns", 1, 1, 0, on_join_ns, NULL },
	{ "utsns", 1, 1, 0, on_join_ns, NULL },
	{ "mntns", 1, 1, 0, on_join_ns, NULL },
	{ "pidns", 1, 1, 0, on_join_ns, NULL },
	{ "on_exit", 1, REC_VAR, 0, on_on_exit, NULL },
	{ "host_umount", 1, 1, 1, on_host_umount, NULL },
	{ "host_remove", 1, 1, 1, on_host_remove, NULL },
	{ "host_record", 2, 2, 1, on_host_record, NULL },
	{ "host_record_link", 2, 2, 1, on_host_record_link, NULL },
	{ "on_exit_detach", 1, 1, 0, on_on_exit_detach, NULL },
	{ "exit_mark", 1, 1, 0, on_exit_mark, NULL },
	{ "image_lock", 3, 3, 1, on_image_lock, NULL },
	{ "on_leader", 1, REC_VAR, 0, on_on_leader, NULL },
	{ "supervisor_cgroup", 1, 1, 0, on_supervisor_cgroup, NULL },
	{ "net_veth", 4, 4, 0, on_net, NULL },
	{ "net_addr", 3, 3, 1, on_net, NULL },
	{ "net_up", 2, 2, 1, on_net, NULL },
	{ "net_master", 3, 3, 1, on_net, NULL },
	{ "net_route", 3, 3, 1, on_net, NULL },
	{ "net_sysctl", 2, 2, 1, on_net, NULL },
	{ "net_macvlan", 3, 3, 1, on_net, NULL },
	{ "prestart", 1, REC_VAR, 0, on_prestart, NULL },
	{ "prestart_unless_table", 2, 2, 0, on_prestart_unless_table, NULL },
	{ "selinux_context", 1, 1, 0, on_selinux_context, NULL },
	{ "device_policy", 1, 1, 0, on_device_policy, NULL },
	{ "device_allow", 4, 4, 1, on_device_allow, NULL },
	{ "end", 0, 0, 0, NULL, NULL },
};
#define N_RECORDS ARRAY_SIZE(records)

/* A reader status as the RunSpec's message. */
static int read_error(enum rec_status st, const struct rec_reader *rd, const struct rec *r, struct merr *e)
{
	switch (st) {
	case REC_BAD_MAGIC: return BAD("bad header (expected \"%s\")", SPEC_MAGIC);
	case REC_NO_VERSION: return BAD("truncated after the header");
	case REC_BAD_VERSION: return BAD("unsupported version \"%.16s\" (this helper reads version %s)", rd->version, SPEC_VERSION);
	case REC_NOMEM: return oom(e);
	case REC_NO_NAME: return BAD("truncated: missing \"end\" record");
	case REC_NO_COUNT: return BAD("truncated in record %zu (\"%s\")", r->idx, r->name);
	case REC_BAD_COUNT: return BAD("record %zu (\"%s\"): bad argument count \"%.32s\"", r->idx, r->name, r->count);
	case REC_SHORT_ARGS:
		return BAD("truncated in record %zu (\"%s\"): %zu of %zu arguments present", r->idx, r->name, r->present, r->n);
	case REC_OK: break;
	}
	return BAD("unreadable");
}

/* Read and apply records up to `end`; seen[i] counts records[i]. */
static int read_records(struct spec *s, struct rec_reader *rd, unsigned seen[N_RECORDS], struct merr *e)
{
	for (;;) {
		struct rec r;
		enum rec_status st = rec_head(rd, &r);
		if (st == REC_NO_NAME)
			return read_error(st, rd, &r, e);
		if (r.idx > SPEC_MAX_RECORDS) /* checked once the name is read, before its count */
			return BAD("too many records (the limit is %u)", SPEC_MAX_RECORDS);
		if (st != REC_OK)
			return read_error(st, rd, &r, e);
		size_t id = rec_find(records, N_RECORDS, r.name);
		const struct rec_def *d = id < N_RECORDS ? &records[id] : NULL;
		if (d && !rec_arity_ok(d, r.n)) {
			if (d->min == d->max)
				return BAD("record %zu (\"%s\"): expected %d arguments, got %zu", r.idx, r.name, d->min, r.n);
			return BAD("record %zu (\"%s\"): expected at least %d arguments, got %zu", r.idx, r.name, d->min, r.n);
		}
		st = rec_args(rd, &r);
		if (st != REC_OK)
			return read_error(st, rd, &r, e);
		if (!d) {
			/* Records of security.c (they check their own arguments). */
			int ret = sec_record(&s->sec, r.name, r.a, r.n, r.idx, e);
			if (ret == 0)
				return BAD("record %zu: unknown record \"%.64s\"", r.idx, r.name);
			if (ret < 0)
				return ret;
			continue;
		}
		if (seen[id]++ && !d->repeat)
			return BAD("record %zu: duplicate record \"%s\"", r.idx, r.name);
		if (!d->fn) { /* end */
			if (rec_left(rd))
				return BAD("%zu bytes of trailing data after \"end\"", rec_left(rd));
			return 0;
		}
		int ret = d->fn(s, &r, e);
		if (ret < 0)
			return ret;
	}
}

/* What no single record can tell: required records and combinations. */
static int check_spec(struct spec *s, const unsigned seen[N_RECORDS], struct merr *e)
{
	const char *why;
	if (!s->root)
		return BAD("missing record \"root\"");
	if (!seen[rec_find(records, N_RECORDS, "namespaces")])
		return BAD("missing record \"namespaces\"");
	if (!(s->clone_flags & CLONE_NEWNS) == !s->mntns_path || !(s->clone_flags & CLONE_NEWPID) == !s->pidns_path)
		return BAD("\"namespaces\": \"mnt\" and \"pid\" are required (or instead \"mntns\" and \"pidns\", never both)");
	if ((s->mntns_path || s->pidns_path) && s->us.enabled)
		return BAD("\"mntns\" and \"pidns\" cannot be combined with the \"user\" namespace");
	if (s->console_log && s->console != CONSOLE_PIPE && s->console != CONSOLE_PASSIVE)
		return BAD("\"console_log\" needs console \"pipe\" or \"passive\"");
	if (s->oci_detach && !s->exec_fifo)
		return BAD("\"oci_detach\" needs \"exec_fifo\" (the payload must wait for its start)");
	if (s->oci_detach && (s->boot || s->as_pid2 || s->registry || s->console_log))
		return BAD("\"oci_detach\" cannot be combined with boot, as_pid2, registry or console_log");
	for (size_t i = 0; i < s->n_oci_hooks; i++) {
		if (!s->oci_hook_state[s->oci_hooks[i].stage])
			return BAD("\"oci_hook\" needs the \"oci_hook_state\" of its stage");
		if (s->oci_hooks[i].stage == OCI_HOOK_START_CONTAINER && !s->exec_fifo)
			return BAD("\"oci_hook\" start_container needs \"exec_fifo\" (it runs once the start came)");
	}
	if (s->console_socket && s->console != CONSOLE_INTERACTIVE)
		return BAD("\"console_socket\" needs console \"interactive\" (a pty)");
	if (s->hostname && !(s->clone_flags & CLONE_NEWUTS) && !s->utsns_path)
		return BAD("\"hostname\" needs the \"uts\" namespace or \"utsns\" (it would rename the host)");
	if (s->ipcns_path && (s->clone_flags & CLONE_NEWIPC))
		return BAD("\"ipcns\" and the \"ipc\" namespace may not be combined");
	if (s->utsns_path && (s->clone_flags & CLONE_NEWUTS))
		return BAD("\"utsns\" and the \"uts\" namespace may not be combined");
	if (s->netns_path && (s->clone_flags & CLONE_NEWNET))
		return BAD("\"netns\" and the \"net\" namespace may not be combined");
	if (s->n_device_rules && !s->device_cgroup)
		return BAD("\"device_allow\" needs \"device_policy\"");
	if (s->net.n_ops && !s->netns_path && !(s->clone_flags & CLONE_NEWNET))
		return BAD("\"net_*\" records need a network namespace of the container's (\"net\" or \"netns\")");
	if (userns_validate(&s->us, &why) < 0)
		return BAD("%s", why);
	if (!s->n_execs)
		return BAD("missing record \"exec\"");
	if (s->caps_ambient & ~s->caps_bounding && s->has_caps_bounding)
		return BAD("caps_ambient contains capabilities not in caps_bounding");
	if (!s->env) {
		s->env = calloc(1, sizeof(char *));
		if (!s->env)
			return oom(e);
	}
	return 0;
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
	s->exec_fifo_fd = -1;
	s->umask = 022;
	s->us.lock_fd = -1;
	s->us.root_tree_fd = -1;

	unsigned seen[N_RECORDS] = { 0 };
	struct rec_reader rd;
	int r;
	if (len > SPEC_MAX_SIZE) {
		r = BAD("too large (%zu bytes, the limit is %u)", len, SPEC_MAX_SIZE);
		goto fail;
	}
	enum rec_status st = rec_open(&rd, buf, len, SPEC_MAGIC, SPEC_VERSION);
	/* argument slices for the whole spec live in one array (args record keeps a slice) */
	s->strs = rd.pool;
	if (st != REC_OK) {
		r = read_error(st, &rd, NULL, e);
		goto fail;
	}
	r = read_records(s, &rd, seen, e);
	if (r == 0)
		r = check_spec(s, seen, e);
	if (r < 0)
		goto fail;
	if (s->prog)
		g_prog = s->prog;
	return 0;

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
