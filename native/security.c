/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "security.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"

#define BAD(...) merr_set(e, 0, "", "", "invalid spec: " __VA_ARGS__)

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
	static const struct {
		const char *tok;
		int op;
	} ops[] = { { "==", SEC_OP_EQ }, { "!=", SEC_OP_NE }, { "<=", SEC_OP_LE },
		    { ">=", SEC_OP_GE }, { "<", SEC_OP_LT },  { ">", SEC_OP_GT } };
	const char *p;
	uint64_t v;
	if (s[0] != 'a' || s[1] < '0' || s[1] > '5')
		return -EINVAL;
	c->arg = (unsigned)(s[1] - '0');
	c->mask = 0;
	p = s + 2;
	if (*p == '&') {
		c->op = SEC_OP_MASKED_EQ;
		if (parse_u64(p + 1, &p, &c->mask) < 0 || strncmp(p, "==", 2))
			return -EINVAL;
		p += 2;
	} else {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(ops); i++)
			if (!strncmp(p, ops[i].tok, strlen(ops[i].tok)))
				break;
		if (i == ARRAY_SIZE(ops))
			return -EINVAL;
		c->op = ops[i].op;
		p += strlen(ops[i].tok);
	}
	if (parse_u64(p, &p, &v) < 0 || *p)
		return -EINVAL;
	c->value = v;
	return 0;
}

/* ACTION: an errno number 0..4095, allow, kill, kill_process, trap or log. */
static int parse_action(const char *s, int *act, int *err)
{
	static const struct {
		const char *name;
		int act;
	} acts[] = { { "allow", SEC_ACT_ALLOW },
		     { "kill", SEC_ACT_KILL },
		     { "kill_process", SEC_ACT_KILL_PROCESS },
		     { "trap", SEC_ACT_TRAP },
		     { "log", SEC_ACT_LOG } };
	long v;
	*err = 0;
	for (size_t i = 0; i < ARRAY_SIZE(acts); i++)
		if (!strcmp(s, acts[i].name)) {
			*act = acts[i].act;
			return 0;
		}
	if (parse_long(s, 0, 4095, &v) < 0)
		return -EINVAL;
	*act = SEC_ACT_ERRNO;
	*err = (int)v;
	return 0;
}

/* seccomp_arch names (libseccomp's); a name the helper's libseccomp header lacks cannot be a
 * local architecture and is ignored. */
