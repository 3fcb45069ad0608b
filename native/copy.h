/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* File tree copies between directory fds (machinactl copy-to / copy-from, SPEC.md "Enter
 * spec", record `copy`). Every step is relative to a directory fd already opened, with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW: no symlink is ever followed, on either side. */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* An owner map: ids in [from, from+count) become to + (id - from); others become fallback.
 * n == 0: the identity. */
struct copy_range {
	unsigned from, to, count;
};
struct copy_ids {
	struct copy_range r[16];
	size_t n;
	unsigned fallback;
};

unsigned copy_map_id(const struct copy_ids *m, unsigned id);

/* Copy SRCNAME in SRCDIR (a file, directory tree, symlink, device, fifo or socket; never
 * followed) to DSTNAME in DSTDIR, which must not exist: data, numeric owners (mapped), mode,
 * xattrs where the target takes them, atime/mtime. SPATH/DPATH name the two sides in errors.
 * Returns 0 or -errno with *e filled. */
int copy_tree(int srcdir, const char *srcname, int dstdir, const char *dstname, const struct copy_ids *uids, const struct copy_ids *gids,
	      const char *spath, const char *dpath, struct merr *e);

/* What the open directory SRCFD holds (not the directory itself), into the open directory DSTFD
 * (tmpfs copy-up: SPEC.md `mount` CREATE `copyup`), owners unchanged, otherwise as copy_tree. */
int copy_contents(int srcfd, int dstfd, const char *spath, const char *dpath, struct merr *e);

/* rm -rf of NAME in DIR without following symlinks; missing is fine. */
int copy_remove(int dir, const char *name, struct merr *e);

/* The whole operation: copy to a temporary name next to DSTNAME, then rename it into place
 * (RENAME_NOREPLACE; with force, RENAME_EXCHANGE with the existing target, which is then
 * removed). Without force an existing target is EEXIST; nothing is left behind on failure. */
int copy_replace(int srcdir, const char *srcname, int dstdir, const char *dstname, int force, const struct copy_ids *uids,
		 const struct copy_ids *gids, const char *spath, const char *dpath, struct merr *e);
