/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "security.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <unistd.h>

#include "util.h"

#define BAD(...) merr_set(e, 0, "", "", "invalid spec: " __VA_ARGS__)

static int grow_arr(void *arrp, size_t *n, size_t elsz)
{
	void **arr = arrp;
	void *p = realloc(*arr, (*n + 1) * elsz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	memset((char *)p + *n * elsz, 0, elsz);
	(*n)++;
	return 0;
}

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	char *p;
	unsigned long long v = strtoull(s, &p, 0);
	if (errno)
		return -ERANGE;
	*out = v;
	*end = p;
	return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	if (!*s)
		return -EINVAL;
	errno = 0;
	char *p;
	long v = strtol(s, &p, 10);
	if (errno || *p || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int sec_parse_cond(const char *s, struct sec_cond *c)
{
	const char *p;
	uint64_t v;
	if (s[0] != 'a' || s[1] < '0' || s[1] > '5')
		return -EINVAL;
	c->arg = (unsigned)(s[1] - '0');
	p = s + 2;
	if (!strncmp(p, "==", 2)) {
		c->op = 0;
		p += 2;
	} else if (!strncmp(p, "<=", 2)) {
		c->op = 1;
		p += 2;
	} else if (*p == '&') {
		c->op = 2;
		if (parse_u64(p + 1, &p, &c->mask) < 0 || strncmp(p, "==", 2))
			return -EINVAL;
		p += 2;
	} else
		return -EINVAL;
	if (parse_u64(p, &p, &v) < 0 || *p)
		return -EINVAL;
	c->value = v;
	return 0;
}

static int valid_name(const char *n)
{
	if (!*n || strlen(n) > 64)
		return 0;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

static struct sec_entry *add_entry(struct sec *s)
{
	struct sec_filter *f = &s->filters[s->n_filters - 1];
	if (grow_arr(&f->entries, &f->n_entries, sizeof *f->entries) < 0)
		return NULL;
	return &f->entries[f->n_entries - 1];
}

int sec_record(struct sec *s, const char *name, const char **a, size_t n, size_t idx, struct merr *e)
{
	long v;
	if (!strcmp(name, "seccomp_filter")) {
		if (n != 1)
			return BAD("record %zu (\"%s\"): expected 1 argument, got %zu", idx, name, n);
		if (grow_arr(&s->filters, &s->n_filters, sizeof *s->filters) < 0)
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
		struct sec_filter *f = &s->filters[s->n_filters - 1];
		if (!strcmp(a[0], "allow"))
			f->default_allow = 1;
		else if (parse_long(a[0], 0, 4095, &v) == 0)
			f->default_errno = (int)v;
		else
			return BAD("record %zu (\"%s\"): malformed DEFAULT (allow or an errno number)", idx, name);
		return 1;
	}
	if (!strcmp(name, "seccomp_allow") || !strcmp(name, "seccomp_deny") || !strcmp(name, "seccomp_rule")) {
		int deny = name[8] == 'd', rule = name[8] == 'r';
		size_t first = (deny || rule) ? 1 : 0;
		if (!s->n_filters)
			return BAD("record %zu (\"%s\"): no \"seccomp_filter\" before it", idx, name);
		if (n < first + 1)
			return BAD("record %zu (\"%s\"): expected at least %zu arguments, got %zu", idx, name, first + 1, n);
		int err = 0;
		if (first) {
			if (parse_long(a[0], 0, 4095, &v) < 0)
				return BAD("record %zu (\"%s\"): malformed ERRNO", idx, name);
			err = (int)v;
		}
		if (rule) {
			if (n > 8 || !valid_name(a[1]))
				return BAD("record %zu (\"%s\"): expected ERRNO NAME and at most 6 conditions", idx, name);
			struct sec_entry *en = add_entry(s);
			if (!en)
				return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
			en->kind = SEC_RULE;
			en->err = err;
			en->name = a[1];
			for (size_t i = 2; i < n; i++)
				if (sec_parse_cond(a[i], &en->conds[en->n_conds++]) < 0)
					return BAD("record %zu (\"%s\"): malformed condition \"%.64s\"", idx, name, a[i]);
			return 1;
		}
		for (size_t i = first; i < n; i++) {
			if (!valid_name(a[i]))
				return BAD("record %zu (\"%s\"): malformed system call name \"%.64s\"", idx, name, a[i]);
			struct sec_entry *en = add_entry(s);
			if (!en)
				return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
			en->kind = deny ? SEC_ERRNO : SEC_ALLOW;
			en->err = err;
			en->name = a[i];
		}
		return 1;
	}
	if (!strcmp(name, "personality")) {
		if (n != 1 || s->has_personality || parse_long(a[0], 0, 0xffffffffL - 1, &v) < 0)
			return BAD("record %zu (\"%s\"): expected one N (and only one such record)", idx, name);
		s->personality = (unsigned long)v;
		s->has_personality = 1;
		return 1;
	}
	if (!strcmp(name, "oom_score_adjust")) {
		if (n != 1 || s->has_oom || parse_long(a[0], -1000, 1000, &v) < 0)
			return BAD("record %zu (\"%s\"): expected one N from -1000 to 1000 (and only one such record)", idx, name);
		s->oom = (int)v;
		s->has_oom = 1;
		return 1;
	}
	if (!strcmp(name, "cpu_affinity")) {
		if (n < 1 || s->has_affinity)
			return BAD("record %zu (\"%s\"): expected CPU numbers (and only one such record)", idx, name);
		s->cpus = calloc(n, sizeof *s->cpus);
		if (!s->cpus)
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
		for (size_t i = 0; i < n; i++) {
			if (parse_long(a[i], 0, 65535, &v) < 0)
				return BAD("record %zu (\"%s\"): malformed CPU \"%.32s\"", idx, name, a[i]);
			s->cpus[i] = (unsigned)v;
		}
		s->n_cpus = n;
		s->has_affinity = 1;
		return 1;
	}
	if (!strcmp(name, "cgroup_set")) {
		if (n != 2 || a[0][0] != '/' || strstr(a[0], "/../") || strchr(a[1], '\n') != NULL)
			return BAD("record %zu (\"%s\"): expected HPATH VALUE", idx, name);
		if (grow_arr(&s->sets, &s->n_sets, sizeof *s->sets) < 0)
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
		s->sets[s->n_sets - 1] = (struct sec_cgset){ a[0], a[1] };
		return 1;
	}
	return 0;
}

void sec_free(struct sec *s)
{
	for (size_t i = 0; i < s->n_filters; i++)
		free(s->filters[i].entries);
	free(s->filters);
	free(s->cpus);
	free(s->sets);
	memset(s, 0, sizeof *s);
}

int sec_cgroup_write(const struct sec *s, struct merr *e)
{
	for (size_t i = 0; i < s->n_sets; i++) {
		const char *p = s->sets[i].path, *v = s->sets[i].value;
		_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return merr_sys(e, "open", p, "failed to open the cgroup attribute \"%s\"", p);
		if (write(fd, v, strlen(v)) < 0)
			return merr_sys(e, "write", p, "failed to write \"%s\" to \"%s\"", v, p);
	}
	return 0;
}

int sec_process_setup(const struct sec *s, struct merr *e)
{
	if (s->has_personality && personality(s->personality) < 0)
		return merr_sys(e, "personality", "", "failed to set the personality 0x%lx", s->personality);
	if (s->has_oom) {
		char buf[16];
		int n = snprintf(buf, sizeof buf, "%d\n", s->oom);
		_cleanup_close_ int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, buf, (size_t)n) < 0)
			return merr_sys(e, fd < 0 ? "open" : "write", "/proc/self/oom_score_adj",
					"failed to set the OOM score adjustment to %d", s->oom);
	}
	if (s->has_affinity) {
		unsigned max = 0;
		for (size_t i = 0; i < s->n_cpus; i++)
			if (s->cpus[i] > max)
				max = s->cpus[i];
		cpu_set_t *set = CPU_ALLOC(max + 1);
		if (!set)
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate a CPU set");
		size_t size = CPU_ALLOC_SIZE(max + 1);
		CPU_ZERO_S(size, set);
		for (size_t i = 0; i < s->n_cpus; i++)
			CPU_SET_S(s->cpus[i], size, set);
		int r = sched_setaffinity(0, size, set);
		CPU_FREE(set);
		if (r < 0)
			return merr_sys(e, "sched_setaffinity", "", "failed to set the CPU affinity");
	}
	return 0;
}

/* The native architecture and the ones its kernel can also run, native last (as systemd). */
static const uint32_t local_archs[] = {
#if defined(__x86_64__) && defined(__ILP32__)
	SCMP_ARCH_X86, SCMP_ARCH_X86_64, SCMP_ARCH_X32,
#elif defined(__x86_64__)
	SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_X86_64,
#elif defined(__i386__)
	SCMP_ARCH_X86,
#elif defined(__aarch64__)
	SCMP_ARCH_ARM, SCMP_ARCH_AARCH64,
#elif defined(__arm__)
	SCMP_ARCH_ARM,
#elif defined(__powerpc64__) && __BYTE_ORDER == __LITTLE_ENDIAN
	SCMP_ARCH_PPC, SCMP_ARCH_PPC64, SCMP_ARCH_PPC64LE,
#elif defined(__s390x__)
	SCMP_ARCH_S390, SCMP_ARCH_S390X,
#elif defined(__riscv) && __riscv_xlen == 64
	SCMP_ARCH_RISCV64,
#else
	SCMP_ARCH_NATIVE,
#endif
};

static uint32_t action(int allow, int err)
{
	return allow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO((uint16_t)err);
}

static int load_one(const struct sec_filter *f, uint32_t arch, int native, struct merr *e)
{
	scmp_filter_ctx ctx = seccomp_init(action(f->default_allow, f->default_errno));
	int r;
	if (!ctx)
		return merr_set(e, ENOMEM, "seccomp_init", "", "failed to allocate a seccomp filter");
	if (arch != SCMP_ARCH_NATIVE && arch != seccomp_arch_native()) {
		if ((r = seccomp_arch_remove(ctx, seccomp_arch_native())) < 0 || (r = seccomp_arch_add(ctx, arch)) < 0) {
			seccomp_release(ctx);
			return merr_set(e, -r, "seccomp_arch_add", "", "failed to set up a seccomp filter for architecture 0x%x", arch);
		}
	}
	/* Each filter only speaks for its architecture; no NO_NEW_PRIVS behind our back. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0) {
		seccomp_release(ctx);
		return merr_set(e, -r, "seccomp_attr_set", "", "failed to configure a seccomp filter");
	}
	for (size_t i = 0; i < f->n_entries; i++) {
		const struct sec_entry *en = &f->entries[i];
		int nr = seccomp_syscall_resolve_name(en->name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to libseccomp: skipped */
		if (en->kind == SEC_RULE) {
			struct scmp_arg_cmp c[6];
			for (unsigned k = 0; k < en->n_conds; k++) {
				const struct sec_cond *sc = &en->conds[k];
				c[k] = (struct scmp_arg_cmp){ .arg = sc->arg,
					.op = sc->op == 0 ? SCMP_CMP_EQ : sc->op == 1 ? SCMP_CMP_LE : SCMP_CMP_MASKED_EQ,
					.datum_a = sc->op == 2 ? sc->mask : sc->value,
					.datum_b = sc->op == 2 ? sc->value : 0 };
			}
			r = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ERRNO((uint16_t)en->err), nr, en->n_conds, c);
		} else
			r = seccomp_rule_add_exact(ctx, action(en->kind == SEC_ALLOW, en->err), nr, 0);
		/* A call this architecture does not have, or cannot filter by argument (socketcall on
		 * x86), is skipped, as systemd does. */
		(void)r;
	}
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0 && (native || r == -EPERM || r == -EACCES))
		return merr_set(e, -r, "seccomp", "", "failed to load the seccomp filter for architecture 0x%x", arch);
	return 0;
}

int sec_seccomp_load(const struct sec *s, struct merr *e)
{
	for (size_t i = 0; i < s->n_filters; i++)
		for (size_t k = 0; k < ARRAY_SIZE(local_archs); k++) {
			int r = load_one(&s->filters[i], local_archs[k], k == ARRAY_SIZE(local_archs) - 1, e);
			if (r < 0)
				return r;
		}
	return 0;
}