static const struct {
	const char *name;
	uint32_t arch;
} arch_names[] = {
	{ "x86", SCMP_ARCH_X86 },
	{ "x86_64", SCMP_ARCH_X86_64 },
	{ "x32", SCMP_ARCH_X32 },
	{ "arm", SCMP_ARCH_ARM },
	{ "aarch64", SCMP_ARCH_AARCH64 },
	{ "mips", SCMP_ARCH_MIPS },
	{ "mips64", SCMP_ARCH_MIPS64 },
	{ "mips64n32", SCMP_ARCH_MIPS64N32 },
	{ "mipsel", SCMP_ARCH_MIPSEL },
	{ "mipsel64", SCMP_ARCH_MIPSEL64 },
	{ "mipsel64n32", SCMP_ARCH_MIPSEL64N32 },
	{ "ppc", SCMP_ARCH_PPC },
	{ "ppc64", SCMP_ARCH_PPC64 },
	{ "ppc64le", SCMP_ARCH_PPC64LE },
	{ "s390", SCMP_ARCH_S390 },
	{ "s390x", SCMP_ARCH_S390X },
	{ "parisc", SCMP_ARCH_PARISC },
	{ "parisc64", SCMP_ARCH_PARISC64 },
	{ "riscv64", SCMP_ARCH_RISCV64 },
#ifdef SCMP_ARCH_LOONGARCH64
	{ "loongarch64", SCMP_ARCH_LOONGARCH64 },
#endif
#ifdef SCMP_ARCH_M68K
	{ "m68k", SCMP_ARCH_M68K },
#endif
#ifdef SCMP_ARCH_SH
	{ "sh", SCMP_ARCH_SH },
	{ "sheb", SCMP_ARCH_SHEB },
#endif
};

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
		if (parse_action(a[0], &f->default_act, &f->default_errno) < 0)
			return BAD("record %zu (\"%s\"): malformed DEFAULT (allow, kill, kill_process, trap, log or an errno number)", idx,
				   name);
		return 1;
	}
	if (!strcmp(name, "seccomp_arch")) {
		struct sec_filter *f = s->n_filters ? &s->filters[s->n_filters - 1] : NULL;
		if (!f)
			return BAD("record %zu (\"%s\"): no \"seccomp_filter\" before it", idx, name);
		if (f->has_arches || n < 1)
			return BAD("record %zu (\"%s\"): expected ARCH… (and only one such record per filter)", idx, name);
		if (!(f->arches = calloc(n, sizeof *f->arches)))
			return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
		f->has_arches = 1;
		for (size_t i = 0; i < n; i++) {
			if (!valid_name(a[i]))
				return BAD("record %zu (\"%s\"): malformed architecture \"%.64s\"", idx, name, a[i]);
			if (!strcmp(a[i], "native")) /* SCMP_ARCH_NATIVE (0): the helper's own */
				f->arches[f->n_arches++] = SCMP_ARCH_NATIVE;
			for (size_t k = 0; k < ARRAY_SIZE(arch_names); k++)
				if (!strcmp(a[i], arch_names[k].name))
					f->arches[f->n_arches++] = arch_names[k].arch;
		}
		return 1;
	}
	if (!strcmp(name, "seccomp_allow") || !strcmp(name, "seccomp_deny") || !strcmp(name, "seccomp_rule")) {
		int deny = name[8] == 'd', rule = name[8] == 'r';
		size_t first = (deny || rule) ? 1 : 0;
		if (!s->n_filters)
			return BAD("record %zu (\"%s\"): no \"seccomp_filter\" before it", idx, name);
		if (n < first + 1)
			return BAD("record %zu (\"%s\"): expected at least %zu arguments, got %zu", idx, name, first + 1, n);
		int err = 0, act = SEC_ACT_ERRNO;
		if (deny) {
			if (parse_long(a[0], 0, 4095, &v) < 0)
				return BAD("record %zu (\"%s\"): malformed ERRNO", idx, name);
			err = (int)v;
		}
		if (rule) {
			if (parse_action(a[0], &act, &err) < 0)
				return BAD(
					"record %zu (\"%s\"): malformed ACTION (an errno number, allow, kill, kill_process, trap or log)",
					idx, name);
			if (n > 8 || !valid_name(a[1]))
				return BAD("record %zu (\"%s\"): expected ACTION NAME and at most 6 conditions", idx, name);
			struct sec_entry *en = add_entry(s);
			if (!en)
				return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
			en->kind = SEC_RULE;
			en->act = act;
			en->err = err;
			en->name = a[1];
			if (n > 2 && !(en->conds = calloc(n - 2, sizeof *en->conds)))
				return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the spec");
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
			en->act = deny ? SEC_ACT_ERRNO : SEC_ACT_ALLOW;
			en->err = err;
			en->name = a[i];
		}
		return 1;
	}
	if (!strcmp(name, "seccomp_cache")) {
		if (n != 1 || s->cache_dir || a[0][0] != '/' || strstr(a[0], "/../") || strlen(a[0]) > 3000)
			return BAD("record %zu (\"%s\"): expected one HPATH (and only one such record)", idx, name);
		s->cache_dir = a[0];
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

static void free_entries(struct sec_filter *f)
{
	for (size_t j = 0; j < f->n_entries; j++)
		free(f->entries[j].conds);
	free(f->entries);
	f->entries = NULL;
	f->n_entries = 0;
}

void sec_free(struct sec *s)
{
	for (size_t i = 0; i < s->n_filters; i++) {
		free_entries(&s->filters[i]);
		free(s->filters[i].arches);
	}
	free(s->filters);
	free(s->cpus);
	free(s->sets);
	free(s->progs);
	free(s->blob);
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
	SCMP_ARCH_X86,
	SCMP_ARCH_X86_64,
	SCMP_ARCH_X32,
#elif defined(__x86_64__)
	SCMP_ARCH_X86,
	SCMP_ARCH_X32,
	SCMP_ARCH_X86_64,
#elif defined(__i386__)
	SCMP_ARCH_X86,
#elif defined(__aarch64__)
	SCMP_ARCH_ARM,
	SCMP_ARCH_AARCH64,
#elif defined(__arm__)
	SCMP_ARCH_ARM,
#elif defined(__powerpc64__) && __BYTE_ORDER == __LITTLE_ENDIAN
	SCMP_ARCH_PPC,
	SCMP_ARCH_PPC64,
	SCMP_ARCH_PPC64LE,
#elif defined(__s390x__)
	SCMP_ARCH_S390,
	SCMP_ARCH_S390X,
#elif defined(__riscv) && __riscv_xlen == 64
	SCMP_ARCH_RISCV64,
#else
	SCMP_ARCH_NATIVE,
#endif
};

/* ---- libseccomp, loaded only when a filter has to be compiled ---- */

/* The supervisor maps libseccomp (dlopen) only on a seccomp_cache miss, or without a cache; a
 * cache hit never loads it. It is loaded in the supervisor before the clone, never in the child
 * (whose file system is the container's by then). The path comes from pkg-config's libdir at
 * build time (Makefile), the soname when that file is missing. */
#ifndef LIBSECCOMP_PATH
#define LIBSECCOMP_PATH "libseccomp.so.2"
#endif
#define LIBSECCOMP_SONAME "libseccomp.so.2"

static struct {
	void *h;
	__typeof__(seccomp_init) *init;
	__typeof__(seccomp_release) *release;
	__typeof__(seccomp_arch_native) *arch_native;
	__typeof__(seccomp_arch_add) *arch_add;
	__typeof__(seccomp_arch_remove) *arch_remove;
	__typeof__(seccomp_attr_set) *attr_set;
	__typeof__(seccomp_syscall_resolve_name) *resolve_name;
	__typeof__(seccomp_rule_add_exact_array) *rule_add_array;
	__typeof__(seccomp_load) *load;
	__typeof__(seccomp_export_bpf) *export_bpf;
} scmp;

unsigned sec_seccomp_lib_uses;

/* The file LIBSECCOMP_PATH names, when it is there (absolute path, stat() succeeds). */
static int lib_stat(const char *path, struct stat *st)
{
	return path[0] == '/' && stat(path, st) == 0 && S_ISREG(st->st_mode) ? 0 : -1;
}

static int lib_open(struct merr *e)
{
	struct stat st;
	sec_seccomp_lib_uses++;
	if (scmp.h)
		return 0;
	const char *path = lib_stat(LIBSECCOMP_PATH, &st) == 0 ? LIBSECCOMP_PATH : LIBSECCOMP_SONAME;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		return merr_set(e, ELIBACC, "dlopen", path, "failed to load libseccomp (%s): %.300s", path, why ? why : "?");
	}
#define SYM(field, name)                                                                                                \
	if (!(*(void **)&scmp.field = dlsym(h, name))) {                                                                \
		dlclose(h);                                                                                             \
		memset(&scmp, 0, sizeof scmp);                                                                          \
		return merr_set(e, ELIBBAD, "dlsym", path, "failed to load libseccomp (%s): no symbol %s", path, name); \
	}
	SYM(init, "seccomp_init");
	SYM(release, "seccomp_release");
	SYM(arch_native, "seccomp_arch_native");
	SYM(arch_add, "seccomp_arch_add");
	SYM(arch_remove, "seccomp_arch_remove");
	SYM(attr_set, "seccomp_attr_set");
	SYM(resolve_name, "seccomp_syscall_resolve_name");
	SYM(rule_add_array, "seccomp_rule_add_exact_array");
	SYM(load, "seccomp_load");
	SYM(export_bpf, "seccomp_export_bpf");
#undef SYM
	scmp.h = h;
	return 0;
}

