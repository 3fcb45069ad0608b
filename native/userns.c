/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* User namespaces: see userns.h and SPEC.md "User namespaces". */
#include "userns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "resolve.h"
#include "spec.h"
#include "util.h"

/* ---- syscalls glibc 2.36 does not wrap ---- */

static int sys_open_tree(int dfd, const char *path, unsigned flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static int sys_mount_setattr(int dfd, const char *path, unsigned flags, struct mount_attr *a)
{
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, a, sizeof *a);
}
static int sys_move_mount(int from, const char *fp, int to, const char *tp, unsigned flags)
{
	return (int)syscall(SYS_move_mount, from, fp, to, tp, flags);
}
static int sys_fsopen(const char *fs, unsigned flags)
{
	return (int)syscall(SYS_fsopen, fs, flags);
}
static int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *val, int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, val, aux);
}
static int sys_fsmount(int fd, unsigned flags, unsigned attrs)
{
	return (int)syscall(SYS_fsmount, fd, flags, attrs);
}

/* ---- parsing ---- */

static int parse_ul(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s)
		return -EINVAL;
	unsigned long long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = (unsigned long)v;
	return 0;
}

#define ID_MAX 0xfffffffeUL

static int add_line(struct idmap_line **arr, size_t *n, const char **a, const char **bad)
{
	struct idmap_line l;
	if (parse_ul(a[0], ID_MAX, &l.inside) < 0)
		return *bad = "INSIDE", -EINVAL;
	if (parse_ul(a[1], ID_MAX, &l.outside) < 0)
		return *bad = "OUTSIDE", -EINVAL;
	if (parse_ul(a[2], ID_MAX, &l.count) < 0 || l.count == 0 || l.inside + l.count - 1 > ID_MAX || l.outside + l.count - 1 > ID_MAX)
		return *bad = "COUNT", -EINVAL;
	if (*n >= 340) /* the kernel's limit of lines per map */
		return *bad = "(more than 340 lines)", -EINVAL;
	struct idmap_line *p = realloc(*arr, (*n + 1) * sizeof *p);
	if (!p)
		return -ENOMEM;
	p[(*n)++] = l;
	*arr = p;
	return 0;
}

int userns_parse_record(struct userns_spec *u, const char *name, const char **a, size_t n, const char **bad)
{
	unsigned long v1, v2;
	(void)n;
	if (!strcmp(name, "uid_map"))
		return add_line(&u->uid_map, &u->n_uid_map, a, bad);
	if (!strcmp(name, "gid_map"))
		return add_line(&u->gid_map, &u->n_gid_map, a, bad);
	if (!strcmp(name, "cgroup_owner")) {
		if (parse_ul(a[0], ID_MAX, &v1) < 0)
			return *bad = "UID", -EINVAL;
		if (parse_ul(a[1], ID_MAX, &v2) < 0)
			return *bad = "GID", -EINVAL;
		u->has_cgroup_owner = 1;
		u->cgroup_uid = (uid_t)v1;
		u->cgroup_gid = (gid_t)v2;
		return 0;
	}
	if (!strcmp(name, "userns_lock")) {
		if (a[0][0] != '/')
			return *bad = "HPATH", -EINVAL;
		u->lock = a[0];
		return 0;
	}
	if (!strcmp(name, "chown_root") || !strcmp(name, "idmap_root")) {
		int chown = name[0] == 'c';
		if (parse_ul(a[0], ID_MAX, &v1) < 0 || (chown && (v1 & 0xffff)))
			return *bad = chown ? "BASE (a multiple of 65536)" : "OUTSIDE", -EINVAL;
		if (parse_ul(a[1], ID_MAX, &v2) < 0 || v2 == 0 || v1 + v2 - 1 > ID_MAX || (chown && v2 != 0x10000))
			return *bad = chown ? "COUNT (65536)" : "COUNT", -EINVAL;
		if (chown) {
			u->has_chown = 1;
			u->chown_base = v1;
			u->chown_count = v2;
		} else {
			u->has_idmap_root = 1;
			u->idmap_base = v1;
			u->idmap_count = v2;
		}
		return 0;
	}
	return *bad = "(unknown record)", -EINVAL;
}

