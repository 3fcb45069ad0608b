/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Records for seccomp, personality, OOM score, CPU affinity and cgroup attribute writes
 * (SPEC.md, "Security and resources"): parsed into struct sec, executed by the child and the
 * supervisor at the points SPEC.md names. Policy is decided in TypeScript (src/spec/). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum sec_kind { SEC_ALLOW, SEC_ERRNO, SEC_RULE };

/* What a filter answers: an errno (with its number) or one of the others (SPEC.md ACTION). */
enum sec_act { SEC_ACT_ERRNO, SEC_ACT_ALLOW, SEC_ACT_KILL, SEC_ACT_KILL_PROCESS, SEC_ACT_TRAP, SEC_ACT_LOG };

enum sec_op { SEC_OP_EQ, SEC_OP_LE, SEC_OP_MASKED_EQ, SEC_OP_NE, SEC_OP_LT, SEC_OP_GE, SEC_OP_GT };

struct sec_cond {
	unsigned arg;
	int op; /* enum sec_op */
	uint64_t value, mask;
};

struct sec_entry {
	enum sec_kind kind;
	int act;                /* SEC_RULE: enum sec_act (SEC_ALLOW/SEC_ERRNO: implied) */
	int err;                /* SEC_ERRNO, SEC_RULE with SEC_ACT_ERRNO */
	const char *name;       /* syscall name */
	struct sec_cond *conds; /* SEC_RULE: n_conds (at most 6), malloc'd */
	unsigned n_conds;
};

struct sec_filter {
	int default_act; /* enum sec_act */
	int default_errno;
	struct sec_entry *entries;
	size_t n_entries;
	/* seccomp_arch: the architectures this filter speaks for (the others get kill); all when !has_arches */
	int has_arches;
	uint32_t *arches;
	size_t n_arches;
};

/* One compiled BPF program (seccomp_cache): loaded as is with seccomp(SECCOMP_SET_MODE_FILTER). */
struct sec_prog {
	uint32_t arch;
	uint32_t len;      /* instructions */
	const void *insns; /* struct sock_filter[len], inside sec.blob */
	int native;
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
	const char *cache_dir; /* seccomp_cache */
	/* Filled by sec_seccomp_prepare (supervisor, before the clone): the programs, in load order. */
	struct sec_prog *progs;
	size_t n_progs;
	void *blob;
	int prepared;
};

/* One record: 1 = handled, 0 = not a record of ours, <0 = error (spec syntax, *e set). */
int sec_record(struct sec *s, const char *name, const char **a, size_t n, size_t idx, struct merr *e);
void sec_free(struct sec *s);

/* Supervisor: write every cgroup_set value, in order. */
int sec_cgroup_write(const struct sec *s, struct merr *e);
/* Child, after the pivot: personality, oom_score_adj, CPU affinity. */
int sec_process_setup(const struct sec *s, struct merr *e);
/* Supervisor, before the clone, with seccomp_cache: find the compiled programs in the cache or
 * compile and store them (libseccomp is loaded, with dlopen, only to compile). 1 = cache hit,
 * 0 = compiled (and stored when the cache is usable), <0 = error (*e set). Without filters: 0,
 * nothing done; with filters but without seccomp_cache: 0, libseccomp loaded for the child. */
int sec_seccomp_prepare(struct sec *s, struct merr *e);
/* Supervisor, once the programs are prepared: free the parsed filters (only the programs are
 * loaded from then on; n_filters stays). */
void sec_seccomp_shed(struct sec *s);
/* How often libseccomp was needed (loaded or used) in this process (tests: a cache hit never). */
extern unsigned sec_seccomp_lib_uses;
/* Payload: load the seccomp filters (per architecture, native last): the prepared programs, or
 * else built here with the libseccomp that sec_seccomp_prepare loaded (an error if it did not). */
int sec_seccomp_load(const struct sec *s, struct merr *e);
/* Parse "a1&0x10==0x10" style conditions (exposed for tests). */
int sec_parse_cond(const char *s, struct sec_cond *c);