/* The identity of the libseccomp that a compile would load, without loading it: stat() of the
 * file (device, inode, size, mtime); when LIBSECCOMP_PATH is missing, the one the soname loads
 * (loaded for that). 0, or -1 when unknown. */
static int lib_identity(struct stat *st)
{
	if (lib_stat(LIBSECCOMP_PATH, st) == 0)
		return 0;
	struct merr e = { 0 };
	struct link_map *lm = NULL;
	if (lib_open(&e) < 0 || dlinfo(scmp.h, RTLD_DI_LINKMAP, &lm) < 0 || !lm || !lm->l_name)
		return -1;
	return lib_stat(lm->l_name, st);
}

static uint32_t action(int act, int err)
{
	switch (act) {
	case SEC_ACT_ALLOW: return SCMP_ACT_ALLOW;
	case SEC_ACT_KILL: return SCMP_ACT_KILL_THREAD;
	case SEC_ACT_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
	case SEC_ACT_TRAP: return SCMP_ACT_TRAP;
	case SEC_ACT_LOG: return SCMP_ACT_LOG;
	default: return SCMP_ACT_ERRNO((uint16_t)err);
	}
}

static int speaks_for(const struct sec_filter *f, uint32_t arch)
{
	if (!f->has_arches)
		return 1;
	for (size_t i = 0; i < f->n_arches; i++)
		if (f->arches[i] == arch || (f->arches[i] == SCMP_ARCH_NATIVE && arch == local_archs[ARRAY_SIZE(local_archs) - 1]))
			return 1;
	return 0;
}

