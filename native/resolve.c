/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

const char *fd_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

static int openat2_in_root(int rootfd, const char *path, int oflags)
{
	struct open_how how = {
		.flags = (unsigned long long)(oflags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long r;
	do
		r = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
	while (r < 0 && errno == EAGAIN); /* rename/mount race: retry */
	return (int)r;
}

int res_open(int rootfd, const char *cpath, int oflags, struct merr *e)
{
	int fd = openat2_in_root(rootfd, cpath, oflags);
	if (fd < 0)
		return merr_sys(e, "openat2", cpath, "failed to open \"%s\" in the container", cpath);
	return fd;
}

int res_mkdir_p(int rootfd, const char *cpath, mode_t mode, struct merr *e)
{
	char prefix[PATH_MAX];
	size_t len = strlen(cpath);
	if (len >= sizeof prefix)
		return merr_set(e, ENAMETOOLONG, "openat2", cpath, "failed to create directory \"%.200s\"", cpath);

	_cleanup_close_ int cur = openat2_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
	if (cur < 0)
		return merr_sys(e, "openat2", "/", "failed to open the container root");

	size_t i = 0;
	while (i < len) {
		while (i < len && cpath[i] == '/')
			i++;
		if (i >= len)
			break;
		size_t start = i;
		while (i < len && cpath[i] != '/')
			i++;
		char comp[NAME_MAX + 1];
		if (i - start > NAME_MAX)
			return merr_set(e, ENAMETOOLONG, "mkdirat", cpath, "failed to create directory \"%s\"", cpath);
		memcpy(comp, cpath + start, i - start);
		comp[i - start] = 0;
		memcpy(prefix, cpath, i);
		prefix[i] = 0;

		int nfd = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
		if (nfd < 0 && errno == ENOENT) {
			if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST)
				return merr_sys(e, "mkdirat", prefix, "failed to create directory \"%s\"", prefix);
			_cleanup_close_ int dfd = openat2_in_root(rootfd, prefix, O_RDONLY | O_DIRECTORY);
			if (dfd < 0)
				return merr_sys(e, "openat2", prefix, "failed to open directory \"%s\"", prefix);
			if (fchmod(dfd, mode) < 0)
				return merr_sys(e, "fchmod", prefix, "failed to set the mode of \"%s\"", prefix);
			nfd = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
		}
		if (nfd < 0)
			return merr_sys(e, "openat2", prefix, "failed to open directory \"%s\"", prefix);
		close(cur);
		cur = nfd;
	}
	return take_fd(&cur);
}

int res_parent(int rootfd, const char *cpath, int mkparents, char base[256], struct merr *e)
{
	char dir[PATH_MAX];
	size_t len = strlen(cpath);
	while (len > 1 && cpath[len - 1] == '/')
		len--;
	if (len >= sizeof dir)
		return merr_set(e, ENAMETOOLONG, "openat2", cpath, "path too long: \"%.200s\"", cpath);
	memcpy(dir, cpath, len);
	dir[len] = 0;
	char *slash = strrchr(dir, '/');
	if (!slash)
		return merr_set(e, EINVAL, "openat2", cpath, "not an absolute path: \"%s\"", cpath);
	const char *b = slash + 1;
	if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
		return merr_set(e, EINVAL, "openat2", cpath, "path has no parent directory: \"%s\"", cpath);
	if (strlen(b) > 255)
		return merr_set(e, ENAMETOOLONG, "openat2", cpath, "file name too long: \"%.200s\"", cpath);
	strcpy(base, b);
	if (slash == dir)
		slash[1] = 0; /* parent is "/" */
	else
		*slash = 0;
	if (mkparents)
		return res_mkdir_p(rootfd, dir, 0755, e);
	return res_open(rootfd, dir, O_PATH | O_DIRECTORY, e);
}