int userns_validate(const struct userns_spec *u, const char **why)
{
	if (u->enabled && (!u->n_uid_map || !u->n_gid_map))
		return *why = "the \"user\" namespace needs \"uid_map\" and \"gid_map\" records", -EINVAL;
	if (!u->enabled && (u->n_uid_map || u->n_gid_map || u->has_idmap_root))
		return *why = "\"uid_map\", \"gid_map\" and \"idmap_root\" need the \"user\" namespace", -EINVAL;
	return 0;
}

void userns_spec_free(struct userns_spec *u)
{
	free(u->uid_map);
	free(u->gid_map);
	u->uid_map = u->gid_map = NULL;
	u->n_uid_map = u->n_gid_map = 0;
}

int userns_format_map(const struct idmap_line *m, size_t n, char *buf, size_t sz)
{
	size_t pos = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n; i++)
		buf_printf(buf, sz, &pos, "%lu %lu %lu\n", m[i].inside, m[i].outside, m[i].count);
	return pos + 1 >= sz ? -ENAMETOOLONG : (int)pos;
}

/* ---- chown of the tree ---- */

static unsigned long shift_id(unsigned long id, unsigned long base)
{
	return base + (id & 0xffffUL);
}

/* Change one inode (dirfd/name, not followed). Keeps the mode: chown clears setuid/setgid. */
static int patch_one(int dirfd, const char *name, const struct stat *st, unsigned long base, struct merr *e, const char *what)
{
	uid_t nu = (uid_t)shift_id(st->st_uid, base);
	gid_t ng = (gid_t)shift_id(st->st_gid, base);
	if (st->st_uid == nu && st->st_gid == ng)
		return 0;
	if (fchownat(dirfd, name, nu, ng, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
		return merr_sys(e, "fchownat", what, "failed to change the owner of \"%s\"/\"%s\"", what, name);
	if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID))) {
		char p[32];
		int fd = *name ? openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : dup(dirfd);
		if (fd < 0)
			return merr_sys(e, "openat", what, "failed to open \"%s\"/\"%s\"", what, name);
		int r = chmod(fd_path(fd, p), st->st_mode & 07777);
		close(fd);
		if (r < 0)
			return merr_sys(e, "chmod", what, "failed to restore the mode of \"%s\"/\"%s\"", what, name);
	}
	return 0;
}

static int walk(int dfd, dev_t dev, unsigned long base, int depth, const char *what, struct merr *e)
{
	if (depth > 256)
		return merr_set(e, ELOOP, "openat", what, "directory tree too deep below \"%s\"", what);
	int fd2 = dup(dfd);
	if (fd2 < 0)
		return merr_sys(e, "dup", what, "failed to read directory \"%s\"", what);
	DIR *d = fdopendir(fd2);
	if (!d) {
		close(fd2);
		return merr_sys(e, "fdopendir", what, "failed to read directory \"%s\"", what);
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			r = merr_sys(e, "fstatat", what, "failed to stat \"%s\"/\"%s\"", what, de->d_name);
			break;
		}
		if (st.st_dev != dev)
			continue; /* another file system mounted below: left alone */
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = merr_sys(e, "openat", what, "failed to open \"%s\"/\"%s\"", what, de->d_name);
				break;
			}
			r = walk(sub, dev, base, depth + 1, what, e);
			close(sub);
			if (r < 0)
				break;
		}
		r = patch_one(dfd, de->d_name, &st, base, e, what);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