static enum scmp_compare cmp_op(int op)
{
	switch (op) {
	case SEC_OP_EQ: return SCMP_CMP_EQ;
	case SEC_OP_LE: return SCMP_CMP_LE;
	case SEC_OP_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
	case SEC_OP_NE: return SCMP_CMP_NE;
	case SEC_OP_LT: return SCMP_CMP_LT;
	case SEC_OP_GE: return SCMP_CMP_GE;
	default: return SCMP_CMP_GT;
	}
}

/* A libseccomp context for filter F on ARCH (NULL and *e set on failure). */
static scmp_filter_ctx build_ctx(const struct sec_filter *f, uint32_t arch, struct merr *e)
{
	/* An architecture the filter's seccomp_arch does not list: every call killed (as libseccomp's
	 * default bad-architecture action in one multi-architecture filter). */
	int listed = speaks_for(f, arch);
	scmp_filter_ctx ctx = scmp.init(listed ? action(f->default_act, f->default_errno) : SCMP_ACT_KILL_THREAD);
	int r;
	if (!ctx) {
		merr_set(e, ENOMEM, "seccomp_init", "", "failed to allocate a seccomp filter");
		return NULL;
	}
	if (arch != SCMP_ARCH_NATIVE && arch != scmp.arch_native()) {
		if ((r = scmp.arch_remove(ctx, scmp.arch_native())) < 0 || (r = scmp.arch_add(ctx, arch)) < 0) {
			scmp.release(ctx);
			merr_set(e, -r, "seccomp_arch_add", "", "failed to set up a seccomp filter for architecture 0x%x", arch);
			return NULL;
		}
	}
	/* Each filter only speaks for its architecture; no NO_NEW_PRIVS behind our back. */
	if ((r = scmp.attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW)) < 0 || (r = scmp.attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0) {
		scmp.release(ctx);
		merr_set(e, -r, "seccomp_attr_set", "", "failed to configure a seccomp filter");
		return NULL;
	}
	for (size_t i = 0; listed && i < f->n_entries; i++) {
		const struct sec_entry *en = &f->entries[i];
		int nr = scmp.resolve_name(en->name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to libseccomp: skipped */
		if (en->kind == SEC_RULE) {
			struct scmp_arg_cmp c[6];
			for (unsigned k = 0; k < en->n_conds; k++) {
				const struct sec_cond *sc = &en->conds[k];
				int masked = sc->op == SEC_OP_MASKED_EQ;
				c[k] = (struct scmp_arg_cmp){ .arg = sc->arg,
							      .op = cmp_op(sc->op),
							      .datum_a = masked ? sc->mask : sc->value,
							      .datum_b = masked ? sc->value : 0 };
			}
			r = scmp.rule_add_array(ctx, action(en->act, en->err), nr, en->n_conds, c);
		} else
			r = scmp.rule_add_array(ctx, action(en->act, en->err), nr, 0, NULL);
		/* A call this architecture does not have, or cannot filter by argument (socketcall on
		 * x86), is skipped, as systemd does; so is a rule whose action is the filter's default
		 * (libseccomp refuses it: EACCES), which changes nothing. */
		(void)r;
	}
	return ctx;
}

static int load_fail(int r, uint32_t arch, int native, struct merr *e)
{
	if (r < 0 && (native || r == -EPERM || r == -EACCES))
		return merr_set(e, -r, "seccomp", "", "failed to load the seccomp filter for architecture 0x%x", arch);
	return 0;
}

static int load_one(const struct sec_filter *f, uint32_t arch, int native, struct merr *e)
{
	scmp_filter_ctx ctx = build_ctx(f, arch, e);
	if (!ctx)
		return e->err > 0 ? -e->err : -EINVAL;
	int r = scmp.load(ctx);
	scmp.release(ctx);
	return load_fail(r, arch, native, e);
}

int sec_seccomp_load(const struct sec *s, struct merr *e)
{
	if (s->prepared) {
		/* What libseccomp's seccomp_load does with our attributes: no flags, no prctl. */
		for (size_t i = 0; i < s->n_progs; i++) {
			const struct sec_prog *p = &s->progs[i];
			struct sock_fprog prog = { .len = (unsigned short)p->len, .filter = (struct sock_filter *)p->insns };
			int r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -errno : 0;
			if ((r = load_fail(r, p->arch, p->native, e)) < 0)
				return r;
		}
		return 0;
	}
	if (s->n_filters && !scmp.h) /* sec_seccomp_prepare loads it; never here, in the child */
		return merr_set(e, ELIBACC, "seccomp", "", "failed to load the seccomp filters: libseccomp was not loaded");
	for (size_t i = 0; i < s->n_filters; i++)
		for (size_t k = 0; k < ARRAY_SIZE(local_archs); k++) {
			int r = load_one(&s->filters[i], local_archs[k], k == ARRAY_SIZE(local_archs) - 1, e);
			if (r < 0)
				return r;
		}
	return 0;
}

/* ---- seccomp_cache: compiled programs, compiled once per policy/helper/libseccomp/kernel ---- */

#define CACHE_MAGIC "MACHBPF\0"
#define CACHE_VERSION 1
#define CACHE_MAX (4u << 20)

struct cache_hdr {
	char magic[8];
	uint32_t version;
	uint32_t count;
	uint8_t hash[32]; /* the cache key (also the file's name) */
	uint8_t sum[32];  /* SHA-256 of what follows the header */
};
struct cache_ent {
	uint32_t arch;
	uint32_t len;
};
_Static_assert(sizeof(struct cache_hdr) % sizeof(struct sock_filter) == 0, "header alignment");
_Static_assert(sizeof(struct cache_ent) % sizeof(struct sock_filter) == 0, "entry alignment");

static int build_id_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct sha256 *h = ((void **)data)[0];
	int *found = ((void **)data)[1];
	(void)size;
	/* the first object is the executable itself */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const void *)p;
			const char *name = p + sizeof *n, *desc = name + ((n->n_namesz + 3) & ~3u);
			if (desc + n->n_descsz > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
				sha256_update(h, desc, n->n_descsz);
				*found = 1;
				return 1;
			}
			p = desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 1;
}

