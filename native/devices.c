/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device policy (SPEC.md `device_policy`, `device_allow`): a BPF_PROG_TYPE_CGROUP_DEVICE
 * program built from the allow records, attached to the container's cgroup2 directory before
 * the container runs — the mechanism systemd uses for DevicePolicy=closed/DeviceAllow= on
 * cgroup v2 (also on the unified hierarchy of a hybrid host). Anything not allowed is refused
 * with EPERM at open(2) and mknod(2), whatever the container's capabilities. */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define MAX_RULES 256
#define RULE_INSNS 8

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
	return i;
}

int devices_parse_allow(struct device_rule *r, const char **a, const char **bad)
{
	if (!strcmp(a[0], "c"))
		r->type = BPF_DEVCG_DEV_CHAR;
	else if (!strcmp(a[0], "b"))
		r->type = BPF_DEVCG_DEV_BLOCK;
	else if (!strcmp(a[0], "a"))
		r->type = 0;
	else
		return *bad = "TYPE (c, b or a)", -EINVAL;
	for (int k = 0; k < 2; k++) {
		long *v = k ? &r->minor : &r->major;
		if (!strcmp(a[1 + k], "*")) {
			*v = -1;
			continue;
		}
		char *end;
		errno = 0;
		unsigned long n = strtoul(a[1 + k], &end, 10);
		if (errno || !*a[1 + k] || *end || n > 0xfffffffful || a[1 + k][0] == '-')
			return *bad = k ? "MINOR (a number or *)" : "MAJOR (a number or *)", -EINVAL;
		*v = (long)n;
	}
	r->access = 0;
	if (!*a[3])
		return *bad = "ACCESS (r, w, m: at least one)", -EINVAL;
	for (const char *p = a[3]; *p; p++) {
		int bit = *p == 'r' ? BPF_DEVCG_ACC_READ : *p == 'w' ? BPF_DEVCG_ACC_WRITE : *p == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
		if (!bit || (r->access & bit))
			return *bad = "ACCESS (r, w, m: at least one)", -EINVAL;
		r->access |= bit;
	}
	return 0;
}

size_t devices_program(const struct device_rule *rules, size_t n, struct bpf_insn *out, size_t max)
{
	size_t k = 0;
	if (max < 7 + n * RULE_INSNS)
		return 0;
	/* r2 = access_type; r3 = type (low 16 bits); r2 = access (high 16 bits); r4 = major; r5 = minor */
	out[k++] = insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0);
	out[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
	out[k++] = insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_3, 0, 0, 0xffff);
	out[k++] = insn(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_2, 0, 0, 16);
	out[k++] = insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, 4, 0);
	out[k++] = insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 8, 0);
	for (size_t i = 0; i < n; i++) {
		const struct device_rule *r = &rules[i];
		struct bpf_insn block[RULE_INSNS];
		size_t b = 0;
		int jumps[RULE_INSNS];
		size_t nj = 0;
		if (r->type) {
			jumps[nj++] = (int)b;
			block[b++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0, 0, r->type);
		}
		if (r->access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
			/* every requested access must be allowed: (access & ~allowed) == 0 */
			block[b++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_2, 0, 0);
			block[b++] = insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, ~r->access & 0x7);
			jumps[nj++] = (int)b;
			block[b++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, 0, 0);
		}
		if (r->major >= 0) {
			jumps[nj++] = (int)b;
			block[b++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0, (int32_t)r->major);
		}
		if (r->minor >= 0) {
			jumps[nj++] = (int)b;
			block[b++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, (int32_t)r->minor);
		}
		block[b++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
		block[b++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
		for (size_t j = 0; j < nj; j++) /* a mismatch skips the rest of this rule */
			block[jumps[j]].off = (int16_t)(b - (size_t)jumps[j] - 1);
		memcpy(out + k, block, b * sizeof *block);
		k += b;
	}
	out[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	out[k++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return k;
}

int devices_apply(const char *cgroup, const struct device_rule *rules, size_t n, struct merr *e)
{
	if (!cgroup)
		return 0;
	if (n > MAX_RULES)
		return merr_set(e, E2BIG, "bpf", cgroup, "too many device_allow records (%zu, at most %d)", n, MAX_RULES);
	struct bpf_insn prog[7 + MAX_RULES * RULE_INSNS];
	size_t len = devices_program(rules, n, prog, ARRAY_SIZE(prog));
	char log[4096] = "";
	union bpf_attr load;
	memset(&load, 0, sizeof load);
	load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	load.insns = (uint64_t)(uintptr_t)prog;
	load.insn_cnt = (uint32_t)len;
	load.license = (uint64_t)(uintptr_t) "GPL";
	_cleanup_close_ int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
	if (pfd < 0 && (errno == EPERM || errno == ENOSYS)) {
		/* No BPF here (a system call filter around us, as in a container, or no bpf(2)): the
		 * policy cannot be enforced from here — as systemd, go on; one line says so. */
		char line[200];
		int l = snprintf(line, sizeof line, "%s: warning: no device policy: bpf(2) is not available here (%s)\n", g_prog,
				 errno == EPERM ? "EPERM" : "ENOSYS");
		(void)write_all(2, line, (size_t)l);
		return 0;
	}
	if (pfd < 0) {
		int err = errno;
		/* again with the verifier's log, for the message */
		load.log_buf = (uint64_t)(uintptr_t)log;
		load.log_size = sizeof log;
		load.log_level = 1;
		(void)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
		errno = err;
		return merr_sys(e, "bpf", cgroup, "failed to load the device policy program (%.200s)", log);
	}
	_cleanup_close_ int cfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0)
		return merr_sys(e, "open", cgroup, "failed to open the cgroup \"%s\" for the device policy", cgroup);
	union bpf_attr attach;
	memset(&attach, 0, sizeof attach);
	attach.target_fd = (uint32_t)cfd;
	attach.attach_bpf_fd = (uint32_t)pfd;
	attach.attach_type = BPF_CGROUP_DEVICE;
	attach.attach_flags = BPF_F_ALLOW_MULTI;
	if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) < 0)
		return merr_sys(e, "bpf", cgroup, "failed to attach the device policy to \"%s\"", cgroup);
	return 0;
}
