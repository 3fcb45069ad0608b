/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* File tree copies between directory fds for machinactl copy-to / copy-from (see copy.h). */
#include "copy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_DEPTH 2048

unsigned copy_map_id(const struct copy_ids *m, unsigned id)
{
	if (!m || !m->n)
		return id;
	for (size_t i = 0; i < m->n; i++)
		if (id >= m->r[i].from && id - m->r[i].from < m->r[i].count)
			return m->r[i].to + (id - m->r[i].from);
	return m->fallback;
}

static char *join(const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, "%s%s%s", a, (*a && a[strlen(a) - 1] == '/') ? "" : "/", b) < 0)
		return NULL;
	return s;
}

static void freestr(char **p)
{
	free(*p);
}
#define _cleanup_str_ __attribute__((cleanup(freestr)))

/* Failures to set an xattr the target does not take (file system, namespace, EPERM for
 * trusted.* …) are skipped; running out of space is not. */
static int xattr_fatal(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EIO;
}

static int copy_xattrs(int sfd, int dfd, const char *dpath, struct merr *e)
{
	ssize_t n = flistxattr(sfd, NULL, 0);
	if (n <= 0)
		return 0; /* none, or not supported by the source */
	_cleanup_free_ char *names = malloc((size_t)n + 1);
	if (!names)
		return merr_set(e, ENOMEM, "", "", "out of memory");
	n = flistxattr(sfd, names, (size_t)n);
	if (n < 0)
		return 0;
	for (char *k = names; k < names + n; k += strlen(k) + 1) {
		ssize_t vn = fgetxattr(sfd, k, NULL, 0);
		if (vn < 0)
			continue;
		_cleanup_free_ char *v = malloc((size_t)vn + 1);
		if (!v)
			return merr_set(e, ENOMEM, "", "", "out of memory");
		vn = fgetxattr(sfd, k, v, (size_t)vn);
		if (vn < 0)
			continue;
		if (fsetxattr(dfd, k, v, (size_t)vn, 0) < 0 && xattr_fatal(errno))
			return merr_sys(e, "fsetxattr", dpath, "failed to set xattr \"%s\" on \"%s\"", k, dpath);
	}
	return 0;
}

static int copy_data(int sfd, int dfd, const char *spath, const char *dpath, struct merr *e)
{
	for (;;) {
		ssize_t n = copy_file_range(sfd, NULL, dfd, NULL, 1 << 30, 0);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS || errno == EBADF)
			break;
		return merr_sys(e, "copy_file_range", dpath, "failed to copy \"%s\" to \"%s\"", spath, dpath);
	}
	char buf[65536];
	for (;;) {
		ssize_t n = read(sfd, buf, sizeof buf);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return merr_sys(e, "read", spath, "failed to read \"%s\"", spath);
		}
		if (write_all(dfd, buf, (size_t)n) < 0)
			return merr_sys(e, "write", dpath, "failed to write \"%s\"", dpath);
	}
}

/* Owner, xattrs, mode, times of an open file or directory, in the order that keeps them:
 * chown clears setuid bits and file capabilities, so it goes first. */
static int copy_meta_fd(int sfd, int dfd, const struct stat *st, const struct copy_ids *uids, const struct copy_ids *gids,
			const char *dpath, struct merr *e)
{
	if (fchown(dfd, copy_map_id(uids, st->st_uid), copy_map_id(gids, st->st_gid)) < 0)
		return merr_sys(e, "fchown", dpath, "failed to change the owner of \"%s\"", dpath);
	int r = copy_xattrs(sfd, dfd, dpath, e);
	if (r < 0)
		return r;
	if (fchmod(dfd, st->st_mode & 07777) < 0)
		return merr_sys(e, "fchmod", dpath, "failed to change the mode of \"%s\"", dpath);
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (futimens(dfd, ts) < 0)
		return merr_sys(e, "futimens", dpath, "failed to set the times of \"%s\"", dpath);
	return 0;
}

static int copy_node(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct copy_ids *uids,
		     const struct copy_ids *gids, const char *spath, const char *dpath, int depth, struct merr *e);