static void hash_u64(struct sha256 *h, uint64_t v)
{
	sha256_update(h, &v, sizeof v);
}

static void hash_str(struct sha256 *h, const char *s)
{
	size_t l = strlen(s);
	hash_u64(h, l);
	sha256_update(h, s, l);
}

/* Everything the programs depend on, known without loading libseccomp: the helper binary (its
 * build id), the libseccomp it was built against (SCMP_VER_*) and the one a compile loads (its
 * file's device, inode, size and mtime), the kernel, the architectures and the filters in order.
 * libseccomp's API level (what it finds the kernel supports) follows from the library and the
 * kernel. 0, or -1 without a build id or without libseccomp's file. */
static int cache_key(const struct sec *s, uint8_t out[32])
{
	struct sha256 h;
	struct stat st;
	int found = 0;
	void *data[2] = { &h, &found };
	sha256_init(&h);
	hash_str(&h, "machina-helper seccomp cache 3");
	dl_iterate_phdr(build_id_cb, data);
	if (!found || lib_identity(&st) < 0)
		return -1;
	hash_u64(&h, SCMP_VER_MAJOR);
	hash_u64(&h, SCMP_VER_MINOR);
	hash_u64(&h, SCMP_VER_MICRO);
	hash_u64(&h, (uint64_t)st.st_dev);
	hash_u64(&h, (uint64_t)st.st_ino);
	hash_u64(&h, (uint64_t)st.st_size);
	hash_u64(&h, (uint64_t)st.st_mtim.tv_sec);
	hash_u64(&h, (uint64_t)st.st_mtim.tv_nsec);
	struct utsname u;
	if (uname(&u) == 0) {
		hash_str(&h, u.release);
		hash_str(&h, u.version);
		hash_str(&h, u.machine);
	}
	hash_u64(&h, ARRAY_SIZE(local_archs));
	for (size_t k = 0; k < ARRAY_SIZE(local_archs); k++)
		hash_u64(&h, local_archs[k]);
	hash_u64(&h, s->n_filters);
	for (size_t i = 0; i < s->n_filters; i++) {
		const struct sec_filter *f = &s->filters[i];
		hash_u64(&h, (uint64_t)f->default_act);
		hash_u64(&h, (uint64_t)f->default_errno);
		hash_u64(&h, (uint64_t)f->has_arches);
		hash_u64(&h, f->n_arches);
		for (size_t k = 0; k < f->n_arches; k++)
			hash_u64(&h, f->arches[k]);
		hash_u64(&h, f->n_entries);
		for (size_t j = 0; j < f->n_entries; j++) {
			const struct sec_entry *en = &f->entries[j];
			hash_u64(&h, en->kind);
			hash_u64(&h, (uint64_t)en->act);
			hash_u64(&h, (uint64_t)en->err);
			hash_str(&h, en->name);
			hash_u64(&h, en->n_conds);
			for (unsigned k = 0; k < en->n_conds; k++) {
				hash_u64(&h, en->conds[k].arg);
				hash_u64(&h, (uint64_t)en->conds[k].op);
				hash_u64(&h, en->conds[k].value);
				hash_u64(&h, en->conds[k].mask);
			}
		}
	}
	sha256_final(&h, out);
	return 0;
}