int userns_chown_tree(int dirfd, const char *what, unsigned long base, struct merr *e)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return merr_sys(e, "fstat", what, "failed to stat \"%s\"", what);
	/* The root's owner marks the range the tree is in (as systemd-nspawn). */
	if (((st.st_uid ^ base) >> 16) == 0 && ((st.st_gid ^ base) >> 16) == 0)
		return 0;
	int r = walk(dirfd, st.st_dev, base, 0, what, e);
	if (r < 0)
		return r;
	/* The root last: an interrupted run is redone next time. */
	return patch_one(dirfd, "", &st, base, e, what);
}

/* ---- supervisor ---- */

int userns_prepare(const struct spec *s, struct merr *e)
{
	struct userns_spec *u = (struct userns_spec *)&s->us;
	u->lock_fd = -1;
	u->root_tree_fd = -1;
	if (u->lock) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", u->lock);
		for (char *p = dir + 1; (p = strchr(p, '/')); p++) { /* mkdir -p of the lock's directory */
			*p = 0;
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return merr_sys(e, "mkdir", dir, "failed to create directory \"%s\"", dir);
			*p = '/';
		}
		/* Another start tests the range's lock for a moment while it picks one of its own
		 * (host/userns-facts.ts), and a holder that ends unlinks the file before it lets go:
		 * a busy lock, or one that is no longer the file at the path, is retried for a moment
		 * (50 x 4 ms) before the range counts as another container's. */
		for (int attempt = 0;; attempt++) {
			u->lock_fd = open(u->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (u->lock_fd < 0)
				return merr_sys(e, "open", u->lock, "failed to open the UID range lock \"%s\"", u->lock);
			if (flock(u->lock_fd, LOCK_EX | LOCK_NB) == 0) {
				struct stat a, b;
				if (fstat(u->lock_fd, &a) == 0 && stat(u->lock, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
					break;
			} else if (errno != EWOULDBLOCK) {
				int r = merr_sys(e, "flock", u->lock, "failed to lock \"%s\"", u->lock);
				close(u->lock_fd);
				u->lock_fd = -1;
				return r;
			}
			close(u->lock_fd);
			u->lock_fd = -1;
			if (attempt >= 50)
				return merr_set(e, 0, "flock", u->lock, "UID range lock \"%s\" is held by another container", u->lock);
			struct timespec ts = { 0, 4 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		const char *m = s->machine ? s->machine : "";
		if (ftruncate(u->lock_fd, 0) < 0 || write_all(u->lock_fd, m, strlen(m)) < 0 || write_all(u->lock_fd, "\n", 1) < 0)
			return merr_sys(e, "write", u->lock, "failed to write \"%s\"", u->lock);
	}
	if (u->has_chown) {
		_cleanup_close_ int fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return merr_sys(e, "open", s->root, "failed to open \"%s\"", s->root);
		int r = userns_chown_tree(fd, s->root, u->chown_base, e);
		if (r < 0)
			return r;
	}
	return 0;
}

void userns_cleanup(const struct spec *s)
{
	struct userns_spec *u = (struct userns_spec *)&s->us;
	if (u->lock_fd >= 0) {
		unlink(u->lock); /* while still holding it: a waiter re-checks the path */
		close(u->lock_fd);
		u->lock_fd = -1;
	}
}

static int write_file(const char *path, const char *text, struct merr *e)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "open", path, "failed to open \"%s\"", path);
	ssize_t n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text))
		return merr_sys(e, "write", path, "failed to write \"%s\"", path);
	return 0;
}

/* A throwaway user namespace with uid_map = gid_map = "INSIDE OUTSIDE COUNT" (for mount_setattr). */
static int mapping_userns(unsigned long inside, unsigned long outside, unsigned long count, struct merr *e)
{
	int sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0)
		return merr_sys(e, "pipe2", "", "failed to create a pipe");
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		close(sp[0]), close(sp[1]);
		return merr_sys(e, "clone", "", "failed to create a user namespace for the ID mapping");
	}
	if (pid == 0) {
		char c;
		close(sp[1]);
		(void)!read(sp[0], &c, 1); /* until the parent is done with us */
		_exit(0);
	}
	close(sp[0]);
	char path[64], map[96];
	int r;
	snprintf(map, sizeof map, "%lu %lu %lu\n", inside, outside, count);
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
	r = write_file(path, map, e);
	if (r == 0) {
		snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
		r = write_file(path, "deny\n", e);
	}
	if (r == 0) {
		snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
		r = write_file(path, map, e);
	}
	int fd = -1;
	if (r == 0) {
		snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = merr_sys(e, "open", path, "failed to open \"%s\"", path);
	}
	close(sp[1]);
	(void)waitpid(pid, NULL, 0);
	return r < 0 ? r : fd;
}

