/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "binds.h"
#include "copy.h"
#include "resolve.h"
#include "util.h"

#define PROPAGATION (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)
#define BIND_REMOUNTABLE (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

const char *flags_str(unsigned long flags, char *buf, size_t n)
{
	static const struct {
		unsigned long f;
		const char *s;
	} t[] = { { MS_RDONLY, "ro" },         { MS_NOSUID, "nosuid" },           { MS_NODEV, "nodev" },
		  { MS_NOEXEC, "noexec" },     { MS_NOATIME, "noatime" },         { MS_NODIRATIME, "nodiratime" },
		  { MS_RELATIME, "relatime" }, { MS_STRICTATIME, "strictatime" }, { MS_BIND, "bind" },
		  { MS_REC, "rec" },           { MS_PRIVATE, "private" },         { MS_SLAVE, "slave" },
		  { MS_SHARED, "shared" } };
	size_t pos = 0;
	buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (flags & t[i].f)
			buf_printf(buf, n, &pos, "%s%s", pos ? "," : "", t[i].s);
	if (!pos)
		buf_printf(buf, n, &pos, "rw");
	return buf;
}

int remount_bind(int fd, const char *what, unsigned long flags, struct merr *e)
{
	char p[32], fs[128];
	struct statvfs sv;
	unsigned long keep = 0;
	if (fstatvfs(fd, &sv) == 0) {
		if (sv.f_flag & ST_NOSUID)
			keep |= MS_NOSUID;
		if (sv.f_flag & ST_NODEV)
			keep |= MS_NODEV;
		if (sv.f_flag & ST_NOEXEC)
			keep |= MS_NOEXEC;
		if (!(flags & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME))) {
			if (sv.f_flag & ST_NOATIME)
				keep |= MS_NOATIME;
			if (sv.f_flag & ST_NODIRATIME)
				keep |= MS_NODIRATIME;
			if (sv.f_flag & ST_RELATIME)
				keep |= MS_RELATIME;
		}
	}
	unsigned long f = MS_REMOUNT | MS_BIND | keep | (flags & BIND_REMOUNTABLE);
	if (mount(NULL, fd_path(fd, p), NULL, f, NULL) < 0)
		return merr_sys(e, "mount", what, "failed to remount \"%s\" (%s)", what,
				flags_str(flags & BIND_REMOUNTABLE, fs, sizeof fs));
	return 0;
}

/* Target of a mount according to CREATE. Returns fd or -errno; *skip set for a missing optional one. */
static int mount_target(int rootfd, const struct op *op, int *skip, struct merr *e)
{
	char base[256];
	int fd;
	switch (op->create) {
	case CREATE_DIR:
	case CREATE_COPYUP: return res_mkdir_p(rootfd, op->path, 0755, e);
	case CREATE_FILE:
		fd = res_open(rootfd, op->path, O_PATH, e);
		if (fd >= 0 || fd != -ENOENT)
			return fd;
		{
			_cleanup_close_ int pfd = res_parent(rootfd, op->path, 1, base, e);
			if (pfd < 0)
				return pfd;
			_cleanup_close_ int nfd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (nfd < 0)
				return merr_sys(e, "openat", op->path, "failed to create mount point \"%s\"", op->path);
		}
		return res_open(rootfd, op->path, O_PATH, e);
	case CREATE_OPTIONAL:
		fd = res_open(rootfd, op->path, O_PATH, e);
		if (fd == -ENOENT)
			*skip = 1;
		return fd;
	case CREATE_AUTO: /* op_mount has chosen dir or file by the source's type */
	case CREATE_NONE:
	default: return res_open(rootfd, op->path, O_PATH, e);
	}
}

/* mount_target for a bind of a source of type st: CREATE_AUTO becomes a directory or a file. */
static int bind_target(int rootfd, const struct op *op, const struct stat *st, int *skip, struct merr *e)
{
	struct op o = *op;
	if (o.create == CREATE_AUTO)
		o.create = S_ISDIR(st->st_mode) ? CREATE_DIR : CREATE_FILE;
	return mount_target(rootfd, &o, skip, e);
}

/* CREATE copyup (runc's tmpcopyup): the directory TFD (resolved in the root) is opened before
 * the mount, so that it still reads what the image has there once the new file system covers it;
 * the new mount is mounted writable, filled from it (never following a symlink: copy.c) and then
 * made read-only when FLAGS ask for it. */
