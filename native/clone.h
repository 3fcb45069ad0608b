/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A child born in its cgroup: clone3 with CLONE_INTO_CGROUP (the supervisor's container, the
 * enterer). Being born there spares the migration a cgroup.procs write would do, which waits for
 * an RCU grace period (~10 ms on a quiet hierarchy). */
#pragma once

#include <errno.h>
#include <linux/sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * clone3(CA) with the child born in the cgroup2 directory CGFD: the child's pid (0 in the child),
 * or -1 with errno. *UNSUPPORTED is set when the kernel has no CLONE_INTO_CGROUP (EINVAL, ENOSYS,
 * E2BIG, EOPNOTSUPP): the caller then clones without it and joins the cgroup afterwards.
 */
static inline long clone_into_cgroup(const struct clone_args *ca, int cgfd, int *unsupported)
{
	struct clone_args cai = *ca;
	cai.flags |= CLONE_INTO_CGROUP;
	cai.cgroup = (uint64_t)cgfd;
	long pid = syscall(SYS_clone3, &cai, sizeof cai);
	*unsupported = pid < 0 && (errno == EINVAL || errno == ENOSYS || errno == E2BIG || errno == EOPNOTSUPP);
	return pid;
}
