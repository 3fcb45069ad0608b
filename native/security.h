/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Records for seccomp, personality, OOM score, CPU affinity and cgroup attribute writes
 * (SPEC.md, "Security and resources"): parsed into struct sec, executed by the child and the
 * supervisor at the points SPEC.md names. Policy is decided in TypeScript (src/spec/). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum sec_kind { SEC_ALLOW, SEC_ERRNO, SEC_RULE };

struct sec_cond {
	unsigned arg;
	int op; /* 0 ==, 1 <=, 2 masked == */
	uint64_t value, mask;
};

struct sec_entry {
	enum sec_kind kind;
	int err;          /* SEC_ERRNO, SEC_RULE */
	const char *name; /* syscall name */
	struct sec_cond conds[6];
	unsigned n_conds;
};

struct sec_filter {
	int default_allow; /* else default_errno */
	int default_errno;
	struct sec_entry *entries;
	size_t n_entries;
};

struct sec_cgset {
	const char *path, *value;
};

struct sec {
	struct sec_filter *filters;
	size_t n_filters;
	int has_personality, has_oom, has_affinity;
	unsigned long personality;
	int oom;
	unsigned *cpus;
	size_t n_cpus;
	struct sec_cgset *sets;
	size_t n_sets;
};

/* One record: 1 = handled, 0 = not a record of ours, <0 = error (spec syntax, *e set). */
int sec_record(struct sec *s, const char *name, const char **a, size_t n, size_t idx, struct merr *e);
void sec_free(struct sec *s);

/* Supervisor: write every cgroup_set value, in order. */
int sec_cgroup_write(const struct sec *s, struct merr *e);
/* Child, after the pivot: personality, oom_score_adj, CPU affinity. */
int sec_process_setup(const struct sec *s, struct merr *e);
/* Payload: build and load the seccomp filters (per architecture, native last). */
int sec_seccomp_load(const struct sec *s, struct merr *e);
/* Parse "a1&0x10==0x10" style conditions (exposed for tests). */
int sec_parse_cond(const char *s, struct sec_cond *c);
