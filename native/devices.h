/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container's device policy: a cgroup2 BPF device program (devices.c, SPEC.md `device_policy`). */
#pragma once
#include <linux/bpf.h>
#include <stddef.h>

#include "error.h"

struct device_rule {
	int type;   /* BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK, 0 = any */
	long major; /* -1 = any */
	long minor; /* -1 = any */
	int access; /* BPF_DEVCG_ACC_* bits */
};

/* Parse `device_allow TYPE MAJOR MINOR ACCESS` (a[0..3]); 0 or -EINVAL with *bad. */
int devices_parse_allow(struct device_rule *r, const char **a, const char **bad);
/* The program allowing exactly these rules (default deny); its length, 0 when max is too small. */
size_t devices_program(const struct device_rule *rules, size_t n, struct bpf_insn *out, size_t max);
/* Load the program and attach it to the cgroup2 directory (BPF_F_ALLOW_MULTI). cgroup NULL = no policy. */
int devices_apply(const char *cgroup, const struct device_rule *rules, size_t n, struct merr *e);
