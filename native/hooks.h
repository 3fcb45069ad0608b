/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Commands the supervisor runs for the TypeScript side (on_leader, on_exit), and the
 * supervisor's own cgroup (supervisor_cgroup). See SPEC.md. */
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include "error.h"

/* The argument of an on_leader command that is replaced by the leader's pid. */
#define HOOK_LEADER_ARG "{leader}"

/*
 * fork + execv(argv[0]) with the signal mask cleared, stdin /dev/null, stdout /dev/null
 * (quiet_stdout) or else kept (made our stderr when fd 1 is closed), stderr kept, every fd
 * above 2 closed; every argument equal to HOOK_LEADER_ARG replaced by `leader` (when > 0).
 * Waits up to timeout_ms, then SIGKILLs it. Returns the wait status, or -1 when it could not
 * be started or was killed after the timeout (*timed_out set).
 */
int hook_run(const char *const *argv, size_t n, pid_t leader, int quiet_stdout, int timeout_ms, int *timed_out);

/* hook_run in two steps: start it (the pid, or -1), and wait for it (as hook_run). */
pid_t hook_start(const char *const *argv, size_t n, pid_t leader, int quiet_stdout);
int hook_wait(pid_t child, int timeout_ms, int *timed_out);

/* Started and not waited for (on_exit_detach): its own session, stdin and stdout /dev/null,
 * stderr kept, so it outlives the supervisor. The pid, or -1. */
pid_t hook_start_detached(const char *const *argv, size_t n);

/* Create DIR (with parents) and move the calling process into it (cgroup.procs). */
int cgroup_enter_self(const char *dir, struct merr *e);

struct spec;
/*
 * The oci_hook records of `stage` (enum oci_hook_stage), in spec order (SPEC.md "OCI runtime"):
 * each forked from the calling process, stdin a pipe holding {"pid":P,BODY} (P our getpid(),
 * BODY the stage's oci_hook_state), stdout/stderr ours, working directory cwdfd (-1: ours),
 * signals reset, every other fd closed, execve(PATH, ARGV, ENV); waited for up to its TIMEOUT.
 * The first that fails (not exit status 0, killed, timed out) ends the run: -1 with *e set.
 */
int oci_hooks_run(const struct spec *s, int stage, int cwdfd, struct merr *e);
