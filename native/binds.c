/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "binds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "resolve.h"
#include "util.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
struct mount_attr {
	unsigned long long attr_set, attr_clr, propagation, userns_fd;
};
#endif

static int g_imgfd = -1;

void binds_set_image_fd(int fd)
{
	g_imgfd = fd;
}

static int sys_open_tree(int dfd, const char *path, unsigned flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}

static int sys_move_mount(int from, const char *fpath, int to, const char *tpath, unsigned flags)
{
	return (int)syscall(SYS_move_mount, from, fpath, to, tpath, flags);
}

/* pivot_root_dir: NEW becomes the root mount at s->root; the old root goes to NEW/OLD (or away). */
static int pivot_dir(const struct spec *s, int *rootfd, struct merr *e)
{
	const unsigned clone = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH;
	_cleanup_close_ int nfd = res_open(*rootfd, s->pivot_new, O_PATH | O_DIRECTORY, e);
	if (nfd < 0)
		return nfd;
	_cleanup_close_ int newtree = sys_open_tree(nfd, "", clone);
	if (newtree < 0)
		return merr_sys(e, "open_tree", s->pivot_new, "failed to take the new root \"%s\"", s->pivot_new);
	_cleanup_close_ int oldtree = -1;
	if (s->pivot_old) {
		oldtree = sys_open_tree(*rootfd, "", clone);
		if (oldtree < 0)
			return merr_sys(e, "open_tree", "/", "failed to take the old root");
	}
	if (umount2(s->root, MNT_DETACH) < 0)
		return merr_sys(e, "umount2", s->root, "failed to detach \"%s\"", s->root);
	if (sys_move_mount(newtree, "", AT_FDCWD, s->root, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return merr_sys(e, "move_mount", s->pivot_new, "failed to make \"%s\" the root", s->pivot_new);
	int fd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "open", s->root, "failed to open \"%s\"", s->root);
	close(*rootfd);
	*rootfd = fd;
	if (s->pivot_old) {
		_cleanup_close_ int tfd = res_mkdir_p(*rootfd, s->pivot_old, 0755, e);
		if (tfd < 0)
			return tfd;
		if (sys_move_mount(oldtree, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return merr_sys(e, "move_mount", s->pivot_old, "failed to move the old root to \"%s\"", s->pivot_old);
	}
	return 0;
}

int binds_prepare_root(const struct spec *s, int *rootfd, struct merr *e)
{
	char data[256];
	if (s->pivot_new) {
		int r = pivot_dir(s, rootfd, e);
		if (r < 0)
			return r;
	}
	if (s->root_mode == ROOT_BIND) {
		g_imgfd = -1; /* "+" sources resolve in the root itself */
		return 0;
	}
	/* The image stays open (close-on-exec) as the lower layer and for "+" sources. */
	g_imgfd = fcntl(*rootfd, F_DUPFD_CLOEXEC, 3);
	if (g_imgfd < 0)
		return merr_sys(e, "fcntl", s->root, "failed to keep the image open");
	if (mount("tmpfs", s->root, "tmpfs", MS_STRICTATIME, s->root_data) < 0)
		return merr_sys(e, "mount", "/", "failed to mount a tmpfs as the container's root");
	_cleanup_close_ int tfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return merr_sys(e, "open", s->root, "failed to open the new root");
	if (s->root_mode == ROOT_OVERLAY) {
		if (mkdirat(tfd, "upper", 0755) < 0 || mkdirat(tfd, "work", 0700) < 0)
			return merr_sys(e, "mkdirat", "/", "failed to create the overlay's upper and work directories");
		snprintf(data, sizeof data, "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d/upper,workdir=/proc/self/fd/%d/work",
			 g_imgfd, tfd, tfd);
		if (mount("overlay", s->root, "overlay", 0, data) < 0)
			return merr_sys(e, "mount", "/", "failed to mount an overlay over the image as the container's root");
		close(tfd);
		tfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (tfd < 0)
			return merr_sys(e, "open", s->root, "failed to open the new root");
	}
	close(*rootfd);
	*rootfd = take_fd(&tfd);
	return 0;
}

int binds_open_source(int rootfd, const char *src, struct merr *e)
{
	if (src[0] == '+')
		return res_open(g_imgfd >= 0 ? g_imgfd : rootfd, src + 1, O_PATH, e);
	int fd = open(src, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return merr_sys(e, "open", src, "failed to open \"%s\"", src);
	return fd;
}

/* Append PATH to buf with '\', ',' and ':' escaped (overlayfs option syntax). */
static void append_escaped(char *buf, size_t n, size_t *pos, const char *path)
{
	for (const char *c = path; *c; c++) {
		if (*c == '\\' || *c == ',' || *c == ':')
			buf_printf(buf, n, pos, "\\");
		buf_printf(buf, n, pos, "%c", *c);
	}
}

/* A layer as mount data: an HPATH as given (escaped), "+CPATH" as /proc/self/fd/N of the
 * directory resolved in the image (*fd keeps it open). mkdir: create it (mkdir -p) first. */
static int layer(int rootfd, const char *l, int mkdir, int *fd, char *buf, size_t n, size_t *pos, struct merr *e)
{
	char p[32];
	int img = g_imgfd >= 0 ? g_imgfd : rootfd;
	if (l[0] != '+' && !mkdir) {
		append_escaped(buf, n, pos, l);
		return 0;
	}
	if (l[0] == '+') {
		*fd = mkdir ? res_mkdir_p(img, l + 1, 0755, e) : res_open(img, l + 1, O_PATH | O_DIRECTORY, e);
		if (*fd < 0)
			return *fd;
		buf_printf(buf, n, pos, "%s", fd_path(*fd, p));
		return 0;
	}
	/* a host upper directory: mkdir -p, as the host sees it (the root "/" of this namespace) */
	_cleanup_close_ int host = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = host < 0 ? merr_sys(e, "open", "/", "failed to open \"/\"") : res_mkdir_p(host, l, 0755, e);
	if (r < 0)
		return r;
	close(r);
	append_escaped(buf, n, pos, l);
	return 0;
}

int binds_op_overlay(int rootfd, const struct op *op, struct merr *e)
{
	char data[8192], p[32];
	size_t pos = 0;
	int r = 0;
	size_t nfds = op->n_layers + 2;
	int *fds = calloc(nfds, sizeof(int));
	if (!fds)
		return merr_set(e, ENOMEM, "malloc", op->path, "failed to allocate memory");
	for (size_t i = 0; i < nfds; i++)
		fds[i] = -1;
	data[0] = 0;
	/* The mount point first, as nspawn: a "+" layer may be the mount point itself
	 * (Overlay=+/var::/var on an image without /var). */
	_cleanup_close_ int tfd = res_mkdir_p(rootfd, op->path, 0755, e);
	if (tfd < 0) {
		free(fds);
		return tfd;
	}
	buf_printf(data, sizeof data, &pos, "lowerdir=");
	/* the kernel's lowerdir lists the top layer first */
	for (size_t i = op->n_layers; i-- > 0 && r == 0;) {
		if (i + 1 < op->n_layers)
			buf_printf(data, sizeof data, &pos, ":");
		r = layer(rootfd, op->layers[i], 0, &fds[i], data, sizeof data, &pos, e);
	}
	if (r == 0 && *op->upper) {
		buf_printf(data, sizeof data, &pos, ",upperdir=");
		r = layer(rootfd, op->upper, 1, &fds[op->n_layers], data, sizeof data, &pos, e);
		if (r == 0) {
			buf_printf(data, sizeof data, &pos, ",workdir=");
			r = layer(rootfd, op->work, 0, &fds[op->n_layers + 1], data, sizeof data, &pos, e);
		}
	}
	if (r == 0 && pos >= sizeof data - 1)
		r = merr_set(e, E2BIG, "mount", op->path, "failed to mount an overlay on \"%s\": too many layers", op->path);
	if (r == 0 &&
	    mount("overlay", fd_path(tfd, p), "overlay", op->flags & ~(MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE), data) < 0)
		r = merr_sys(e, "mount", op->path, "failed to mount an overlay on \"%s\"", op->path);
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return r;
}

int binds_setattr_recursive(int mfd, const char *what, unsigned long flags, struct merr *e)
{
	struct mount_attr a;
	memset(&a, 0, sizeof a);
	if (flags & MS_RDONLY)
		a.attr_set |= MOUNT_ATTR_RDONLY;
	if (flags & MS_NOSUID)
		a.attr_set |= MOUNT_ATTR_NOSUID;
	if (flags & MS_NODEV)
		a.attr_set |= MOUNT_ATTR_NODEV;
	if (flags & MS_NOEXEC)
		a.attr_set |= MOUNT_ATTR_NOEXEC;
	if (!a.attr_set)
		return 0;
	if (syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
		return merr_sys(e, "mount_setattr", what, "failed to make the mounts below \"%s\" read-only", what);
	return 0;
}

/* ---- supervisor: scratch directories, host_mkdir, host_symlink ---- */

int binds_remove_tree_at(int dfd, const char *name)
{
	struct stat st, pst;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (fstat(dfd, &pst) == 0 && pst.st_dev != st.st_dev)
		return -EXDEV; /* a mount point: never cross into another file system */
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)binds_remove_tree_at(dirfd(d), de->d_name);
	closedir(d);
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

struct made {
	int pfd;
	char base[256];
};
static struct made *g_made;
static size_t g_n_made;

static int split_host(const char *path, char *parent, size_t n, char base[256])
{
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1] || strlen(slash + 1) > 255 || (size_t)(slash - path) + 2 > n)
		return -EINVAL;
	strcpy(base, slash + 1);
	if (slash == path)
		strcpy(parent, "/");
	else {
		memcpy(parent, path, (size_t)(slash - path));
		parent[slash - path] = 0;
	}
	return 0;
}

/* Remove what a supervisor that died without cleaning up listed in the registry. */
static void remove_stale(const char *list)
{
	char line[PATH_MAX + 2], parent[PATH_MAX], base[256];
	FILE *f = fopen(list, "re");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (line[0] != '/' || split_host(line, parent, sizeof parent, base) < 0)
			continue;
		int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			(void)binds_remove_tree_at(pfd, base);
			close(pfd);
		}
	}
	fclose(f);
	unlink(list);
}

static int write_list(const struct spec *s, struct merr *e)
{
	char dir[PATH_MAX], base[256];
	const char *list = s->scratch_list;
	if (split_host(list, dir, sizeof dir, base) == 0) {
		for (char *p = dir + 1;; p++) { /* mkdir -p the list's directory */
			char c = *p;
			if (c == '/' || c == 0) {
				*p = 0;
				(void)mkdir(dir, 0755);
				*p = c;
			}
			if (!c)
				break;
		}
	}
	_cleanup_close_ int fd = open(list, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return merr_sys(e, "open", list, "failed to write \"%s\"", list);
	for (size_t i = 0; i < s->n_scratch; i++)
		if (s->scratch[i].path[0] == '/' &&
		    (write_all(fd, s->scratch[i].path, strlen(s->scratch[i].path)) < 0 || write_all(fd, "\n", 1) < 0))
			return merr_sys(e, "write", list, "failed to write \"%s\"", list);
	return 0;
}

static int make_scratch(const struct spec *s, const struct host_path *h, int *imgfd, struct merr *e)
{
	char parent[PATH_MAX];
	struct made m = { .pfd = -1 };
	if (h->path[0] == '+') {
		if (*imgfd < 0 && (*imgfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			return merr_sys(e, "open", s->root, "failed to open \"%s\"", s->root);
		m.pfd = res_parent(*imgfd, h->path + 1, 0, m.base, e);
		if (m.pfd < 0)
			return m.pfd;
	} else {
		if (split_host(h->path, parent, sizeof parent, m.base) < 0)
			return merr_set(e, EINVAL, "mkdir", h->path, "invalid scratch directory \"%s\"", h->path);
		m.pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (m.pfd < 0)
			return merr_sys(e, "open", parent, "failed to open \"%s\"", parent);
	}
	if (mkdirat(m.pfd, m.base, h->mode) < 0 || fchmodat(m.pfd, m.base, h->mode, 0) < 0) {
		int r = merr_sys(e, "mkdir", h->path, "failed to create the temporary directory \"%s\"", h->path);
		close(m.pfd);
		return r;
	}
	struct made *nm = realloc(g_made, (g_n_made + 1) * sizeof *g_made);
	if (!nm) {
		(void)unlinkat(m.pfd, m.base, AT_REMOVEDIR);
		close(m.pfd);
		return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory");
	}
	g_made = nm;
	g_made[g_n_made++] = m;
	return 0;
}

int binds_host_prepare(const struct spec *s, struct merr *e)
{
	if (s->scratch_list) {
		remove_stale(s->scratch_list);
		if (s->n_scratch) {
			int r = write_list(s, e);
			if (r < 0)
				return r;
		}
	}
	_cleanup_close_ int imgfd = -1;
	for (size_t i = 0; i < s->n_scratch; i++) {
		int r = make_scratch(s, &s->scratch[i], &imgfd, e);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < s->n_host_mkdirs; i++) {
		const struct host_path *h = &s->host_mkdirs[i];
		struct stat st;
		if (mkdir(h->path, h->mode) == 0) {
			if (chmod(h->path, h->mode) < 0)
				return merr_sys(e, "chmod", h->path, "failed to set the mode of \"%s\"", h->path);
		} else if (errno != EEXIST || stat(h->path, &st) < 0 || !S_ISDIR(st.st_mode))
			return merr_sys(e, "mkdir", h->path, "failed to create directory \"%s\"", h->path);
	}
	for (size_t i = 0; i < s->n_host_symlinks; i++) {
		const struct host_path *h = &s->host_symlinks[i];
		struct stat st;
		if (lstat(h->path, &st) == 0) {
			if (S_ISLNK(st.st_mode)) {
				if (unlink(h->path) < 0)
					return merr_sys(e, "unlink", h->path, "failed to remove the symlink \"%s\"", h->path);
			} else if (S_ISDIR(st.st_mode)) {
				if (rmdir(h->path) < 0)
					return merr_sys(e, "rmdir", h->path, "failed to replace \"%s\" with a symlink", h->path);
			} else
				return merr_set(e, EEXIST, "symlink", h->path,
						"\"%s\" already exists and is neither a symlink nor a directory", h->path);
		}
		if (symlink(h->target, h->path) < 0)
			return merr_sys(e, "symlink", h->path, "failed to create the symlink \"%s\" -> \"%s\"", h->path, h->target);
	}
	return 0;
}

void binds_host_cleanup(const struct spec *s)
{
	for (size_t i = g_n_made; i-- > 0;) {
		(void)binds_remove_tree_at(g_made[i].pfd, g_made[i].base);
		close(g_made[i].pfd);
	}
	free(g_made);
	g_made = NULL;
	g_n_made = 0;
	if (s->scratch_list && s->n_scratch)
		unlink(s->scratch_list);
}