static int is_native(uint32_t arch)
{
	return arch == local_archs[ARRAY_SIZE(local_archs) - 1];
}

/* Point s->progs into a cache image (header, entries, programs); 0, or -1 when malformed. */
static int use_blob(struct sec *s, void *blob, size_t size, const uint8_t key[32])
{
	const struct cache_hdr *h = blob;
	if (size < sizeof *h || size % sizeof(struct sock_filter) || memcmp(h->magic, CACHE_MAGIC, 8) || h->version != CACHE_VERSION ||
	    memcmp(h->hash, key, 32) || h->count > 4096)
		return -1;
	size_t off = sizeof *h + (size_t)h->count * sizeof(struct cache_ent);
	if (off > size)
		return -1;
	uint8_t sum[32];
	struct sha256 c;
	sha256_init(&c);
	sha256_update(&c, h + 1, size - sizeof *h);
	sha256_final(&c, sum);
	if (memcmp(sum, h->sum, 32))
		return -1;
	const struct cache_ent *ent = (const void *)(h + 1);
	struct sec_prog *progs = calloc(h->count ? h->count : 1, sizeof *progs);
	if (!progs)
		return -1;
	for (uint32_t i = 0; i < h->count; i++) {
		if (!ent[i].len || ent[i].len > BPF_MAXINSNS || ent[i].len > (size - off) / sizeof(struct sock_filter)) {
			free(progs);
			return -1;
		}
		progs[i] = (struct sec_prog){ ent[i].arch, ent[i].len, (char *)blob + off, is_native(ent[i].arch) };
		off += ent[i].len * sizeof(struct sock_filter);
	}
	if (off != size) {
		free(progs);
		return -1;
	}
	free(s->progs);
	free(s->blob);
	s->progs = progs;
	s->n_progs = h->count;
	s->blob = blob;
	s->prepared = 1;
	return 0;
}