static int mount_copyup(int rootfd, int tfd, const struct op *op, struct merr *e)
{
	char p[32];
	_cleanup_close_ int old = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (old < 0)
		return merr_sys(e, "openat", op->path, "failed to open \"%s\" to copy it into the new mount", op->path);
	unsigned long flags = op->flags & ~PROPAGATION;
	if (mount(op->src, fd_path(tfd, p), op->fstype, flags & ~MS_RDONLY, op->data) < 0)
		return merr_sys(e, "mount", op->path, "failed to mount \"%s\" on \"%s\"", op->src, op->path);
	_cleanup_close_ int top = res_open(rootfd, op->path, O_RDONLY | O_DIRECTORY, e);
	if (top < 0)
		return top;
	int r = copy_contents(old, top, op->path, op->path, e);
	if (r < 0)
		return r;
	if ((flags & MS_RDONLY) && mount(NULL, fd_path(top, p), NULL, MS_REMOUNT | flags, op->data) < 0)
		return merr_sys(e, "mount", op->path, "failed to remount \"%s\" read-only", op->path);
	return 0;
}

static int op_mount(int rootfd, const struct op *op, struct merr *e)
{
	char p[32], fs[128];
	int bind = !!(op->flags & MS_BIND);
	struct stat st;
	_cleanup_close_ int sfd = -1; /* a "+CPATH" source, resolved in the image */
	char sp[32];
	const char *src = op->src;
	if (bind && op->src[0] == '+') {
		sfd = binds_open_source(rootfd, op->src, e);
		if (sfd == -ENOENT && op->create == CREATE_OPTIONAL)
			return 0;
		if (sfd < 0)
			return sfd;
		src = fd_path(sfd, sp);
	}
	if (bind && stat(src, &st) < 0) {
		if (errno == ENOENT && op->create == CREATE_OPTIONAL)
			return 0;
		return merr_sys(e, "stat", op->src, "failed to bind mount \"%s\" on \"%s\"", op->src, op->path);
	}
	int skip = 0;
	_cleanup_close_ int tfd = bind_target(rootfd, op, &st, &skip, e);
	if (skip)
		return 0;
	if (tfd < 0)
		return tfd;
	fd_path(tfd, p);
	if (bind) {
		if (mount(src, p, NULL, MS_BIND | (op->flags & MS_REC), NULL) < 0)
			return merr_sys(e, "mount", op->path, "failed to bind mount \"%s\" on \"%s\"", op->src, op->path);
	} else if (op->create == CREATE_COPYUP) {
		int r = mount_copyup(rootfd, tfd, op, e);
		if (r < 0)
			return r;
	} else {
		if (mount(op->src, p, op->fstype, op->flags & ~PROPAGATION, op->data) < 0) {
			if (errno == ENOENT && op->create == CREATE_OPTIONAL)
				return 0;
			return merr_sys(e, "mount", op->path, "failed to mount \"%s\" on \"%s\"", op->src, op->path);
		}
	}
	/* From here on act on the new mount, not the directory underneath. */
	if ((bind && (op->flags & BIND_REMOUNTABLE)) || (op->flags & PROPAGATION)) {
		_cleanup_close_ int mfd = res_open(rootfd, op->path, O_PATH, e);
		if (mfd < 0)
			return mfd;
		if (bind && (op->flags & BIND_REMOUNTABLE)) {
			int r = remount_bind(mfd, op->path, op->flags, e);
			if (r == 0 && (op->flags & MS_REC))
				r = binds_setattr_recursive(mfd, op->path, op->flags, e);
			if (r < 0)
				return r;
		}
		if (op->flags & PROPAGATION) {
			if (mount(NULL, fd_path(mfd, p), NULL, (op->flags & (PROPAGATION | MS_REC)), NULL) < 0)
				return merr_sys(e, "mount", op->path, "failed to set propagation (%s) of \"%s\"",
						flags_str(op->flags & (PROPAGATION | MS_REC), fs, sizeof fs), op->path);
		}
	}
	return 0;
}

