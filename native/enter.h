/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `machina-helper enter`: run a command in, or bind a host directory into, a running container
 * (see SPEC.md, "Enter spec"). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "copy.h"
#include "error.h"
#include "security.h"

#define ENTER_MAGIC "MACHINA-ENTER"
#define ENTER_VERSION "1"

struct enter_bind {
	const char *src; /* HPATH */
	const char *dst; /* CPATH */
	int read_only;
	int mkdir;
};

struct enter_rlimit {
	int res;
	unsigned long long soft, hard; /* RLIM_INFINITY for "infinity" */
};

struct enter_spec {
	const char *prog;
	pid_t pid;             /* the container's leader */
	const char *starttime; /* its /proc/PID/stat field 22, checked after pidfd_open */
	unsigned ns_flags;     /* CLONE_NEW* to enter */
	const char **cgroups;  /* host cgroup directories to join */
	size_t n_cgroups;
	long born_in; /* the cgroup (index) the enterer was born in, -1: none (not a record) */
	int has_caps;
	uint64_t caps_bounding;
	int no_new_privs;
	int has_ambient;
	uint64_t caps_ambient;        /* the container's ambient set */
	struct enter_rlimit *rlimits; /* the container's payload rlimits */
	size_t n_rlimits;
	struct sec sec;       /* the container's seccomp records (+ seccomp_cache), security.c */
	const char **argpool; /* argument slices of the seccomp records (sec keeps pointers into it) */
	int has_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	const char **env;
	size_t n_env;
	const char *chdir;
	int pty;                    /* 1: pty in the container's devpts; 0: inherit stdio */
	int detach;                 /* `detach PIDFILE|-`: the command is left running, its pid written there */
	const char *pid_file;       /* NULL: none */
	int pid_fd;                 /* runtime: the pid file, opened on the host before entering, or -1 */
	const char *console_socket; /* `console_socket HPATH`: the pty master goes there (needs detach) */
	const char **exec_path;     /* candidates */
	const char **exec_argv0;
	size_t n_exec;
	const char **args;
	size_t n_args;
	struct enter_bind *binds;
	size_t n_binds;
	int has_copy;           /* `copy` record */
	int copy_from;          /* 1: container -> host; 0: host -> container */
	const char *copy_hpath; /* HPATH (absolute) */
	const char *copy_cpath; /* CPATH (absolute, resolved in the container's root) */
	int copy_force;
	struct copy_ids copy_uids, copy_gids;
	const char *selinux_context; /* `selinux_context`: SELinux exec label of the command (selinux.h) */
	int selinux_fd;              /* runtime: our attr/exec, opened from the host's /proc before entering */
	/* allocation owned by the spec */
	char *buf;
	void *mem[8];
};

int enter_parse(struct enter_spec *s, char *buf, size_t len, struct merr *e);
void enter_free(struct enter_spec *s);
/* Returns the exit status (command's status, 128+N, 126/127, or 1 on setup failure). */
int enter_run(struct enter_spec *s);