/* Compile every filter for every architecture into a cache image (malloc'd). */
static int compile_blob(const struct sec *s, const uint8_t key[32], void **blobp, size_t *sizep, struct merr *e)
{
	size_t max = s->n_filters * ARRAY_SIZE(local_archs);
	struct cache_ent *ent = calloc(max ? max : 1, sizeof *ent);
	uint32_t count = 0;
	if (!ent)
		return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the seccomp filters");
	_cleanup_close_ int fd = memfd_create("machina-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		free(ent);
		return merr_sys(e, "memfd_create", "", "failed to compile the seccomp filters");
	}
	off_t pos = 0;
	for (size_t i = 0; i < s->n_filters; i++)
		for (size_t k = 0; k < ARRAY_SIZE(local_archs); k++) {
			uint32_t arch = local_archs[k];
			scmp_filter_ctx ctx = build_ctx(&s->filters[i], arch, e);
			if (!ctx) {
				free(ent);
				return e->err > 0 ? -e->err : -EINVAL;
			}
			int r = scmp.export_bpf(ctx, fd);
			scmp.release(ctx);
			off_t now = lseek(fd, 0, SEEK_CUR);
			if (r < 0 || now < pos || (now - pos) % sizeof(struct sock_filter) || now == pos ||
			    (size_t)(now - pos) / sizeof(struct sock_filter) > BPF_MAXINSNS) {
				/* as a failed load: fatal for the native architecture only */
				if (is_native(arch)) {
					free(ent);
					return merr_set(e, r < 0 ? -r : EINVAL, "seccomp_export_bpf", "",
							"failed to compile the seccomp filter for architecture 0x%x", arch);
				}
				if (now > pos && ftruncate(fd, pos) == 0)
					(void)lseek(fd, pos, SEEK_SET);
				continue;
			}
			ent[count++] = (struct cache_ent){ arch, (uint32_t)((size_t)(now - pos) / sizeof(struct sock_filter)) };
			pos = now;
		}
	size_t head = sizeof(struct cache_hdr) + count * sizeof *ent, size = head + (size_t)pos;
	char *blob = malloc(size);
	if (!blob) {
		free(ent);
		return merr_set(e, ENOMEM, "malloc", "", "failed to allocate memory for the seccomp filters");
	}
	struct cache_hdr h = { .version = CACHE_VERSION, .count = count };
	memcpy(h.magic, CACHE_MAGIC, 8);
	memcpy(h.hash, key, 32);
	memcpy(blob + sizeof h, ent, count * sizeof *ent);
	free(ent);
	for (size_t got = 0; got < (size_t)pos;) {
		ssize_t n = pread(fd, blob + head + got, (size_t)pos - got, (off_t)got);
		if (n <= 0) {
			free(blob);
			return merr_sys(e, "pread", "", "failed to read the compiled seccomp filters");
		}
		got += (size_t)n;
	}
	struct sha256 c;
	sha256_init(&c);
	sha256_update(&c, blob + sizeof h, size - sizeof h);
	sha256_final(&c, h.sum);
	memcpy(blob, &h, sizeof h);
	*blobp = blob;
	*sizep = size;
	return 0;
}