/* idmap_bind: attach the tree the supervisor prepared (userns_before_clone) at CPATH. */
static int op_idmap_bind(int rootfd, const struct op *op, struct merr *e)
{
	struct stat st;
	if (op->fd < 0) {
		if (op->create == CREATE_OPTIONAL)
			return 0; /* the source was missing */
		return merr_set(e, EBADF, "move_mount", op->path, "no ID-mapped mount was prepared for \"%s\"", op->path);
	}
	if (fstat(op->fd, &st) < 0)
		return merr_sys(e, "fstat", op->src, "failed to bind mount \"%s\" on \"%s\"", op->src, op->path);
	int skip = 0;
	_cleanup_close_ int tfd = bind_target(rootfd, op, &st, &skip, e);
	if (skip)
		return 0;
	if (tfd < 0)
		return tfd;
	if (syscall(SYS_move_mount, op->fd, "", tfd, "",
		    0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */ | 0x00000040 /* MOVE_MOUNT_T_EMPTY_PATH */) < 0)
		return merr_sys(e, "move_mount", op->path, "failed to attach the ID-mapped bind mount of \"%s\" on \"%s\"", op->src,
				op->path);
	return 0;
}

static int op_rebind(int rootfd, const struct op *op, struct merr *e)
{
	char p[32];
	int fd0 = res_open(rootfd, op->path, O_PATH, e);
	if (fd0 == -ENOENT && op->optional)
		return 0;
	if (fd0 < 0)
		return fd0;
	_cleanup_close_ int fd = fd0;
	if (mount(fd_path(fd, p), p, NULL, MS_BIND | MS_REC, NULL) < 0)
		return merr_sys(e, "mount", op->path, "failed to bind mount \"%s\" on itself", op->path);
	_cleanup_close_ int mfd = res_open(rootfd, op->path, O_PATH, e);
	if (mfd < 0)
		return mfd;
	return remount_bind(mfd, op->path, op->flags, e);
}

static int op_mknod(int rootfd, const struct op *op, struct merr *e)
{
	char base[256];
	_cleanup_close_ int pfd = res_parent(rootfd, op->path, 1, base, e);
	if (pfd < 0)
		return pfd;
	if (mknodat(pfd, base, op->mode, makedev(op->major, op->minor)) < 0) {
		struct stat st;
		if (errno == EEXIST && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == (op->mode & S_IFMT))
			return 0;
		return merr_sys(e, "mknod", op->path, "failed to create device node \"%s\"", op->path);
	}
	if (fchmodat(pfd, base, op->mode & 07777, 0) < 0)
		return merr_sys(e, "fchmodat", op->path, "failed to set the mode of \"%s\"", op->path);
	return 0;
}

static int op_symlink(int rootfd, const struct op *op, struct merr *e)
{
	char base[256];
	_cleanup_close_ int pfd = res_parent(rootfd, op->path, 1, base, e);
	if (pfd < 0)
		return pfd;
	if (symlinkat(op->src, pfd, base) == 0)
		return 0;
	if (errno != EEXIST)
		return merr_sys(e, "symlink", op->path, "failed to create symlink \"%s\" -> \"%s\"", op->path, op->src);
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return merr_sys(e, "fstatat", op->path, "failed to create symlink \"%s\"", op->path);
	if (S_ISDIR(st.st_mode))
		return merr_set(e, EISDIR, "symlink", op->path, "failed to create symlink \"%s\" -> \"%s\"", op->path, op->src);
	if (unlinkat(pfd, base, 0) < 0)
		return merr_sys(e, "unlink", op->path, "failed to replace \"%s\" with a symlink", op->path);
	if (symlinkat(op->src, pfd, base) < 0)
		return merr_sys(e, "symlink", op->path, "failed to create symlink \"%s\" -> \"%s\"", op->path, op->src);
	return 0;
}

/* Open (creating with MODE) the regular file BASE in PFD for writing, without following a
 * symlink as last component (ELOOP) and without blocking on a FIFO (ENXIO). Not truncated. */
static int open_reg_target(int pfd, const char *base, mode_t mode, const char *path, const char *what, struct stat *st, struct merr *e)
{
	_cleanup_close_ int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, mode);
	if (fd < 0)
		return merr_sys(e, "openat", path, "failed to %s \"%s\"", what, path);
	if (fstat(fd, st) < 0)
		return merr_sys(e, "fstat", path, "failed to %s \"%s\"", what, path);
	if (!S_ISREG(st->st_mode))
		return merr_set(e, EINVAL, "openat", path, "failed to %s \"%s\": not a regular file", what, path);
	return take_fd(&fd);
}