static unsigned attrs_from_flags(unsigned long f)
{
	unsigned a = 0;
	if (f & MS_RDONLY)
		a |= MOUNT_ATTR_RDONLY;
	if (f & MS_NOSUID)
		a |= MOUNT_ATTR_NOSUID;
	if (f & MS_NODEV)
		a |= MOUNT_ATTR_NODEV;
	if (f & MS_NOEXEC)
		a |= MOUNT_ATTR_NOEXEC;
	if (f & MS_NOATIME)
		a |= MOUNT_ATTR_NOATIME;
	else if (f & MS_STRICTATIME)
		a |= MOUNT_ATTR_STRICTATIME;
	if (f & MS_NODIRATIME)
		a |= MOUNT_ATTR_NODIRATIME;
	return a;
}

static int make_fsmount(struct op *op, struct merr *e)
{
	_cleanup_close_ int fs = sys_fsopen(op->fstype, FSOPEN_CLOEXEC);
	if (fs < 0)
		return merr_sys(e, "fsopen", op->path, "failed to create a \"%s\" file system for \"%s\"", op->fstype, op->path);
	if (op->data) {
		/* DATA: comma-separated KEY or KEY=VALUE */
		char buf[1024];
		if (strlen(op->data) >= sizeof buf)
			return merr_set(e, E2BIG, "fsconfig", op->path, "options for \"%s\" are too long", op->path);
		strcpy(buf, op->data);
		for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			int r;
			if (eq) {
				*eq = 0;
				r = sys_fsconfig(fs, FSCONFIG_SET_STRING, kv, eq + 1, 0);
			} else
				r = sys_fsconfig(fs, FSCONFIG_SET_FLAG, kv, NULL, 0);
			if (r < 0)
				return merr_sys(e, "fsconfig", op->path, "failed to set option \"%s\" for \"%s\"", kv, op->path);
		}
	}
	if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return merr_sys(e, "fsconfig", op->path, "failed to create the \"%s\" file system for \"%s\"", op->fstype, op->path);
	int m = sys_fsmount(fs, FSMOUNT_CLOEXEC, attrs_from_flags(op->flags));
	if (m < 0)
		return merr_sys(e, "fsmount", op->path, "failed to mount the \"%s\" file system for \"%s\"", op->fstype, op->path);
	op->fd = m;
	return 0;
}

/* idmap_bind: a detached clone of SRC (recursive with MS_REC), ID-mapped (FROM TO COUNT for
 * uids and gids) with FLAGS' ro/nosuid/nodev/noexec, for the child to attach (op_idmap_bind). */