/* The cache directory, created 0700 when missing; -1 unless it is root's and closed to others. */
static int cache_dir_open(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		char buf[3100];
		snprintf(buf, sizeof buf, "%s", dir);
		for (char *p = buf + 1; *p; p++)
			if (*p == '/') {
				*p = 0;
				(void)mkdir(buf, 0755);
				*p = '/';
			}
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read NAME in DIRFD: a regular file of root's that nobody else can write, of a plausible size. */
static int cache_read(int dirfd, const char *name, void **blobp, size_t *sizep)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) || st.st_size <= 0 ||
	    st.st_size > CACHE_MAX || st.st_size % sizeof(struct sock_filter))
		return -1;
	size_t size = (size_t)st.st_size;
	char *blob = malloc(size);
	if (!blob)
		return -1;
	for (size_t got = 0; got < size;) {
		ssize_t n = read(fd, blob + got, size - got);
		if (n <= 0) {
			free(blob);
			return -1;
		}
		got += (size_t)n;
	}
	*blobp = blob;
	*sizep = size;
	return 0;
}

/* Store atomically: a 0600 temporary file, renamed over NAME. Failures only cost the next start. */
static void cache_write(int dirfd, const char *name, const void *blob, size_t size)
{
	char tmp[128];
	snprintf(tmp, sizeof tmp, ".%s.%d.tmp", name, (int)getpid());
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int ok = fchmod(fd, 0600) == 0 && write_all(fd, blob, size) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || renameat(dirfd, tmp, dirfd, name) < 0)
		(void)unlinkat(dirfd, tmp, 0);
}

/* Bound the cache: past CACHE_KEEP files (every rebuilt helper, kernel or policy adds one), all
 * but KEEP are removed (they are compiled again when needed), and left-over temporary files too. */
#define CACHE_KEEP 64
static void cache_prune(int dirfd, const char *keep)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	if (n > CACHE_KEEP) {
		rewinddir(d);
		while ((de = readdir(d)))
			if (strcmp(de->d_name, keep) && strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
			    (strstr(de->d_name, ".bpf") || strstr(de->d_name, ".tmp")))
				(void)unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

int sec_seccomp_prepare(struct sec *s, struct merr *e)
{
	uint8_t key[32] = { 0 };
	char name[80];
	void *blob = NULL;
	size_t size = 0;
	if (!s->n_filters || s->prepared)
		return s->prepared;
	if (!s->cache_dir) { /* the child compiles them: libseccomp is loaded now, before the clone */
		int r = lib_open(e);
		return r < 0 ? r : 0;
	}
	int keyed = cache_key(s, key) == 0;
	_cleanup_close_ int dirfd = keyed ? cache_dir_open(s->cache_dir) : -1;
	if (dirfd >= 0) {
		for (int i = 0; i < 32; i++)
			snprintf(name + 2 * i, 3, "%02x", key[i]);
		strcpy(name + 64, ".bpf");
		if (cache_read(dirfd, name, &blob, &size) == 0) {
			if (use_blob(s, blob, size, key) == 0)
				return 1;
			free(blob); /* corrupt or stale: compiled again and replaced */
		}
	}
	int r = lib_open(e);
	if (r < 0)
		return r;
	r = compile_blob(s, key, &blob, &size, e);
	if (r < 0)
		return r;
	if (use_blob(s, blob, size, key) < 0) {
		free(blob);
		return merr_set(e, EINVAL, "seccomp_export_bpf", "", "failed to compile the seccomp filters");
	}
	if (dirfd >= 0) {
		cache_write(dirfd, name, blob, size);
		cache_prune(dirfd, name);
	}
	return 0;
}

void sec_seccomp_shed(struct sec *s)
{
	if (!s->prepared)
		return;
	for (size_t i = 0; i < s->n_filters; i++)
		free_entries(&s->filters[i]);
}
