/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resolution of container paths inside a root directory, never escaping it:
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS); symlinks (absolute or ../..) stay inside. */
#pragma once
#include <sys/types.h>

#include "error.h"

/* "/proc/self/fd/N": lets mount(2) act on exactly the inode we resolved. */
const char *fd_path(int fd, char buf[32]);

/* Open CPATH inside rootfd. oflags e.g. O_PATH, O_PATH|O_DIRECTORY (O_CLOEXEC always added).
 * Returns the fd or -errno (with *e filled). */
int res_open(int rootfd, const char *cpath, int oflags, struct merr *e);

/* mkdir -p CPATH inside rootfd; created directories get exactly MODE (umask ignored).
 * Returns an O_PATH directory fd or -errno. */
int res_mkdir_p(int rootfd, const char *cpath, mode_t mode, struct merr *e);

/* Open the parent directory of CPATH (creating it with 0755 when mkparents) and return its fd;
 * the last component is copied into base (at most 256 bytes). "/", "." and ".." have no parent. */
int res_parent(int rootfd, const char *cpath, int mkparents, char base[256], struct merr *e);