static int make_idmap_bind(const struct spec *s, struct op *op, struct merr *e)
{
	_cleanup_close_ int src = -1;
	if (op->src[0] == '+') {
		_cleanup_close_ int img = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (img < 0)
			return merr_sys(e, "open", s->root, "failed to open \"%s\"", s->root);
		src = res_open(img, op->src + 1, O_PATH, e);
		if (src < 0)
			return src == -ENOENT && op->create == CREATE_OPTIONAL ? (memset(e, 0, sizeof *e), 0) : src;
	} else if ((src = open(op->src, O_PATH | O_CLOEXEC)) < 0) {
		if (errno == ENOENT && op->create == CREATE_OPTIONAL)
			return 0;
		return merr_sys(e, "open", op->src, "failed to open \"%s\"", op->src);
	}
	struct stat st;
	if (fstat(src, &st) < 0)
		return merr_sys(e, "fstat", op->src, "failed to stat \"%s\"", op->src);
	unsigned long from = op->idmap_from < 0 ? (unsigned long)st.st_uid : (unsigned long)op->idmap_from;
	_cleanup_close_ int ns = mapping_userns(from, op->idmap_to, op->idmap_count, e);
	if (ns < 0)
		return ns;
	int rec = !!(op->flags & MS_REC);
	_cleanup_close_ int tree = sys_open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0));
	if (tree < 0)
		return merr_sys(e, "open_tree", op->src, "failed to clone the mount of \"%s\"", op->src);
	struct mount_attr a = { .attr_set = MOUNT_ATTR_IDMAP | attrs_from_flags(op->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)),
				.userns_fd = (unsigned)ns };
	if (sys_mount_setattr(tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &a) < 0)
		return merr_sys(e, "mount_setattr", op->src,
				"failed to create an ID-mapped mount of \"%s\" (does its file system%s support ID mapping?)", op->src,
				rec ? ", and every one mounted below it," : "");
	op->fd = take_fd(&tree);
	return 0;
}

int userns_before_clone(struct spec *s, struct merr *e)
{
	struct userns_spec *u = &s->us;
	int r;
	for (size_t i = 0; i < s->n_ops; i++) {
		if (s->ops[i].kind == OP_FSMOUNT && (r = make_fsmount(&s->ops[i], e)) < 0)
			return r;
		if (s->ops[i].kind == OP_IDMAP_BIND && (r = make_idmap_bind(s, &s->ops[i], e)) < 0)
			return r;
	}
	if (u->has_idmap_root) {
		_cleanup_close_ int ns = mapping_userns(0, u->idmap_base, u->idmap_count, e);
		if (ns < 0)
			return ns;
		_cleanup_close_ int tree = sys_open_tree(AT_FDCWD, s->root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (tree < 0)
			return merr_sys(e, "open_tree", s->root, "failed to clone the mount of \"%s\"", s->root);
		struct mount_attr a = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (unsigned)ns };
		/* Only the root mount: the kernel refuses idmapping a tree with other file systems
		 * that do not support it, and nothing below the root is ours to remap. */
		if (sys_mount_setattr(tree, "", AT_EMPTY_PATH, &a) < 0)
			return merr_sys(e, "mount_setattr", s->root,
					"failed to create an ID-mapped mount of \"%s\" (does its file system support ID mapping?)",
					s->root);
		u->root_tree_fd = take_fd(&tree);
	}
	return 0;
}

void userns_after_clone(struct spec *s)
{
	for (size_t i = 0; i < s->n_ops; i++)
		if ((s->ops[i].kind == OP_FSMOUNT || s->ops[i].kind == OP_IDMAP_BIND) && s->ops[i].fd >= 0) {
			close(s->ops[i].fd);
			s->ops[i].fd = -1;
		}
	if (s->us.root_tree_fd >= 0) {
		close(s->us.root_tree_fd);
		s->us.root_tree_fd = -1;
	}
}

/* The files of a cgroup that its owner may use to manage the subtree (as systemd-nspawn). */
static const char *const cgroup_files[] = {
	".",           "cgroup.clone_children",  "cgroup.controllers", "cgroup.events",     "cgroup.procs",
	"cgroup.stat", "cgroup.subtree_control", "cgroup.threads",     "notify_on_release", "tasks",
};

