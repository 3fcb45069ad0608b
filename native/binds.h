/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Root modes (root_tmpfs, root_overlay), pivot_root_dir, sources inside the image ("+CPATH"),
 * the overlay op, recursive read-only binds, and the supervisor's host-side preparation
 * (scratch_dir, host_mkdir, host_symlink). See SPEC.md. */
#pragma once
#include "error.h"
#include "spec.h"

/* Child, after the root has been bind-mounted and opened as *rootfd: rearrange for
 * pivot_root_dir, then make the root a tmpfs or an overlay over the image (root modes).
 * *rootfd is replaced by the new root; the image tree stays reachable for "+" sources. */
int binds_prepare_root(const struct spec *s, int *rootfd, struct merr *e);
/* The directory "+CPATH" sources resolve in (set by binds_prepare_root; tests may set it). */
void binds_set_image_fd(int fd);
/* Open a mount source: an HPATH as given, "+CPATH" resolved inside the image (O_PATH). */
int binds_open_source(int rootfd, const char *src, struct merr *e);
/* The overlay op. */
int binds_op_overlay(int rootfd, const struct op *op, struct merr *e);
/* After a bind mount with MS_REC: apply ro/nosuid/nodev/noexec of FLAGS to every submount. */
int binds_setattr_recursive(int mfd, const char *what, unsigned long flags, struct merr *e);

/* Supervisor, once after the registry lock: remove stale scratch directories of a crashed
 * run, create scratch directories, host_mkdir, host_symlink. */
int binds_host_prepare(const struct spec *s, struct merr *e);
/* Supervisor, at exit: remove the scratch directories (reverse order). */
void binds_host_cleanup(const struct spec *s);
/* rm -rf NAME in the directory dfd, not following symlinks, not crossing mount points. */
int binds_remove_tree_at(int dfd, const char *name);