static int op_write(int rootfd, const struct op *op, struct merr *e)
{
	char base[256];
	struct stat st;
	_cleanup_close_ int pfd = res_parent(rootfd, op->path, 1, base, e);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int fd = open_reg_target(pfd, base, op->mode, op->path, "write", &st, e);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, 0) < 0)
		return merr_sys(e, "ftruncate", op->path, "failed to write \"%s\"", op->path);
	int r = write_all(fd, op->data, strlen(op->data));
	if (r < 0)
		return merr_set(e, -r, "write", op->path, "failed to write \"%s\"", op->path);
	if (fchmod(fd, op->mode) < 0)
		return merr_sys(e, "fchmod", op->path, "failed to set the mode of \"%s\"", op->path);
	return 0;
}

/* Copy everything from in to out (both at their file offsets): copy_file_range, then
 * sendfile, then read/write. A method that reports 0 bytes before anything was copied is
 * not trusted (files in /proc look empty to it) and the next one is tried. 0 or -errno, with
 * *sc naming the syscall that failed. */
int copy_fd_data(int in, int out, const char **sc)
{
	enum { CFR, SENDFILE, RW } how = CFR;
	int copied = 0;
	static char buf[65536];
	for (;;) {
		ssize_t n;
		*sc = how == CFR ? "copy_file_range" : how == SENDFILE ? "sendfile" : "read";
		if (how == CFR) {
			n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
			if ((n < 0 && errno != EINTR) || (n == 0 && !copied)) {
				if (n < 0 && errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
				    errno != EBADF && errno != EPERM)
					return -errno;
				how = SENDFILE;
				continue;
			}
		} else if (how == SENDFILE) {
			n = sendfile(out, in, NULL, 1u << 30);
			if ((n < 0 && errno != EINTR) || (n == 0 && !copied)) {
				if (n < 0 && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
					return -errno;
				how = RW;
				continue;
			}
		} else {
			n = read(in, buf, sizeof buf);
			if (n > 0) {
				int r = write_all(out, buf, (size_t)n);
				if (r < 0) {
					*sc = "write";
					return r;
				}
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		copied = 1;
	}
}

/* An AF_UNIX stream socket at PATH: connect, shut down our sending side, and hand back the fd to
 * read the data from until EOF (systemd's READ_FULL_FILE_CONNECT_SOCKET, for credentials). */
static int connect_stream(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return errno = ENAMETOOLONG, -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || shutdown(fd, SHUT_WR) < 0) {
		int saved = errno;
		close(fd);
		return errno = saved, -1;
	}
	return fd;
}

static int op_copy(int rootfd, const struct op *op, struct merr *e)
{
	char base[256];
	struct stat sst, st;
	/* a host path chosen by the caller: symlinks on the host side are followed */
	_cleanup_close_ int in = open(op->src, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (in < 0 && errno == ENXIO) { /* a socket: the data is what a connection to it sends */
		in = connect_stream(op->src);
		if (in < 0)
			return merr_sys(e, "connect", op->src, "failed to connect to \"%s\" to copy from it to \"%s\"", op->src, op->path);
	}
	if (in < 0)
		return merr_sys(e, "open", op->src, "failed to open \"%s\" to copy it to \"%s\"", op->src, op->path);
	if (fstat(in, &sst) < 0)
		return merr_sys(e, "fstat", op->src, "failed to copy \"%s\"", op->src);
	if (!S_ISREG(sst.st_mode) && !S_ISSOCK(sst.st_mode))
		return merr_set(e, EINVAL, "open", op->src, "failed to copy \"%s\": not a regular file", op->src);
	_cleanup_close_ int pfd = res_parent(rootfd, op->path, 1, base, e);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int fd = open_reg_target(pfd, base, op->mode, op->path, "copy to", &st, e);
	if (fd < 0)
		return fd;
	if (st.st_dev == sst.st_dev && st.st_ino == sst.st_ino)
		return merr_set(e, EINVAL, "openat", op->path, "failed to copy \"%s\" to \"%s\": the same file", op->src, op->path);
	if (ftruncate(fd, 0) < 0)
		return merr_sys(e, "ftruncate", op->path, "failed to copy to \"%s\"", op->path);
	const char *sc = "";
	int r = copy_fd_data(in, fd, &sc);
	if (r < 0)
		return merr_set(e, -r, sc, op->path, "failed to copy \"%s\" to \"%s\"", op->src, op->path);
	if (fchmod(fd, op->mode) < 0)
		return merr_sys(e, "fchmod", op->path, "failed to set the mode of \"%s\"", op->path);
	return 0;
}

static int op_remove(int rootfd, const struct op *op, struct merr *e)
{
	char base[256];
	int pfd0 = res_parent(rootfd, op->path, 0, base, e);
	if (pfd0 == -ENOENT)
		return 0; /* missing parent: nothing to remove */
	if (pfd0 < 0)
		return pfd0;
	_cleanup_close_ int pfd = pfd0;
	if (unlinkat(pfd, base, 0) == 0 || errno == ENOENT)
		return 0;
	return merr_sys(e, "unlinkat", op->path, "failed to remove \"%s\"", op->path);
}

static int op_mask(int rootfd, const struct op *op, struct merr *e)
{
	char p[32], sp[32], src[64];
	int fd0 = res_open(rootfd, op->path, O_PATH, e);
	if (fd0 == -ENOENT)
		return 0;
	if (fd0 < 0)
		return fd0;
	_cleanup_close_ int fd = fd0;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return merr_sys(e, "fstat", op->path, "failed to mask \"%s\"", op->path);
	if (S_ISDIR(st.st_mode)) {
		if (mount("tmpfs", fd_path(fd, p), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=000") < 0)
			return merr_sys(e, "mount", op->path, "failed to mask \"%s\" with a tmpfs", op->path);
		return 0;
	}
	const char *kind = S_ISREG(st.st_mode)    ? "reg"
			   : S_ISCHR(st.st_mode)  ? "chr"
			   : S_ISBLK(st.st_mode)  ? "blk"
			   : S_ISFIFO(st.st_mode) ? "fifo"
			   : S_ISSOCK(st.st_mode) ? "sock"
						  : NULL;
	if (!kind)
		return merr_set(e, EINVAL, "mask", op->path, "failed to mask \"%s\": unsupported file type", op->path);
	snprintf(src, sizeof src, "/run/host/inaccessible/%s", kind);
	_cleanup_close_ int sfd = res_open(rootfd, src, O_PATH, e);
	if (sfd < 0)
		return sfd;
	if (mount(fd_path(sfd, sp), fd_path(fd, p), NULL, MS_BIND, NULL) < 0)
		return merr_sys(e, "mount", op->path, "failed to mask \"%s\" with \"%s\"", op->path, src);
	_cleanup_close_ int mfd = res_open(rootfd, op->path, O_PATH, e);
	if (mfd < 0)
		return mfd;
	return remount_bind(mfd, op->path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, e);
}

int op_run(int rootfd, const struct op *op, struct merr *e)
{
	switch (op->kind) {
	case OP_MOUNT: return op_mount(rootfd, op, e);
	case OP_REBIND: return op_rebind(rootfd, op, e);
	case OP_MKDIR: {
		int fd = res_mkdir_p(rootfd, op->path, op->mode, e);
		if (fd < 0)
			return fd;
		close(fd);
		return 0;
	}
	case OP_MKNOD: return op_mknod(rootfd, op, e);
	case OP_SYMLINK: return op_symlink(rootfd, op, e);
	case OP_WRITE: return op_write(rootfd, op, e);
	case OP_MASK: return op_mask(rootfd, op, e);
	case OP_COPY: return op_copy(rootfd, op, e);
	case OP_REMOVE: return op_remove(rootfd, op, e);
	case OP_CGROUPNS:
		if (unshare(CLONE_NEWCGROUP) < 0)
			return merr_sys(e, "unshare", "", "failed to create a cgroup namespace");
		return 0;
	case OP_NOTIFY: return 0; /* after pivot_root, see child.c */
	case OP_FSMOUNT: return userns_op_fsmount(rootfd, op, e);
	case OP_OVERLAY: return binds_op_overlay(rootfd, op, e);
	case OP_IDMAP_BIND: return op_idmap_bind(rootfd, op, e);
	}
	return merr_set(e, EINVAL, "", "", "unknown operation %d", (int)op->kind);
}

int pivot_to(int rootfd, const char *root, struct merr *e)
{
	if (fchdir(rootfd) < 0)
		return merr_sys(e, "fchdir", root, "failed to change directory to \"%s\"", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return merr_sys(e, "pivot_root", root, "failed to pivot_root to \"%s\"", root);
	if (umount2(".", MNT_DETACH) < 0)
		return merr_sys(e, "umount2", "/", "failed to detach the old root");
	if (chdir("/") < 0)
		return merr_sys(e, "chdir", "/", "failed to change directory to \"/\"");
	return 0;
}
