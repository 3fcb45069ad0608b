/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SELinux exec label of the payload (-Z/--selinux-context=, SPEC.md `selinux_context`). */
#pragma once
#include "error.h"

/* Where setexeccon(3) writes: the calling thread's label for its next execve. */
#define SELINUX_EXEC_ATTR "/proc/thread-self/attr/exec"

/* Write label, with its trailing NUL, to attr (SELINUX_EXEC_ATTR; a file in tests) in one
 * write(2), as libselinux's setexeccon does. Returns 0 or -errno with *e naming attr. */
int selinux_set_exec_label(const char *attr, const char *label, struct merr *e);
/* The same on an fd of attr opened earlier (enter: from the host's /proc, before setns). */
int selinux_write_exec_label(int fd, const char *attr, const char *label, struct merr *e);