int userns_setup_child(const struct spec *s, pid_t pid, struct merr *e)
{
	const struct userns_spec *u = &s->us;
	char path[64], map[340 * 36];
	int r;
	if (u->enabled) {
		if (userns_format_map(u->uid_map, u->n_uid_map, map, sizeof map) < 0)
			return merr_set(e, E2BIG, "write", "uid_map", "uid_map is too long");
		snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
		if ((r = write_file(path, map, e)) < 0)
			return r;
		if (userns_format_map(u->gid_map, u->n_gid_map, map, sizeof map) < 0)
			return merr_set(e, E2BIG, "write", "gid_map", "gid_map is too long");
		snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
		if ((r = write_file(path, map, e)) < 0)
			return r;
	}
	if (u->has_cgroup_owner) {
		for (size_t i = 0; i < s->n_cgroups; i++) {
			_cleanup_close_ int dfd = open(s->cgroups[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0)
				return merr_sys(e, "open", s->cgroups[i], "failed to open cgroup \"%s\"", s->cgroups[i]);
			for (size_t j = 0; j < ARRAY_SIZE(cgroup_files); j++) {
				const char *f = cgroup_files[j];
				if (fchownat(dfd, j ? f : "", u->cgroup_uid, u->cgroup_gid, j ? 0 : AT_EMPTY_PATH) < 0 && errno != ENOENT)
					return merr_sys(e, "fchownat", s->cgroups[i], "failed to change the owner of \"%s/%s\"",
							s->cgroups[i], f);
			}
		}
	}
	return 0;
}

/* ---- child ---- */

int userns_attach_root(const struct spec *s, struct merr *e)
{
	if (s->us.root_tree_fd < 0)
		return 0;
	if (sys_move_mount(s->us.root_tree_fd, "", AT_FDCWD, s->root, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return merr_sys(e, "move_mount", s->root, "failed to attach the ID-mapped mount of \"%s\"", s->root);
	return 1;
}

int userns_become_root(const struct spec *s, struct merr *e)
{
	if (!s->us.enabled)
		return 0;
	if (setgroups(0, NULL) < 0)
		return merr_sys(e, "setgroups", "", "failed to drop supplementary groups in the user namespace");
	if (setresgid(0, 0, 0) < 0)
		return merr_sys(e, "setresgid", "", "failed to become group 0 of the user namespace");
	if (setresuid(0, 0, 0) < 0)
		return merr_sys(e, "setresuid", "", "failed to become user 0 of the user namespace");
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cleared by the credential change */
	return 0;
}

static long map_zero(const struct idmap_line *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].inside == 0)
			return (long)m[i].outside;
	return -1;
}

int userns_host_act_as_root(const struct spec *s, struct merr *e)
{
	long uid = map_zero(s->us.uid_map, s->us.n_uid_map), gid = map_zero(s->us.gid_map, s->us.n_gid_map);
	if (uid < 0 || gid < 0)
		return merr_set(e, EINVAL, "setfsuid", "", "the user namespace maps no root (uid_map/gid_map without inside 0)");
	(void)setfsgid((gid_t)gid);
	(void)setfsuid((uid_t)uid);
	if (setfsuid((uid_t)-1) != (int)uid || setfsgid((gid_t)-1) != (int)gid)
		return merr_set(e, EPERM, "setfsuid", "", "failed to act as the container's root (%ld:%ld)", uid, gid);
	/* A file system uid other than 0 clears the file capabilities from the effective set:
	 * raise them again (they are still permitted), so host paths stay reachable. */
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return merr_sys(e, "capget", "", "failed to read the capabilities");
	for (int i = 0; i < 2; i++)
		d[i].effective = d[i].permitted;
	if (syscall(SYS_capset, &h, d) < 0)
		return merr_sys(e, "capset", "", "failed to raise the capabilities again");
	return 0;
}

int userns_op_fsmount(int rootfd, const struct op *op, struct merr *e)
{
	if (op->fd < 0)
		return merr_set(e, EBADF, "move_mount", op->path, "no file system was prepared for \"%s\"", op->path);
	_cleanup_close_ int tfd = res_mkdir_p(rootfd, op->path, 0755, e);
	if (tfd < 0)
		return tfd;
	if (sys_move_mount(op->fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return merr_sys(e, "move_mount", op->path, "failed to attach the \"%s\" file system on \"%s\"", op->fstype, op->path);
	return 0;
}
