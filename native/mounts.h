/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Container setup operations (SPEC.md "Container setup"), executed before pivot_root. */
#pragma once
#include "error.h"
#include "spec.h"

/* Run one setup op (all kinds except OP_NOTIFY, which runs after the pivot). */
int op_run(int rootfd, const struct op *op, struct merr *e);
/* Copy in to out from their offsets (copy_file_range, sendfile, read/write). 0 or -errno
 * (*sc = the syscall that failed). */
int copy_fd_data(int in, int out, const char **sc);
/* Remount the mount at fd (a bind mount) with FLAGS, keeping nosuid/nodev/noexec/atime flags. */
int remount_bind(int fd, const char *what, unsigned long flags, struct merr *e);
/* Make ROOT the root: fchdir + pivot_root(".", ".") + umount2(".", MNT_DETACH) + chdir("/"). */
int pivot_to(int rootfd, const char *root, struct merr *e);
/* "ro,nosuid" for messages. */
const char *flags_str(unsigned long flags, char *buf, size_t n);