/* Every entry of the open directory SFD into the open directory DFD (copy_node each). */
static int copy_entries(int sfd, int dfd, const struct copy_ids *uids, const struct copy_ids *gids, const char *spath, const char *dpath,
			int depth, struct merr *e)
{
	int lfd = dup(sfd);
	if (lfd < 0)
		return merr_sys(e, "dup", spath, "failed to read \"%s\"", spath);
	DIR *d = fdopendir(lfd);
	if (!d) {
		close(lfd);
		return merr_sys(e, "fdopendir", spath, "failed to read \"%s\"", spath);
	}
	rewinddir(d);
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				r = merr_sys(e, "readdir", spath, "failed to read \"%s\"", spath);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_str_ char *cs = join(spath, de->d_name);
		_cleanup_str_ char *cd = join(dpath, de->d_name);
		if (!cs || !cd) {
			r = merr_set(e, ENOMEM, "", "", "out of memory");
			break;
		}
		r = copy_node(sfd, de->d_name, dfd, de->d_name, uids, gids, cs, cd, depth + 1, e);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int copy_dir(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct stat *st, const struct copy_ids *uids,
		    const struct copy_ids *gids, const char *spath, const char *dpath, int depth, struct merr *e)
{
	_cleanup_close_ int sfd = openat(srcdir, srcname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return merr_sys(e, "openat", spath, "failed to open \"%s\"", spath);
	struct stat st2;
	if (fstat(sfd, &st2) < 0 || st2.st_ino != st->st_ino || st2.st_dev != st->st_dev)
		return merr_set(e, EAGAIN, "openat", spath, "\"%s\" changed while copying it", spath);
	if (mkdirat(dstdir, dstname, 0700) < 0)
		return merr_sys(e, "mkdirat", dpath, "failed to create \"%s\"", dpath);
	_cleanup_close_ int dfd = openat(dstdir, dstname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return merr_sys(e, "openat", dpath, "failed to open \"%s\"", dpath);
	int r = copy_entries(sfd, dfd, uids, gids, spath, dpath, depth, e);
	if (r < 0)
		return r;
	return copy_meta_fd(sfd, dfd, st, uids, gids, dpath, e);
}

static int copy_file(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct stat *st, const struct copy_ids *uids,
		     const struct copy_ids *gids, const char *spath, const char *dpath, struct merr *e)
{
	/* O_NONBLOCK: should the name have become a fifo since the fstatat, do not hang on it */
	_cleanup_close_ int sfd = openat(srcdir, srcname, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (sfd < 0)
		return merr_sys(e, "openat", spath, "failed to open \"%s\"", spath);
	struct stat st2;
	if (fstat(sfd, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino || st2.st_dev != st->st_dev)
		return merr_set(e, EAGAIN, "openat", spath, "\"%s\" changed while copying it", spath);
	int fl = fcntl(sfd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(sfd, F_SETFL, fl & ~O_NONBLOCK);
	_cleanup_close_ int dfd = openat(dstdir, dstname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dfd < 0)
		return merr_sys(e, "openat", dpath, "failed to create \"%s\"", dpath);
	int r = copy_data(sfd, dfd, spath, dpath, e);
	if (r < 0)
		return r;
	return copy_meta_fd(sfd, dfd, st, uids, gids, dpath, e);
}

static int copy_node(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct copy_ids *uids,
		     const struct copy_ids *gids, const char *spath, const char *dpath, int depth, struct merr *e)
{
	if (depth > MAX_DEPTH)
		return merr_set(e, ELOOP, "", spath, "\"%s\" is nested too deeply", spath);
	struct stat st;
	if (fstatat(srcdir, srcname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return merr_sys(e, "fstatat", spath, "failed to stat \"%s\"", spath);
	uid_t uid = copy_map_id(uids, st.st_uid);
	gid_t gid = copy_map_id(gids, st.st_gid);
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: return copy_dir(srcdir, srcname, dstdir, dstname, &st, uids, gids, spath, dpath, depth, e);
	case S_IFREG: return copy_file(srcdir, srcname, dstdir, dstname, &st, uids, gids, spath, dpath, e);
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(srcdir, srcname, target, sizeof target - 1);
		if (n < 0)
			return merr_sys(e, "readlinkat", spath, "failed to read the symlink \"%s\"", spath);
		target[n] = 0;
		if (symlinkat(target, dstdir, dstname) < 0)
			return merr_sys(e, "symlinkat", dpath, "failed to create the symlink \"%s\"", dpath);
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK: {
		mode_t old = umask(0);
		int r = mknodat(dstdir, dstname, st.st_mode & (S_IFMT | 0777), S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0);
		umask(old);
		if (r < 0)
			return merr_sys(e, "mknodat", dpath, "failed to create \"%s\"", dpath);
		break;
	}
	default: return merr_set(e, EINVAL, "", spath, "\"%s\" has an unknown file type", spath);
	}
	/* symlinks and special files: by name, never following (the name is ours, just created) */
	if (fchownat(dstdir, dstname, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return merr_sys(e, "fchownat", dpath, "failed to change the owner of \"%s\"", dpath);
	if ((st.st_mode & S_IFMT) != S_IFLNK && (st.st_mode & 07000)) {
		/* set-id bits of a special file (chown cleared them): fchmodat2 without following */
		if (syscall(452 /* fchmodat2 */, dstdir, dstname, st.st_mode & 07777, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOSYS)
			return merr_sys(e, "fchmodat2", dpath, "failed to change the mode of \"%s\"", dpath);
	}
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	if (utimensat(dstdir, dstname, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return merr_sys(e, "utimensat", dpath, "failed to set the times of \"%s\"", dpath);
	return 0;
}

int copy_tree(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct copy_ids *uids, const struct copy_ids *gids,
	      const char *spath, const char *dpath, struct merr *e)
{
	return copy_node(srcdir, srcname, dstdir, dstname, uids, gids, spath, dpath, 0, e);
}

int copy_contents(int srcfd, int dstfd, const char *spath, const char *dpath, struct merr *e)
{
	return copy_entries(srcfd, dstfd, NULL, NULL, spath, dpath, 0, e);
}

static int remove_node(int dir, const char *name, int depth, struct merr *e)
{
	if (unlinkat(dir, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return merr_sys(e, "unlinkat", name, "failed to remove \"%s\"", name);
	if (depth > MAX_DEPTH)
		return merr_set(e, ELOOP, "", name, "\"%s\" is nested too deeply", name);
	_cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "openat", name, "failed to open \"%s\"", name);
	int lfd = dup(fd);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		return merr_sys(e, "fdopendir", name, "failed to read \"%s\"", name);
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = remove_node(fd, de->d_name, depth + 1, e);
	closedir(d);
	if (r < 0)
		return r;
	if (unlinkat(dir, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return merr_sys(e, "unlinkat", name, "failed to remove \"%s\"", name);
	return 0;
}

int copy_remove(int dir, const char *name, struct merr *e)
{
	return remove_node(dir, name, 0, e);
}

int copy_replace(int srcdir, const char *srcname, int dstdir, const char *dstname, int force, const struct copy_ids *uids,
		 const struct copy_ids *gids, const char *spath, const char *dpath, struct merr *e)
{
	struct stat st;
	if (fstatat(dstdir, dstname, &st, AT_SYMLINK_NOFOLLOW) == 0 && !force)
		return merr_set(e, EEXIST, "", dpath, "\"%s\" exists (--force replaces it)", dpath);
	char tmp[64];
	unsigned rnd = 0;
	_cleanup_close_ int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (ufd < 0 || read(ufd, &rnd, sizeof rnd) != (ssize_t)sizeof rnd)
		rnd = (unsigned)getpid() ^ (unsigned)time(NULL);
	snprintf(tmp, sizeof tmp, ".#machina-copy%08x", rnd);
	int r = copy_tree(srcdir, srcname, dstdir, tmp, uids, gids, spath, dpath, e);
	if (r < 0) {
		struct merr ignored = { 0 };
		(void)copy_remove(dstdir, tmp, &ignored);
		return r;
	}
	if (renameat2(dstdir, tmp, dstdir, dstname, RENAME_NOREPLACE) == 0)
		return 0;
	int err = errno;
	if (err == EEXIST && force) {
		if (renameat2(dstdir, tmp, dstdir, dstname, RENAME_EXCHANGE) == 0)
			return copy_remove(dstdir, tmp, e); /* now the old target */
		err = errno;
	}
	struct merr ignored = { 0 };
	(void)copy_remove(dstdir, tmp, &ignored);
	errno = err;
	if (err == EEXIST)
		return merr_set(e, EEXIST, "renameat2", dpath, "\"%s\" exists (--force replaces it)", dpath);
	return merr_sys(e, "renameat2", dpath, "failed to move the copy into place at \"%s\"", dpath);
}
