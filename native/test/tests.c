/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the helper: spec parser, error formatting, path resolution, setup ops.
 * Output: "ok N - name" / "not ok N - name", then "N passed, N failed". */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "error.h"
#include "binds.h"
#include "conlog.h"
#include "devices.h"
#include "util.h"
#include "hooks.h"
#include "hostmount.h"
#include "imagelock.h"
#include "mounts.h"
#include "resolve.h"
#include "selinux.h"
#include "sha256.h"
#include "spec.h"
#include "userns.h"

static int n_test, n_pass, n_fail;

static void check(int cond, const char *fmt, ...)
{
	va_list ap;
	n_test++;
	printf("%sok %d - ", cond ? "" : "not ", n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (cond)
		n_pass++;
	else
		n_fail++;
	fflush(stdout);
}

/* ---- spec builder ---- */

struct sb {
	char buf[1 << 16];
	size_t len;
};

static void sb_str(struct sb *b, const char *s)
{
	size_t l = strlen(s) + 1;
	memcpy(b->buf + b->len, s, l);
	b->len += l;
}

/* rec(b, "name", n, args...) */
static void rec(struct sb *b, const char *name, int n, ...)
{
	char num[16];
	va_list ap;
	sb_str(b, name);
	snprintf(num, sizeof num, "%d", n);
	sb_str(b, num);
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		sb_str(b, va_arg(ap, const char *));
	va_end(ap);
}

static void good_body(struct sb *b)
{
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	sb_str(b, "1");
	rec(b, "prog", 1, "machina-nspawn");
	rec(b, "machine", 1, "m1");
	rec(b, "root", 1, "/var/lib/machines/m1");
	rec(b, "namespaces", 5, "mnt", "pid", "uts", "ipc", "cgroup");
	rec(b, "hostname", 1, "m1");
	rec(b, "status_fd", 1, "7");
	rec(b, "registry", 1, "/run/machina/machines/m1");
	rec(b, "state_json", 1, "\"name\":\"m1\"");
	rec(b, "cgroup", 1, "/sys/fs/cgroup/machine.slice/m1");
	rec(b, "cgroup", 1, "/sys/fs/cgroup/pids/m1");
	rec(b, "kill_signal", 1, "37");
	rec(b, "boot", 1, "1");
	rec(b, "on_reboot", 1, "exit133");
	rec(b, "notify_ready", 1, "1");
	rec(b, "notify_forward", 1, "@/org/x");
	rec(b, "console", 1, "read-only");
	rec(b, "console_opost", 1, "0");
	rec(b, "mount", 6, "proc", "/proc", "proc", "14", "", "dir");
	rec(b, "mount", 6, "/srv", "/srv", "", "ro,bind,rec", "", "optional");
	rec(b, "rebind", 3, "/proc/sys", "15", "1");
	rec(b, "mkdir", 2, "/run/host", "0755");
	rec(b, "mknod", 4, "/dev/null", "020666", "1", "3");
	rec(b, "symlink", 2, "pts/ptmx", "/dev/ptmx");
	rec(b, "write", 3, "/etc/hostname", "0644", "m1\n");
	rec(b, "mask", 1, "/proc/kcore");
	rec(b, "cgroupns", 0);
	rec(b, "notify", 1, "/run/host/notify");
	rec(b, "copy", 3, "/etc/localtime", "/etc/localtime", "0644");
	rec(b, "remove", 1, "/etc/resolv.conf");
	rec(b, "quiet", 1, "0");
	rec(b, "env", 2, "container=machina", "PATH=/bin");
	rec(b, "chdir", 1, "/root");
	rec(b, "caps_bounding", 1, "0x3fff");
	rec(b, "caps_ambient", 1, "1");
	rec(b, "rlimit", 3, "7", "1024", "infinity");
	rec(b, "no_new_privs", 1, "1");
	rec(b, "user", 4, "1000", "1000", "5", "100");
	rec(b, "as_pid2", 1, "1");
	rec(b, "exec", 2, "/sbin/init", "init");
	rec(b, "exec", 2, "sh", "-sh");
	rec(b, "args", 2, "a b", "");
}

static int parse(struct sb *b, struct spec *s, struct merr *e)
{
	char *copy = malloc(b->len ? b->len : 1);
	memcpy(copy, b->buf, b->len);
	memset(e, 0, sizeof *e);
	return spec_parse(s, copy, b->len, e);
}

/* Expect a parse failure whose message contains needle. */
static void bad(struct sb *b, const char *needle, const char *name)
{
	struct spec s;
	struct merr e;
	int r = parse(b, &s, &e);
	int ok = r < 0 && strstr(e.msg, needle) != NULL;
	check(ok, "spec rejects %s", name);
	if (!ok)
		printf("#   r=%d msg=\"%s\" (wanted \"%s\")\n", r, e.msg, needle);
}

/* The header and "root" only (no "namespaces", no "exec"), without "end". */
static void hdr_body(struct sb *b)
{
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	sb_str(b, "1");
	rec(b, "root", 1, "/r");
}

/* The smallest valid spec (root, namespaces mnt pid, exec), without "end". */
static void min_body(struct sb *b)
{
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "exec", 2, "/bin/sh", "sh");
}

/* Records from a list: "name", args..., NULL, "name", ..., NULL, then NULL. */
static void recs(struct sb *b, const char *const *items)
{
	for (const char *const *p = items; *p;) {
		const char *name = *p++;
		char num[16];
		int n = 0;
		while (p[n])
			n++;
		sb_str(b, name);
		snprintf(num, sizeof num, "%d", n);
		sb_str(b, num);
		for (int i = 0; i < n; i++)
			sb_str(b, p[i]);
		p += n + 1;
	}
}

/* A spec that must be refused: a body, these records, "end"; the message must contain needle. */
struct bad_spec {
	void (*body)(struct sb *);
	const char *recs[32]; /* as recs() */
	const char *needle;
	const char *what; /* NULL: "a malformed "NAME" (needle)" */
};

static void bad_specs(struct sb *b, const struct bad_spec *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char what[128];
		t[i].body(b);
		recs(b, t[i].recs);
		rec(b, "end", 0);
		if (t[i].what)
			snprintf(what, sizeof what, "%s", t[i].what);
		else
			snprintf(what, sizeof what, "a malformed \"%s\" (%s)", t[i].recs[0], t[i].needle);
		bad(b, t[i].needle, what);
	}
}
#define BAD_SPECS(b, t) bad_specs((b), (t), sizeof(t) / sizeof((t)[0]))

static void test_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;

	good_body(b);
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0, "spec: full good spec parses%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		check(!strcmp(s.prog, "machina-nspawn") && !strcmp(s.machine, "m1") && !strcmp(s.root, "/var/lib/machines/m1"),
		      "spec: prog, machine, root");
		check(s.clone_flags == (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) && s.ns_cgroup,
		      "spec: namespaces (cgroup not in clone flags)");
		check(s.status_fd == 7 && s.kill_signal == 37 && s.boot == 1 && s.on_reboot_exit133 == 1 && s.notify_ready == 1 &&
			      s.console == CONSOLE_READ_ONLY && s.console_opost == 0,
		      "spec: scalar supervisor records");
		check(s.n_cgroups == 2 && !strcmp(s.cgroups[1], "/sys/fs/cgroup/pids/m1"), "spec: repeated cgroup");
		check(s.n_ops == 12, "spec: 12 setup ops in order (got %zu)", s.n_ops);
		check(s.ops[0].kind == OP_MOUNT && s.ops[0].flags == 14 && s.ops[0].data == NULL && s.ops[0].create == CREATE_DIR &&
			      !strcmp(s.ops[0].fstype, "proc"),
		      "spec: mount op with decimal flags, empty DATA = NULL");
		check(s.ops[1].flags == (MS_RDONLY | MS_BIND | MS_REC) && s.ops[1].fstype == NULL && s.ops[1].create == CREATE_OPTIONAL,
		      "spec: mount op with symbolic flags");
		check(s.ops[4].kind == OP_MKNOD && s.ops[4].mode == 020666 && s.ops[4].major == 1 && s.ops[4].minor == 3, "spec: mknod op");
		check(s.ops[8].kind == OP_CGROUPNS && s.has_cgroupns_op && s.ops[9].kind == OP_NOTIFY, "spec: cgroupns and notify ops");
		check(s.ops[10].kind == OP_COPY && !strcmp(s.ops[10].src, "/etc/localtime") && !strcmp(s.ops[10].path, "/etc/localtime") &&
			      s.ops[10].mode == 0644,
		      "spec: copy op (HPATH, CPATH, MODE)");
		check(s.ops[11].kind == OP_REMOVE && !strcmp(s.ops[11].path, "/etc/resolv.conf"), "spec: remove op");
		check(s.quiet == 0, "spec: quiet 0");
		check(s.n_env == 2 && s.env[2] == NULL && !strcmp(s.env[1], "PATH=/bin"), "spec: env NULL-terminated");
		check(s.caps_bounding == 0x3fff && s.caps_ambient == 1, "spec: caps");
		check(s.n_rlimits == 1 && s.rlimits[0].res == 7 && s.rlimits[0].soft == 1024 && s.rlimits[0].hard == RLIM_INFINITY,
		      "spec: rlimit with infinity");
		check(s.has_user && s.uid == 1000 && s.gid == 1000 && s.n_groups == 2 && s.groups[1] == 100, "spec: user");
		check(s.n_execs == 2 && !strcmp(s.execs[1].path, "sh") && !strcmp(s.execs[1].argv0, "-sh"), "spec: exec candidates");
		check(s.n_args == 2 && !strcmp(s.args[0], "a b") && !strcmp(s.args[1], "") && s.args[2] == NULL,
		      "spec: args (empty argument kept)");
		check(!strcmp(g_prog, "machina-nspawn"), "spec: prog becomes the message prefix");
		spec_free(&s);
	}

	/* minimal spec */
	min_body(b);
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0 && s.kill_signal == SIGKILL && s.console == CONSOLE_PIPE && s.status_fd == -1 && s.env && !s.env[0] && s.n_args == 0 &&
		      s.quiet == 1,
	      "spec: minimal spec gets defaults");
	if (r == 0)
		spec_free(&s);

	/* console_log: parsed; needs console pipe or passive */
	min_body(b);
	rec(b, "console_log", 3, "/run/m.log", "1048576", "3");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0 && s.console_log && !strcmp(s.console_log, "/run/m.log") && s.console_log_max == 1048576 && s.console_log_keep == 3 &&
		      s.console_log_wfd == -1,
	      "spec: console_log HPATH MAXBYTES KEEP");
	if (r == 0)
		spec_free(&s);

	/* mntns and pidns instead of mnt and pid; a hostname in a joined UTS namespace */
	hdr_body(b);
	rec(b, "namespaces", 2, "uts", "ipc");
	rec(b, "mntns", 1, "/proc/42/ns/mnt");
	rec(b, "pidns", 1, "/proc/42/ns/pid_for_children");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0 && !(s.clone_flags & (CLONE_NEWNS | CLONE_NEWPID)) && !strcmp(s.mntns_path, "/proc/42/ns/mnt") &&
		      !strcmp(s.pidns_path, "/proc/42/ns/pid_for_children"),
	      "spec: mntns and pidns instead of mnt and pid%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0)
		spec_free(&s);
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "utsns", 1, "/run/uts");
	rec(b, "hostname", 1, "h");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0 && !strcmp(s.hostname, "h"), "spec: a hostname with utsns (set in the joined namespace)");
	if (r == 0)
		spec_free(&s);

	/* root_propagation: one propagation type, maybe with rec (decimal or names) */
	{
		static const struct {
			const char *flags;
			unsigned long want;
		} props[] = { { "1048576", MS_SHARED },
			      { "slave", MS_SLAVE },
			      { "private,rec", MS_PRIVATE | MS_REC },
			      { "unbindable", MS_UNBINDABLE } };
		for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
			min_body(b);
			rec(b, "root_propagation", 1, props[i].flags);
			rec(b, "end", 0);
			r = parse(b, &s, &e);
			check(r == 0 && s.root_propagation == props[i].want, "spec: root_propagation %s", props[i].flags);
			if (r == 0)
				spec_free(&s);
		}
		min_body(b);
		rec(b, "end", 0);
		r = parse(b, &s, &e);
		check(r == 0 && s.root_propagation == 0, "spec: no root_propagation = 0 (the root is left as set up)");
		if (r == 0)
			spec_free(&s);
	}

	b->len = 0;
	sb_str(b, "MACHINA-SPEK");
	sb_str(b, "1");
	bad(b, "bad header", "a bad header");
	b->len = 0;
	bad(b, "bad header", "an empty spec");
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	sb_str(b, "2");
	rec(b, "end", 0);
	bad(b, "unsupported version \"2\"", "a wrong version");
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	bad(b, "truncated after the header", "a spec truncated after the magic");

	good_body(b);
	bad(b, "missing \"end\"", "a missing end record");
	good_body(b);
	rec(b, "end", 0);
	b->len -= 1; /* last NUL gone */
	bad(b, "truncated", "a truncated last string");
	good_body(b);
	sb_str(b, "mount");
	sb_str(b, "6");
	sb_str(b, "proc");
	bad(b, "truncated in record", "a record truncated in its arguments");
	good_body(b);
	sb_str(b, "env");
	sb_str(b, "x1");
	rec(b, "end", 0);
	bad(b, "bad argument count", "a non-numeric count");
	good_body(b);
	sb_str(b, "args");
	sb_str(b, "65537");
	bad(b, "bad argument count", "a count above the limit");
	good_body(b);
	rec(b, "end", 0);
	sb_str(b, "x");
	bad(b, "trailing data", "data after end");
	good_body(b);
	rec(b, "end", 0);
	{
		struct spec s2;
		char *big = calloc(1, SPEC_MAX_SIZE + 2);
		memcpy(big, b->buf, b->len);
		r = spec_parse(&s2, big, SPEC_MAX_SIZE + 1, &e);
		check(r < 0 && strstr(e.msg, "too large"), "spec rejects an oversized spec");
	}
	{
		/* 65537 records */
		size_t cap = 65538 * 10 + 64;
		char *many = malloc(cap);
		size_t l = 0;
		memcpy(many,
		       "MACHINA-SPEC\0"
		       "1\0",
		       15);
		l = 15;
		for (int i = 0; i < 65537; i++) {
			memcpy(many + l,
			       "mask\0"
			       "1\0"
			       "/x\0",
			       10);
			l += 10;
		}
		memcpy(many + l,
		       "end\0"
		       "0\0",
		       6);
		l += 6;
		struct spec s2;
		r = spec_parse(&s2, many, l, &e);
		check(r < 0 && strstr(e.msg, "too many records"), "spec rejects more than 65536 records");
	}

	static const struct bad_spec bads[] = {
		{ min_body,
		  { "console", "interactive", NULL, "console_log", "/run/m.log", "100", "3", NULL, NULL },
		  "needs console",
		  "console_log with an interactive console" },
		{ good_body,
		  { "mount", "proc", "/proc", "proc", "0", "", NULL, NULL },
		  "expected 6 arguments, got 5",
		  "an argument count mismatch" },
		{ good_body, { "hostname", "a", "b", NULL, NULL }, "expected 1 arguments, got 2", "too many arguments" },
		{ good_body, { "frobnicate", "x", NULL, NULL }, "unknown record \"frobnicate\"", "an unknown record" },
		{ good_body, { "root", "/other", NULL, NULL }, "duplicate record \"root\"", "a duplicate scalar record" },
		{ hdr_body,
		  { "namespaces", "pid", NULL, "exec", "/bin/sh", "sh", NULL, NULL },
		  "\"mnt\" and \"pid\" are required",
		  "namespaces without mnt" },
		{ hdr_body, { "namespaces", "pid", "mnt", NULL, NULL }, "missing record \"exec\"", "a spec without exec" },
		{ min_body, { "hostname", "h", NULL, NULL }, "needs the \"uts\" namespace", "a hostname without the uts namespace" },
		{ min_body, { "mount", "proc", "proc", "proc", "0", "", "dir", NULL, NULL }, "malformed CPATH", NULL },
		{ min_body, { "mount", "proc", "/proc", "proc", "ro,bogus", "", "dir", NULL, NULL }, "malformed FLAGS", NULL },
		{ min_body, { "mount", "proc", "/proc", "proc", "0", "", "maybe", NULL, NULL }, "malformed CREATE", NULL },
		{ min_body, { "mount", "rel", "/x", "", "4096", "", "dir", NULL, NULL }, "malformed SRC", NULL },
		{ min_body,
		  { "mount", "/srv", "/x", "", "bind", "", "copyup", NULL, NULL },
		  "copyup is for a new file system",
		  "CREATE copyup on a bind mount" },
		{ min_body, { "mkdir", "/x", "0789", NULL, NULL }, "malformed MODE", NULL },
		{ min_body, { "mknod", "/dev/x", "0666", "1", "3", NULL, NULL }, "malformed MODE", NULL },
		{ min_body, { "kill_signal", "0", NULL, NULL }, "malformed N", NULL },
		{ min_body, { "kill_signal", "9x", NULL, NULL }, "malformed N", NULL },
		{ min_body, { "boot", "yes", NULL, NULL }, "malformed 0|1", NULL },
		{ min_body, { "console", "tty", NULL, NULL }, "malformed interactive", NULL },
		{ min_body, { "rlimit", "7", "10", "5", NULL, NULL }, "malformed SOFT", NULL },
		{ min_body, { "rlimit", "7", "5", "10", "nearest", NULL, NULL }, "malformed MODE", NULL },
		{ min_body, { "device_allow", "c", "1", "3", "rwm", NULL, NULL }, "\"device_allow\" needs \"device_policy\"", NULL },
		{ min_body,
		  { "device_policy", "/sys/fs/cgroup/x", NULL, "device_allow", "q", "1", "3", "rwm", NULL, NULL },
		  "malformed TYPE",
		  NULL },
		{ min_body, { "user", "-1", "0", NULL, NULL }, "malformed UID", NULL },
		{ min_body, { "caps_bounding", "0xzz", NULL, NULL }, "malformed HEX", NULL },
		{ min_body, { "env", "NOEQUALS", NULL, NULL }, "is not K=V", NULL },
		{ hdr_body,
		  { "namespaces", "mnt", "pid", "time", NULL, "exec", "/bin/sh", "sh", NULL, NULL },
		  "unknown namespace \"time\"",
		  NULL },
		{ min_body, { "quiet", "2", NULL, NULL }, "malformed 0|1", NULL },
		{ min_body, { "copy", "etc/localtime", "/etc/localtime", "0644", NULL, NULL }, "malformed HPATH", NULL },
		{ min_body, { "copy", "/etc/localtime", "etc/localtime", "0644", NULL, NULL }, "malformed CPATH", NULL },
		{ min_body, { "copy", "/etc/localtime", "/", "0644", NULL, NULL }, "malformed CPATH", NULL },
		{ min_body, { "copy", "/etc/localtime", "/etc/localtime", "rw", NULL, NULL }, "malformed MODE", NULL },
		{ min_body, { "copy", "/etc/localtime", "/etc/localtime", NULL, NULL }, "expected 3 arguments, got 2", NULL },
		{ min_body, { "remove", "/", NULL, NULL }, "malformed CPATH", NULL },
		{ min_body, { "remove", "etc/x", NULL, NULL }, "malformed CPATH", NULL },
		{ min_body, { "console_log", "log", "100", "3", NULL, NULL }, "malformed HPATH", NULL },
		{ min_body, { "console_log", "/log", "0", "3", NULL, NULL }, "malformed MAXBYTES", NULL },
		{ min_body, { "console_log", "/log", "100", "0", NULL, NULL }, "malformed KEEP", NULL },
		{ min_body, { "console_log", "/log", "100", NULL, NULL }, "expected 3 arguments, got 2", NULL },
		{ min_body, { "mntns", "/proc/42/ns/mnt", NULL, NULL }, "never both", "mnt and mntns together" },
		{ hdr_body,
		  { "namespaces", "mnt", NULL, "exec", "/bin/sh", "sh", NULL, NULL },
		  "\"mnt\" and \"pid\" are required",
		  "namespaces without pid or pidns" },
		{ hdr_body,
		  { "namespaces", "pid",  "user", NULL, "mntns", "/proc/42/ns/mnt", NULL, "uid_map", "0", "1000", "1", NULL, "gid_map",
		    "0",          "1000", "1",    NULL, "exec",  "/bin/sh",         "sh", NULL,      NULL },
		  "cannot be combined with the \"user\" namespace",
		  "mntns with a user namespace" },
		{ min_body, { "root_propagation", "0", NULL, NULL }, "malformed FLAGS", NULL },
		{ min_body, { "root_propagation", "shared,slave", NULL, NULL }, "malformed FLAGS", NULL },
		{ min_body, { "root_propagation", "shared,ro", NULL, NULL }, "malformed FLAGS", NULL },
		{ min_body, { "root_propagation", "rec", NULL, NULL }, "malformed FLAGS", NULL },
	};
	BAD_SPECS(b, bads);
	free(b);
}

static void test_errors(void)
{
	struct merr e;
	char line[1100];
	const char *saved = g_prog;
	g_prog = "machina-nspawn";
	merr_set(&e, EPERM, "mount", "/proc", "failed to mount \"%s\" on \"%s\"", "proc", "/proc");
	merr_format(&e, NULL, line, sizeof line);
	check(!strcmp(line, "machina-nspawn: failed to mount \"proc\" on \"/proc\": Operation not permitted (EPERM)"),
	      "error: crun-style message with errno name");
	merr_json(&e, line, sizeof line);
	check(!strcmp(line, "{\"error\":{\"syscall\":\"mount\",\"path\":\"/proc\",\"errno\":1,\"code\":\"EPERM\","
			    "\"message\":\"failed to mount \\\"proc\\\" on \\\"/proc\\\": Operation not permitted (EPERM)\"}}"),
	      "error: JSON with escaped quotes");
	if (strncmp(line, "{\"error\"", 8))
		printf("#   %s\n", line);
	int r = merr_set(&e, 0, "", "", "invalid spec: x");
	merr_format(&e, NULL, line, sizeof line);
	check(r == -EINVAL && !strcmp(line, "machina-nspawn: invalid spec: x"), "error: no errno suffix without errno");
	char nb[16];
	check(!strcmp(errno_name(ENOENT, nb), "ENOENT") && !strcmp(errno_name(9999, nb), "E9999"), "error: errno names");
	errno = EACCES;
	r = merr_sys(&e, "open", "/x", "failed to open \"%s\"", "/x");
	check(r == -EACCES && e.err == EACCES && !strcmp(e.syscall, "open") && e.exit_code == 1, "error: merr_sys takes errno");
	size_t pos = 0;
	json_str(line, sizeof line, &pos, "a\n\t\x01\"\\");
	check(!strcmp(line, "\"a\\n\\t\\u0001\\\"\\\\\""), "error: JSON control characters escaped");
	char small[8];
	merr_set(&e, EPERM, "mount", "/proc", "a very long message that does not fit");
	merr_format(&e, NULL, small, sizeof small);
	check(strlen(small) == 7, "error: formatting is bounded");
	g_prog = saved;

	exit_line("m1", 1, 0, 0, line, sizeof line);
	check(!strcmp(line, "Container m1 exited successfully.\n"), "exit line: status 0");
	exit_line("m1", 1, 3, 0, line, sizeof line);
	check(!strcmp(line, "Container m1 failed with error code 3.\n"), "exit line: status 3");
	exit_line("m1", 0, SIGKILL, 0, line, sizeof line);
	check(!strcmp(line, "Container m1 terminated by signal SIGKILL.\n"), "exit line: SIGKILL");
	exit_line("m1", 0, SIGINT, 1, line, sizeof line);
	check(!strcmp(line, "Container m1 has been shut down.\n"), "exit line: powered off");
	exit_line("m1", 0, SIGINT, 0, line, sizeof line);
	check(!strcmp(line, "Container m1 terminated by signal SIGINT.\n"), "exit line: SIGINT without boot");
	char sn[24];
	check(!strcmp(signal_name(SIGRTMIN + 3, sn), "SIGRTMIN+3") && !strcmp(signal_name(SIGTERM, sn), "SIGTERM"),
	      "exit line: signal names (realtime as SIGRTMIN+N)");
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static void test_resolve(const char *tmp)
{
	char root[256], p[512];
	struct merr e;
	snprintf(root, sizeof root, "%s/root", tmp);
	mkdir(root, 0755);
	snprintf(p, sizeof p, "%s/etc", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/abs", root);
	symlink("/etc", p); /* absolute: must mean <root>/etc */
	snprintf(p, sizeof p, "%s/rel", root);
	symlink("../../../../../../etc", p); /* climbing: clamped at the root */
	snprintf(p, sizeof p, "%s/dangling", root);
	symlink("/nonexistent-machina-test", p);
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

	int fd = res_mkdir_p(rootfd, "/abs/machina-test-sub/x", 0700, &e);
	char inside[512];
	snprintf(inside, sizeof inside, "%s/etc/machina-test-sub/x", root);
	struct stat st;
	check(fd >= 0 && exists(inside) && !exists("/etc/machina-test-sub"),
	      "resolve: mkdir -p through an absolute symlink stays inside the root");
	check(stat(inside, &st) == 0 && (st.st_mode & 07777) == 0700, "resolve: mkdir -p applies MODE exactly");
	if (fd >= 0)
		close(fd);
	fd = res_mkdir_p(rootfd, "/rel/machina-test-rel", 0755, &e);
	snprintf(inside, sizeof inside, "%s/etc/machina-test-rel", root);
	check(fd >= 0 && exists(inside) && !exists("/etc/machina-test-rel"), "resolve: ../.. symlink is clamped to the root");
	if (fd >= 0)
		close(fd);
	fd = res_open(rootfd, "/abs/passwd", O_PATH, &e);
	check(fd == -ENOENT && !strcmp(e.syscall, "openat2"), "resolve: /abs/passwd does not reach the host's /etc/passwd");
	fd = res_open(rootfd, "/../../../etc/passwd", O_PATH, &e);
	check(fd == -ENOENT, "resolve: leading .. cannot leave the root");
	fd = res_open(rootfd, "/proc/self/root/etc/passwd", O_PATH, &e);
	check(fd < 0, "resolve: /proc magic links are not followed");
	fd = res_mkdir_p(rootfd, "/dangling/sub", 0755, &e);
	check(fd < 0 && !exists("/nonexistent-machina-test"), "resolve: mkdir -p never creates a dangling symlink's host target");
	snprintf(p, sizeof p, "%s/file", root);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	fd = res_mkdir_p(rootfd, "/file/sub", 0755, &e);
	check(fd == -ENOTDIR, "resolve: mkdir -p through a file is ENOTDIR");
	char base[256];
	fd = res_parent(rootfd, "/a/b/c/leaf", 1, base, &e);
	snprintf(p, sizeof p, "%s/a/b/c", root);
	check(fd >= 0 && !strcmp(base, "leaf") && exists(p), "resolve: parent of a path, created");
	if (fd >= 0)
		close(fd);
	fd = res_parent(rootfd, "/", 1, base, &e);
	check(fd == -EINVAL, "resolve: \"/\" has no parent");
	close(rootfd);
}

/* Setup ops in a private mount namespace (needs root). */
static void test_ops(const char *tmp)
{
	char root[256], p[512];
	snprintf(root, sizeof root, "%s/oproot", tmp);
	mkdir(root, 0755);
	int pp[2];
	if (pipe(pp) < 0) {
		check(0, "ops: pipe");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* the child reports through the pipe (an exit status has only 8 bits): bit i set = check i failed */
		int bits = 0, i = 0;
		close(pp[0]);
		struct merr e;
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(255);
		int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct op o = { .kind = OP_MOUNT,
				.src = "tmpfs",
				.path = "/run",
				.fstype = "tmpfs",
				.flags = MS_NOSUID,
				.data = "mode=755",
				.create = CREATE_DIR };
		/* 0: mount tmpfs with CREATE dir */
		if (op_run(rootfd, &o, &e) < 0)
			bits |= 1 << i;
		i++;
		/* 1: mknod + symlink + write */
		struct op mk = { .kind = OP_MKNOD, .path = "/run/host/inaccessible/chr", .mode = 020000, .major = 0, .minor = 0 };
		struct op mk2 = { .kind = OP_MKNOD, .path = "/run/host/inaccessible/reg", .mode = 0100000 };
		struct op sl = { .kind = OP_SYMLINK, .src = "pts/ptmx", .path = "/run/ptmx" };
		struct op wr = { .kind = OP_WRITE, .path = "/run/f", .mode = 0600, .data = "hello\n" };
		if (op_run(rootfd, &mk, &e) < 0 || op_run(rootfd, &mk2, &e) < 0 || op_run(rootfd, &sl, &e) < 0 ||
		    op_run(rootfd, &wr, &e) < 0 || op_run(rootfd, &mk, &e) < 0 /* existing node kept */)
			bits |= 1 << i;
		i++;
		/* 2: symlink replaces a file; 3: write refuses a symlink as last component */
		if (op_run(rootfd, &sl, &e) < 0)
			bits |= 1 << i;
		i++;
		struct op wr2 = { .kind = OP_WRITE, .path = "/run/ptmx", .mode = 0644, .data = "x" };
		if (op_run(rootfd, &wr2, &e) != -ELOOP)
			bits |= 1 << i;
		i++;
		/* 4: mask a regular file with the inaccessible node, read-only */
		struct op mask = { .kind = OP_MASK, .path = "/run/f" };
		snprintf(p, sizeof p, "%s/run/f", root);
		{
			char c;
			int mfd = -1;
			if (op_run(rootfd, &mask, &e) < 0 || (mfd = open(p, O_RDONLY)) < 0 || read(mfd, &c, 1) != 0 ||
			    open(p, O_WRONLY) >= 0 || errno != EROFS)
				bits |= 1 << i;
		}
		i++;
		/* 5: bind mount with ro applied by a remount; writes fail with EROFS */
		struct op bind = { .kind = OP_MOUNT, .src = tmp, .path = "/mnt/host", .flags = MS_BIND | MS_RDONLY, .create = CREATE_DIR };
		snprintf(p, sizeof p, "%s/mnt/host/newfile", root);
		if (op_run(rootfd, &bind, &e) < 0 || open(p, O_CREAT | O_WRONLY, 0644) >= 0 || errno != EROFS)
			bits |= 1 << i;
		i++;
		/* 6: optional bind of a missing source is skipped */
		struct op opt = {
			.kind = OP_MOUNT, .src = "/nonexistent-machina", .path = "/opt/x", .flags = MS_BIND, .create = CREATE_OPTIONAL
		};
		if (op_run(rootfd, &opt, &e) != 0)
			bits |= 1 << i;
		i++;
		/* 7: mount target through an escaping symlink lands inside the root */
		snprintf(p, sizeof p, "%s/esc", root);
		symlink("/../../../../tmp", p);
		snprintf(p, sizeof p, "%s/tmp", root);
		mkdir(p, 0755);
		struct op esc = { .kind = OP_MOUNT, .src = "tmpfs", .path = "/esc/machina-mnt", .fstype = "tmpfs", .create = CREATE_DIR };
		snprintf(p, sizeof p, "%s/tmp/machina-mnt", root);
		if (op_run(rootfd, &esc, &e) < 0 || !exists(p) || exists("/tmp/machina-mnt"))
			bits |= 1 << i;
		i++;
		/* 8: rebind read-only */
		struct op rb = { .kind = OP_REBIND, .path = "/run/host", .flags = MS_RDONLY };
		snprintf(p, sizeof p, "%s/run/host/new", root);
		if (op_run(rootfd, &rb, &e) < 0 || mkdir(p, 0755) == 0 || errno != EROFS)
			bits |= 1 << i;
		i++;
		/* 9: mask of a missing path is skipped; mask of a directory works */
		struct op m2 = { .kind = OP_MASK, .path = "/nope" };
		struct op m3 = { .kind = OP_MASK, .path = "/mnt" };
		snprintf(p, sizeof p, "%s/mnt/host", root);
		if (op_run(rootfd, &m2, &e) != 0 || op_run(rootfd, &m3, &e) < 0 || exists(p))
			bits |= 1 << i;
		i++;
		/* 10: mount with CREATE none on a missing target fails with a clear error */
		struct op none = { .kind = OP_MOUNT, .src = "tmpfs", .path = "/missing", .fstype = "tmpfs", .create = CREATE_NONE };
		if (op_run(rootfd, &none, &e) != -ENOENT || strcmp(e.path, "/missing"))
			bits |= 1 << i;
		i++;
		/* 11: CREATE copyup: the tmpfs starts with the directory's files, dirs, symlinks (not
		 * followed: one leads out of the root), modes; read-only after the copy; the image untouched */
		{
			char q[512];
			int ok = 1;
			snprintf(p, sizeof p, "%s/cu", root);
			ok &= mkdir(p, 0755) == 0;
			snprintf(q, sizeof q, "%s/cu/f", root);
			int fd = open(q, O_WRONLY | O_CREAT | O_EXCL, 0640);
			ok &= fd >= 0 && write(fd, "data\n", 5) == 5;
			if (fd >= 0)
				close(fd);
			ok &= chmod(q, 0640) == 0;
			snprintf(q, sizeof q, "%s/cu/d", root);
			ok &= mkdir(q, 0700) == 0;
			snprintf(q, sizeof q, "%s/cu/d/out", root);
			ok &= symlink("/../../../../../etc", q) == 0;
			struct op cu = { .kind = OP_MOUNT,
					 .src = "tmpfs",
					 .path = "/cu",
					 .fstype = "tmpfs",
					 .flags = MS_RDONLY | MS_NOSUID,
					 .data = "mode=0711",
					 .create = CREATE_COPYUP };
			struct stat st1, st2;
			char buf[8] = { 0 }, lk[64] = { 0 };
			snprintf(q, sizeof q, "%s/cu/f", root);
			int r = op_run(rootfd, &cu, &e);
			fd = r < 0 ? -1 : open(q, O_RDONLY);
			ok &= r == 0 && fd >= 0 && read(fd, buf, sizeof buf) == 5 && !strcmp(buf, "data\n");
			if (fd >= 0)
				close(fd);
			ok &= stat(q, &st1) == 0 && (st1.st_mode & 07777) == 0640;
			snprintf(q, sizeof q, "%s/cu/d", root);
			ok &= stat(q, &st1) == 0 && S_ISDIR(st1.st_mode) && (st1.st_mode & 07777) == 0700;
			snprintf(q, sizeof q, "%s/cu/d/out", root);
			ok &= readlink(q, lk, sizeof lk - 1) > 0 && !strcmp(lk, "/../../../../../etc");
			ok &= stat(p, &st1) == 0 && (st1.st_mode & 07777) == 0711; /* the tmpfs's own mode */
			snprintf(q, sizeof q, "%s/cu/new", root);
			ok &= mkdir(q, 0755) < 0 && errno == EROFS;
			ok &= umount2(p, MNT_DETACH) == 0 && stat(p, &st2) == 0 && (st2.st_mode & 07777) == 0755;
			snprintf(q, sizeof q, "%s/cu/d/out", root);
			ok &= lstat(q, &st2) == 0 && S_ISLNK(st2.st_mode);
			if (!ok)
				bits |= 1 << i;
			i++;
		}
		_exit(write(pp[1], &bits, sizeof bits) == sizeof bits ? 0 : 1);
	}
	close(pp[1]);
	int st, bits = -1;
	if (read(pp[0], &bits, sizeof bits) != sizeof bits)
		bits = -1;
	close(pp[0]);
	waitpid(pid, &st, 0);
	const char *names[] = { "mount tmpfs with CREATE dir",
				"mknod, symlink, write; existing node kept",
				"symlink replaces a file",
				"write refuses a symlink as last component",
				"mask a file with the empty read-only inaccessible node",
				"bind mount made read-only by remount",
				"optional bind of a missing source skipped",
				"mount target through an escaping symlink stays inside",
				"rebind read-only",
				"mask: missing skipped, directory masked",
				"CREATE none on a missing target: ENOENT",
				"CREATE copyup: the tmpfs starts with a copy of the directory" };
	if (bits == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		check(0, "ops: the test child failed before reporting (status 0x%x)", st);
		return;
	}
	for (int i = 0; i < 12; i++)
		check(!(bits & (1 << i)), "ops: %s", names[i]);
	/* 7: nothing leaked to the host */
	check(!exists("/tmp/machina-mnt"), "ops: nothing created on the host");
}

/* copy_fd_data's last fallback: from a socket neither copy_file_range nor sendfile works. */
static void test_copy_fd(void)
{
	char path[] = "/tmp/machina-copyfd.XXXXXX", back[8];
	int sp[2], out = mkstemp(path);
	const char *sc = "";
	if (out < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		check(0, "copy_fd_data: setup");
		return;
	}
	unlink(path);
	int ok = write(sp[1], "a\0b\n\0", 5) == 5;
	close(sp[1]);
	ok = ok && copy_fd_data(sp[0], out, &sc) == 0 && pread(out, back, sizeof back, 0) == 5 && !memcmp(back, "a\0b\n\0", 5);
	check(ok, "copy_fd_data: read/write fallback (socket input), binary-safe");
	close(sp[0]);
	close(out);
}

static int write_file(const char *p, const void *data, size_t n, mode_t mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int r = write(fd, data, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return r;
}

/* Read at most n bytes of p into buf; returns the length or -1. */
static ssize_t read_file(const char *p, void *buf, size_t n)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t l = 0;
	ssize_t r;
	while (l < n && (r = read(fd, (char *)buf + l, n - l)) > 0)
		l += (size_t)r;
	close(fd);
	return (ssize_t)l;
}

static mode_t mode_of(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0 ? st.st_mode : 0;
}

/* copy and remove ops, in a private mount namespace (a tmpfs for the cross-filesystem case). */
static void test_copy_remove(const char *tmp)
{
	static const char *names[] = {
		"copy: binary-safe (NULs, 300 kB), parents 0755, MODE exact",
		"copy: truncates a longer existing file",
		"copy: across filesystems (tmpfs target)",
		"copy: a /proc file whose size reads 0 is copied",
		"copy: refuses a symlink as last component (ELOOP), its target untouched",
		"copy: a symlinked parent is resolved inside the root",
		"copy: follows a symlink on the host side (HPATH)",
		"copy: missing source is ENOENT naming open and HPATH",
		"copy: a directory source is refused (not a regular file)",
		"copy: onto a directory is EISDIR",
		"copy: onto a FIFO fails (ENXIO) instead of blocking",
		"remove: a regular file",
		"remove: a symlink itself, not its target",
		"remove: missing file and missing parent are not errors",
		"remove: a directory is EISDIR (unlinkat), kept; one-line message",
		"remove: a symlinked parent pointing at a host path stays inside the root",
	};
	enum { N = sizeof names / sizeof names[0] };
	char root[256], p[512], q[512], src[512];
	static char big[300000], back[300001];
	snprintf(root, sizeof root, "%s/cproot", tmp);
	mkdir(root, 0755);
	for (size_t k = 0; k < sizeof big; k++)
		big[k] = (char)((k * 7) % 256);
	snprintf(src, sizeof src, "%s/src.bin", tmp);
	write_file(src, big, sizeof big, 0600);
	int pp[2];
	if (pipe(pp) < 0) {
		check(0, "copy/remove: pipe");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int bits = 0, i = 0;
		struct merr e;
		close(pp[0]);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(1);
		int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		ssize_t n;
#define FAILIF(cond)                    \
	do {                            \
		if (cond)               \
			bits |= 1 << i; \
		i++;                    \
	} while (0)
		/* 0 */
		struct op cp = { .kind = OP_COPY, .src = src, .path = "/cp/deep/bin", .mode = 0640 };
		snprintf(p, sizeof p, "%s/cp/deep/bin", root);
		snprintf(q, sizeof q, "%s/cp/deep", root);
		umask(022);
		FAILIF(op_run(rootfd, &cp, &e) < 0 || (n = read_file(p, back, sizeof back)) != (ssize_t)sizeof big ||
		       memcmp(back, big, sizeof big) || mode_of(p) != (S_IFREG | 0640) || mode_of(q) != (S_IFDIR | 0755));
		/* 1 */
		snprintf(q, sizeof q, "%s/small", tmp);
		write_file(q, "tiny", 4, 0644);
		struct op cp2 = { .kind = OP_COPY, .src = q, .path = "/cp/deep/bin", .mode = 0600 };
		FAILIF(op_run(rootfd, &cp2, &e) < 0 || read_file(p, back, sizeof back) != 4 || memcmp(back, "tiny", 4) ||
		       mode_of(p) != (S_IFREG | 0600));
		/* 2 */
		snprintf(q, sizeof q, "%s/tmpfs", root);
		mkdir(q, 0755);
		struct op cp3 = { .kind = OP_COPY, .src = src, .path = "/tmpfs/bin", .mode = 0644 };
		snprintf(p, sizeof p, "%s/tmpfs/bin", root);
		FAILIF(mount("tmpfs", q, "tmpfs", 0, "mode=755") < 0 || op_run(rootfd, &cp3, &e) < 0 ||
		       read_file(p, back, sizeof back) != (ssize_t)sizeof big || memcmp(back, big, sizeof big));
		/* 3 */
		struct op cp4 = { .kind = OP_COPY, .src = "/proc/self/status", .path = "/cp/status", .mode = 0644 };
		snprintf(p, sizeof p, "%s/cp/status", root);
		FAILIF(op_run(rootfd, &cp4, &e) < 0 || read_file(p, back, 5) != 5 || memcmp(back, "Name:", 5));
		/* 4 */
		snprintf(p, sizeof p, "%s/cp/link", root);
		symlink("/cp/linktarget", p);
		snprintf(q, sizeof q, "%s/cp/esc", root);
		symlink("/tmp/machina-copy-escape", q);
		struct op cp5 = { .kind = OP_COPY, .src = src, .path = "/cp/link", .mode = 0644 };
		struct op cp6 = { .kind = OP_COPY, .src = src, .path = "/cp/esc", .mode = 0644 };
		snprintf(q, sizeof q, "%s/cp/linktarget", root);
		FAILIF(op_run(rootfd, &cp5, &e) != -ELOOP || exists(q) || op_run(rootfd, &cp6, &e) != -ELOOP ||
		       exists("/tmp/machina-copy-escape") || !S_ISLNK(mode_of(p)));
		/* 5 */
		snprintf(p, sizeof p, "%s/etc", root);
		mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/cpabs", root);
		symlink("/etc", p);
		struct op cp7 = { .kind = OP_COPY, .src = src, .path = "/cpabs/machina-copied", .mode = 0644 };
		snprintf(p, sizeof p, "%s/etc/machina-copied", root);
		FAILIF(op_run(rootfd, &cp7, &e) < 0 || !exists(p) || exists("/etc/machina-copied"));
		/* 6 */
		snprintf(q, sizeof q, "%s/srclink", tmp);
		symlink(src, q);
		struct op cp8 = { .kind = OP_COPY, .src = q, .path = "/cp/viasym", .mode = 0644 };
		snprintf(p, sizeof p, "%s/cp/viasym", root);
		FAILIF(op_run(rootfd, &cp8, &e) < 0 || read_file(p, back, sizeof back) != (ssize_t)sizeof big ||
		       memcmp(back, big, sizeof big));
		/* 7 */
		struct op cp9 = { .kind = OP_COPY, .src = "/nonexistent-machina-src", .path = "/cp/x", .mode = 0644 };
		FAILIF(op_run(rootfd, &cp9, &e) != -ENOENT || strcmp(e.syscall, "open") || strcmp(e.path, "/nonexistent-machina-src"));
		/* 8 */
		struct op cp10 = { .kind = OP_COPY, .src = tmp, .path = "/cp/x", .mode = 0644 };
		FAILIF(op_run(rootfd, &cp10, &e) != -EINVAL || !strstr(e.msg, "not a regular file"));
		/* 9 */
		struct op cp11 = { .kind = OP_COPY, .src = src, .path = "/cp/deep", .mode = 0644 };
		FAILIF(op_run(rootfd, &cp11, &e) != -EISDIR);
		/* 10 */
		snprintf(p, sizeof p, "%s/cp/fifo", root);
		mkfifo(p, 0644);
		struct op cp12 = { .kind = OP_COPY, .src = src, .path = "/cp/fifo", .mode = 0644 };
		alarm(5);
		FAILIF(op_run(rootfd, &cp12, &e) != -ENXIO || !S_ISFIFO(mode_of(p)));
		alarm(0);
		/* 11 */
		struct op rm = { .kind = OP_REMOVE, .path = "/cp/viasym" };
		snprintf(p, sizeof p, "%s/cp/viasym", root);
		FAILIF(op_run(rootfd, &rm, &e) < 0 || exists(p));
		/* 12: /cp/link -> /cp/linktarget; make the target exist first */
		snprintf(q, sizeof q, "%s/cp/linktarget", root);
		write_file(q, "keep", 4, 0644);
		struct op rm2 = { .kind = OP_REMOVE, .path = "/cp/link" };
		snprintf(p, sizeof p, "%s/cp/link", root);
		FAILIF(op_run(rootfd, &rm2, &e) < 0 || exists(p) || !exists(q));
		/* 13 */
		struct op rm3 = { .kind = OP_REMOVE, .path = "/cp/nothing" };
		struct op rm4 = { .kind = OP_REMOVE, .path = "/no/such/dir/file" };
		FAILIF(op_run(rootfd, &rm3, &e) != 0 || op_run(rootfd, &rm4, &e) != 0);
		/* 14 */
		struct op rm5 = { .kind = OP_REMOVE, .path = "/cp/deep" };
		snprintf(p, sizeof p, "%s/cp/deep", root);
		{
			char line[1100];
			const char *saved = g_prog;
			g_prog = "machina-nspawn";
			int r = op_run(rootfd, &rm5, &e);
			merr_format(&e, NULL, line, sizeof line);
			g_prog = saved;
			FAILIF(r != -EISDIR || strcmp(e.syscall, "unlinkat") || !S_ISDIR(mode_of(p)) ||
			       strcmp(line, "machina-nspawn: failed to remove \"/cp/deep\": Is a directory (EISDIR)"));
		}
		/* 15: host file <tmp>/victim; in the root /rmesc -> <tmp> (an absolute host path) */
		snprintf(q, sizeof q, "%s/victim", tmp);
		write_file(q, "v", 1, 0644);
		snprintf(p, sizeof p, "%s/rmesc", root);
		symlink(tmp, p);
		struct op rm6 = { .kind = OP_REMOVE, .path = "/rmesc/victim" };
		FAILIF(op_run(rootfd, &rm6, &e) != 0 || !exists(q));
#undef FAILIF
		_exit(i == N && write(pp[1], &bits, sizeof bits) == sizeof bits ? 0 : 1);
	}
	close(pp[1]);
	int st, bits = -1;
	if (read(pp[0], &bits, sizeof bits) != sizeof bits)
		bits = -1;
	close(pp[0]);
	waitpid(pid, &st, 0);
	if (bits == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		check(0, "copy/remove: the test child failed before reporting (status 0x%x)", st);
		return;
	}
	for (int i = 0; i < N; i++)
		check(!(bits & (1 << i)), "ops: %s", names[i]);
	check(!exists("/etc/machina-copied") && !exists("/tmp/machina-copy-escape"), "ops: copy created nothing on the host");
}

/* ---- binds.c: root modes, overlay, "+" sources, scratch dirs (SPEC.md "Mounts, root modes") ---- */

static void test_binds_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	good_body(b);
	rec(b, "root_overlay", 1, "mode=755");
	rec(b, "pivot_root_dir", 2, "/deploy/a", "");
	rec(b, "scratch_list", 1, "/run/machina/scratch/m1");
	rec(b, "scratch_dir", 2, "/var/tmp/machina-temp-x", "0700");
	rec(b, "scratch_dir", 2, "+/data/.#upx", "0700");
	rec(b, "host_mkdir", 2, "/var/log/journal/abc", "0755");
	rec(b, "host_symlink", 2, "/srv/m1/var/log/journal/abc", "/var/log/journal/abc");
	rec(b, "overlay", 6, "/o", "0", "+/data/up", "+/data/.#upx", "/l1", "+/l2");
	rec(b, "overlay", 5, "/r", "ro", "", "", "/l1");
	rec(b, "mount", 6, "+/etc", "/e", "", "bind,rec,ro", "", "auto");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0, "binds spec: new records parse%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		struct op *o = &s.ops[s.n_ops - 3], *ro = &s.ops[s.n_ops - 2], *m = &s.ops[s.n_ops - 1];
		check(s.root_mode == ROOT_OVERLAY && !strcmp(s.root_data, "mode=755") && !strcmp(s.pivot_new, "/deploy/a") &&
			      s.pivot_old == NULL,
		      "binds spec: root_overlay, pivot_root_dir with empty OLD");
		check(s.n_scratch == 2 && s.scratch[1].mode == 0700 && !strcmp(s.scratch[1].path, "+/data/.#upx") &&
			      !strcmp(s.scratch_list, "/run/machina/scratch/m1"),
		      "binds spec: scratch_dir (HPATH and +CPATH), scratch_list");
		check(s.n_host_mkdirs == 1 && s.n_host_symlinks == 1 && !strcmp(s.host_symlinks[0].target, "/srv/m1/var/log/journal/abc"),
		      "binds spec: host_mkdir, host_symlink");
		check(o->kind == OP_OVERLAY && o->n_layers == 2 && !strcmp(o->layers[1], "+/l2") && !strcmp(o->upper, "+/data/up") &&
			      ro->n_layers == 1 && ro->flags == MS_RDONLY && !*ro->upper,
		      "binds spec: overlay ops (rw with + layers, read-only)");
		check(m->kind == OP_MOUNT && m->create == CREATE_AUTO && !strcmp(m->src, "+/etc"),
		      "binds spec: mount with +CPATH source and CREATE auto");
		spec_free(&s);
	}
	static const struct bad_spec bads[] = {
		{ good_body,
		  { "root_tmpfs", "mode=755", NULL, "root_overlay", "mode=755", NULL, NULL },
		  "only one of root_tmpfs and root_overlay",
		  "root_tmpfs with root_overlay" },
		{ good_body, { "overlay", "/o", "0", "/up", "", "/l", NULL, NULL }, "malformed WORK", "overlay with UPPER but no WORK" },
		{ good_body, { "overlay", "/o", "0", "", "", "+rel", NULL, NULL }, "malformed LOWER", "overlay with a relative '+' layer" },
		{ good_body,
		  { "mount", "tmpfs", "/t", "tmpfs", "0", "", "auto", NULL, NULL },
		  "auto needs a bind mount",
		  "CREATE auto without MS_BIND" },
		{ good_body,
		  { "scratch_dir", "relative", "0700", NULL, NULL },
		  "malformed HPATH or +CPATH",
		  "scratch_dir with a relative path" },
	};
	BAD_SPECS(b, bads);
	free(b);
}

/* Ops in a private mount namespace (root): "+" bind source, CREATE auto, recursive ro,
 * overlay with "+" layers, remove_tree_at. */
static void test_binds_ops(const char *tmp)
{
	static const char *names[] = {
		"bind of a +CPATH source through an escaping symlink stays in the image (CREATE auto: a dir)",
		"CREATE auto on a file source makes a file mount point",
		"rec ro bind: the submount is read-only too",
		"overlay: + lower, host upper (created), writes land in the upper dir",
		"read-only overlay of two layers: top layer wins, writes refused",
		"remove_tree_at: removes a tree with a mode-000 dir, does not cross a mount point",
	};
	enum { N = sizeof names / sizeof names[0] };
	char root[256], p[512], q[512];
	snprintf(root, sizeof root, "%s/bproot", tmp);
	mkdir(root, 0755);
	int pp[2];
	if (pipe(pp) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		int bits = 0, i = 0;
		struct merr e;
		close(pp[0]);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(1);
		umask(0);
		int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
#define FAILIF(cond)                    \
	do {                            \
		if (cond)               \
			bits |= 1 << i; \
		i++;                    \
	} while (0)
		/* 0: /esc -> / (absolute, inside the image); +/esc/data resolves to <root>/data */
		snprintf(p, sizeof p, "%s/data", root);
		mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/data/inimage", root);
		write_file(p, "i", 1, 0644);
		snprintf(p, sizeof p, "%s/esc", root);
		symlink("/", p);
		struct op b1 = { .kind = OP_MOUNT, .src = "+/esc/data", .path = "/mnt/d", .flags = MS_BIND, .create = CREATE_AUTO };
		snprintf(p, sizeof p, "%s/mnt/d/inimage", root);
		FAILIF(op_run(rootfd, &b1, &e) < 0 || !exists(p));
		/* 1 */
		snprintf(q, sizeof q, "%s/hostfile", tmp);
		write_file(q, "h", 1, 0644);
		struct op b2 = { .kind = OP_MOUNT, .src = q, .path = "/mnt/f", .flags = MS_BIND, .create = CREATE_AUTO };
		snprintf(p, sizeof p, "%s/mnt/f", root);
		FAILIF(op_run(rootfd, &b2, &e) < 0 || !S_ISREG(mode_of(p)) || read_file(p, q, 1) != 1 || q[0] != 'h');
		/* 2 */
		snprintf(q, sizeof q, "%s/rsrc", tmp);
		mkdir(q, 0755);
		snprintf(p, sizeof p, "%s/rsrc/sub", tmp);
		mkdir(p, 0755);
		mount("tmpfs", p, "tmpfs", 0, "size=1m");
		struct op b3 = {
			.kind = OP_MOUNT, .src = q, .path = "/mnt/r", .flags = MS_BIND | MS_REC | MS_RDONLY, .create = CREATE_DIR
		};
		snprintf(p, sizeof p, "%s/mnt/r/sub/x", root);
		FAILIF(op_run(rootfd, &b3, &e) < 0 || open(p, O_CREAT | O_WRONLY, 0644) >= 0 || errno != EROFS);
		/* 3 */
		snprintf(p, sizeof p, "%s/lower", root);
		mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/lower/base", root);
		write_file(p, "b", 1, 0644);
		char up[300], work[300];
		snprintf(up, sizeof up, "%s/ovl/up", tmp);
		snprintf(work, sizeof work, "%s/ovl/.#upwork", tmp);
		snprintf(p, sizeof p, "%s/ovl", tmp);
		mkdir(p, 0755);
		mkdir(work, 0700);
		const char *layers[] = { "+/lower" };
		struct op ov = { .kind = OP_OVERLAY, .path = "/o", .upper = up, .work = work, .layers = layers, .n_layers = 1 };
		snprintf(p, sizeof p, "%s/o/new", root);
		snprintf(q, sizeof q, "%s/new", up);
		FAILIF(op_run(rootfd, &ov, &e) < 0 || write_file(p, "n", 1, 0644) < 0 || !exists(q));
		/* 4 */
		const char *layers2[] = { "+/lower", up };
		struct op ro = {
			.kind = OP_OVERLAY, .path = "/ro", .flags = MS_RDONLY, .upper = "", .work = "", .layers = layers2, .n_layers = 2
		};
		snprintf(p, sizeof p, "%s/ro/new", root);
		snprintf(q, sizeof q, "%s/ro/x", root);
		FAILIF(op_run(rootfd, &ro, &e) < 0 || !exists(p) || open(q, O_CREAT | O_WRONLY, 0644) >= 0 || errno != EROFS);
		/* 5 */
		snprintf(p, sizeof p, "%s/rt", tmp);
		mkdir(p, 0755);
		snprintf(q, sizeof q, "%s/rt/locked", tmp);
		mkdir(q, 0);
		snprintf(q, sizeof q, "%s/rt/mnt", tmp);
		mkdir(q, 0755);
		mount("tmpfs", q, "tmpfs", 0, "size=1m");
		snprintf(q, sizeof q, "%s/rt/mnt/keep", tmp);
		write_file(q, "k", 1, 0644);
		int tfd = open(tmp, O_PATH | O_DIRECTORY);
		binds_remove_tree_at(tfd, "rt");
		snprintf(p, sizeof p, "%s/rt/locked", tmp);
		FAILIF(exists(p) || !exists(q)); /* the tmpfs below rt/mnt is not entered: rt stays */
		close(tfd);
#undef FAILIF
		_exit(i == N && write(pp[1], &bits, sizeof bits) == sizeof bits ? 0 : 1);
	}
	close(pp[1]);
	int st, bits = -1;
	if (read(pp[0], &bits, sizeof bits) != sizeof bits)
		bits = -1;
	close(pp[0]);
	waitpid(pid, &st, 0);
	if (bits == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		check(0, "binds ops: the test child failed before reporting (status 0x%x)", st);
		return;
	}
	for (int i = 0; i < N; i++)
		check(!(bits & (1 << i)), "binds ops: %s", names[i]);
}

static int rm_rf(const char *p)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf --one-file-system '%s'", p);
	return system(cmd);
}

/* ---- user namespaces (userns.c) ---- */

/* A minimal valid spec with the given extra records inserted before "end". */
static void userns_body(struct sb *b, int with_user_ns)
{
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	sb_str(b, "1");
	rec(b, "root", 1, "/srv/r");
	if (with_user_ns)
		rec(b, "namespaces", 3, "mnt", "pid", "user");
	else
		rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "exec", 2, "/bin/sh", "sh");
}

static void user_body(struct sb *b)
{
	userns_body(b, 1);
}

static void nouser_body(struct sb *b)
{
	userns_body(b, 0);
}

static void test_userns(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	char map[256];

	userns_body(b, 1);
	rec(b, "uid_map", 3, "0", "1048576", "65536");
	rec(b, "uid_map", 3, "60514", "1000", "1");
	rec(b, "gid_map", 3, "0", "1048576", "65536");
	rec(b, "cgroup_owner", 2, "1048576", "1048576");
	rec(b, "userns_lock", 1, "/run/machina/userns/1048576.lock");
	rec(b, "chown_root", 2, "1048576", "65536");
	rec(b, "idmap_root", 2, "1048576", "65536");
	rec(b, "fsmount", 4, "sysfs", "/sys", "ro,nosuid,nodev,noexec", "source=sysfs");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0, "userns: records parse%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		check(s.us.enabled && (s.clone_flags & CLONE_NEWUSER), "userns: \"user\" namespace sets CLONE_NEWUSER");
		check(s.us.n_uid_map == 2 && s.us.uid_map[1].inside == 60514 && s.us.uid_map[1].outside == 1000 &&
			      s.us.uid_map[1].count == 1 && s.us.n_gid_map == 1,
		      "userns: uid_map and gid_map lines in order");
		check(s.us.has_cgroup_owner && s.us.cgroup_uid == 1048576 && s.us.cgroup_gid == 1048576, "userns: cgroup_owner");
		check(s.us.lock && !strcmp(s.us.lock, "/run/machina/userns/1048576.lock") && s.us.lock_fd == -1, "userns: userns_lock");
		check(s.us.has_chown && s.us.chown_base == 1048576 && s.us.has_idmap_root && s.us.idmap_count == 65536 &&
			      s.us.root_tree_fd == -1,
		      "userns: chown_root, idmap_root");
		check(s.n_ops == 1 && s.ops[0].kind == OP_FSMOUNT && s.ops[0].fd == -1 && !strcmp(s.ops[0].fstype, "sysfs") &&
			      s.ops[0].flags == (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) && !strcmp(s.ops[0].data, "source=sysfs"),
		      "userns: fsmount op");
		int n = userns_format_map(s.us.uid_map, s.us.n_uid_map, map, sizeof map);
		check(n > 0 && !strcmp(map, "0 1048576 65536\n60514 1000 1\n"), "userns: uid_map text (%s)", map);
		spec_free(&s);
	}

	static const struct bad_spec bads[] = {
		{ user_body,
		  { "uid_map", "0", "1048576", "65536", NULL, NULL },
		  "needs \"uid_map\" and \"gid_map\"",
		  "a user namespace without gid_map" },
		{ nouser_body,
		  { "uid_map", "0", "1048576", "65536", NULL, "gid_map", "0", "1048576", "65536", NULL, NULL },
		  "need the \"user\" namespace",
		  "uid_map without the user namespace" },
		{ user_body, { "uid_map", "0", "4294967295", "1", NULL, NULL }, "malformed OUTSIDE", "an outside id of 2^32-1" },
		{ user_body, { "uid_map", "0", "4294967290", "10", NULL, NULL }, "malformed COUNT", "a range past 2^32-2" },
		{ nouser_body,
		  { "chown_root", "1048577", "65536", NULL, NULL },
		  "malformed BASE (a multiple of 65536)",
		  "chown_root with a base not a multiple of 65536" },
		{ nouser_body,
		  { "chown_root", "1048576", "1000", NULL, NULL },
		  "malformed COUNT (65536)",
		  "chown_root with a count other than 65536" },
		{ nouser_body, { "userns_lock", "relative", NULL, NULL }, "malformed HPATH", "a relative userns_lock" },
	};
	BAD_SPECS(b, bads);
	free(b);
}

/* copy from an AF_UNIX stream socket (--load-credential=ID:SOCKET) */
static void test_copy_socket(const char *tmp)
{
	char sock[256], root[256], p[512], buf[64];
	snprintf(sock, sizeof sock, "%s/cred.sock", tmp);
	snprintf(root, sizeof root, "%s/sockroot", tmp);
	mkdir(root, 0755);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0) {
		check(0, "copy from a socket: listen on %s", sock);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int c = accept(l, NULL, NULL);
		char x;
		/* the helper shuts its sending side down: EOF first, then the answer */
		_exit(c < 0 || read(c, &x, 1) != 0 || write(c, "from-socket\n", 12) != 12 ? 1 : 0);
	}
	close(l);
	struct merr e = { 0 };
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct op op = { .kind = OP_COPY, .src = sock, .path = "/run/cred", .mode = 0400 };
	int r = op_run(rootfd, &op, &e);
	int st;
	waitpid(pid, &st, 0);
	snprintf(p, sizeof p, "%s/run/cred", root);
	memset(buf, 0, sizeof buf);
	check(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && read_file(p, buf, sizeof buf - 1) == 12 && !strcmp(buf, "from-socket\n") &&
		      (mode_of(p) & 07777) == 0400,
	      "copy: from an AF_UNIX stream socket (connect, shutdown SHUT_WR, read to EOF)%s%s", r ? ": " : "", r ? e.msg : "");
	struct op gone = { .kind = OP_COPY, .src = sock, .path = "/run/cred2", .mode = 0400 };
	check(op_run(rootfd, &gone, &e) < 0 && !strcmp(e.syscall, "connect"),
	      "copy: a socket nobody listens on is an error naming connect");
	close(rootfd);
}

/* idmap_bind records (--bind=…:idmap / :rootidmap) */
static void test_idmap_bind_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	userns_body(b, 0);
	rec(b, "idmap_bind", 7, "/srv/data", "/data", "bind,rec,ro", "auto", "owner", "0", "1");
	rec(b, "idmap_bind", 7, "+/var/x", "/x", "bind", "dir", "0", "1048576", "65536");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0, "idmap_bind: records parse (without a user namespace too)%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		check(s.n_ops == 2 && s.ops[0].kind == OP_IDMAP_BIND && s.ops[0].fd == -1 && s.ops[0].idmap_from == -1 &&
			      s.ops[0].idmap_to == 0 && s.ops[0].idmap_count == 1 && s.ops[0].create == CREATE_AUTO &&
			      s.ops[0].flags == (MS_BIND | MS_REC | MS_RDONLY) && !strcmp(s.ops[0].src, "/srv/data"),
		      "idmap_bind: owner 0 1 (rootidmap)");
		check(s.ops[1].idmap_from == 0 && s.ops[1].idmap_to == 1048576 && s.ops[1].idmap_count == 65536 &&
			      s.ops[1].create == CREATE_DIR && !strcmp(s.ops[1].src, "+/var/x"),
		      "idmap_bind: 0 BASE COUNT (idmap), + source");
		spec_free(&s);
	}
#define IDMAP_BIND(...) { nouser_body, { "idmap_bind", __VA_ARGS__, NULL, NULL }
	static const struct bad_spec bads[] = { IDMAP_BIND("/s", "/d", "bind", "auto", "owner", "0", "2"), "malformed COUNT",
						"owner with COUNT 2" },
				     IDMAP_BIND("/s", "/d", "bind", "auto", "0", "4294967290", "10"), "malformed COUNT",
				     "a range past 2^32-2"
}
, IDMAP_BIND("/s", "/d", "bind", "auto", "x", "0", "1"), "malformed FROM", "FROM not a number"
}
, IDMAP_BIND("s", "/d", "bind", "auto", "0", "0", "1"), "malformed SRC", "a relative source"
}
, IDMAP_BIND("/s", "d", "bind", "auto", "0", "0", "1"), "malformed CPATH", "a relative target"
}
, IDMAP_BIND("/s", "/d", "bind", "maybe", "0", "0", "1"), "malformed CREATE", "an unknown CREATE"
}
, IDMAP_BIND("/s", "/d", "bind", "auto", "0", "0", "0"), "malformed COUNT", "COUNT 0"
}
,
}
;
#undef IDMAP_BIND
BAD_SPECS(b, bads);
free(b);
}

/* idmap_bind carried out: the supervisor's detached idmapped tree, attached by op_run (root). */
static void test_idmap_bind_ops(const char *tmp)
{
	static const char *names[] = {
		"rootidmap (owner 0 1): the source's owner shows as 0, others as nobody; files made by 0 belong to the owner on disk",
		"idmap (0 1048576 65536): on-disk ids appear shifted, read-only applied to the tree",
		"a + source resolves inside the root, CREATE auto makes a file mount point for a file",
		"a missing source with CREATE optional is skipped",
	};
	enum { N = sizeof names / sizeof names[0] };
	char root[256], src[256], p[512];
	snprintf(root, sizeof root, "%s/idroot", tmp);
	snprintf(src, sizeof src, "%s/idsrc", tmp);
	mkdir(root, 0755);
	mkdir(src, 0755);
	if (chown(src, 1234, 1234) < 0)
		return;
	snprintf(p, sizeof p, "%s/f", src);
	write_file(p, "f", 1, 0644);
	if (chown(p, 1000, 1000) < 0)
		return;
	snprintf(p, sizeof p, "%s/etc", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/etc/hostname", root);
	write_file(p, "h", 1, 0644);
	int pp[2];
	if (pipe(pp) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		int bits = 0, i = 0;
		struct merr e = { 0 };
		struct stat st;
		close(pp[0]);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(1);
		int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct op ops[4] = {
			{ .kind = OP_IDMAP_BIND,
			  .src = src,
			  .path = "/r",
			  .flags = MS_BIND | MS_REC,
			  .create = CREATE_AUTO,
			  .idmap_from = -1,
			  .idmap_to = 0,
			  .idmap_count = 1,
			  .fd = -1 },
			{ .kind = OP_IDMAP_BIND,
			  .src = src,
			  .path = "/i",
			  .flags = MS_BIND | MS_RDONLY,
			  .create = CREATE_DIR,
			  .idmap_from = 0,
			  .idmap_to = 1048576,
			  .idmap_count = 65536,
			  .fd = -1 },
			{ .kind = OP_IDMAP_BIND,
			  .src = "+/etc/hostname",
			  .path = "/hn",
			  .flags = MS_BIND,
			  .create = CREATE_AUTO,
			  .idmap_from = -1,
			  .idmap_to = 7,
			  .idmap_count = 1,
			  .fd = -1 },
			{ .kind = OP_IDMAP_BIND,
			  .src = "/nonexistent/x",
			  .path = "/opt",
			  .flags = MS_BIND,
			  .create = CREATE_OPTIONAL,
			  .idmap_from = 0,
			  .idmap_to = 0,
			  .idmap_count = 1,
			  .fd = -1 },
		};
		struct spec s = { .root = root, .ops = ops, .n_ops = 4 };
		s.us.root_tree_fd = -1;
		int prep = userns_before_clone(&s, &e);
#define FAILIF(cond)                    \
	do {                            \
		if (cond)               \
			bits |= 1 << i; \
		i++;                    \
	} while (0)
		/* 0 */
		int r0 = prep < 0 ? -1 : op_run(rootfd, &ops[0], &e);
		snprintf(p, sizeof p, "%s/r/new", root);
		int made = r0 == 0 ? write_file(p, "n", 1, 0644) : -1;
		snprintf(p, sizeof p, "%s/new", src);
		struct stat ondisk = { 0 };
		int ok = made == 0 && stat(p, &ondisk) == 0 && ondisk.st_uid == 1234 && ondisk.st_gid == 1234;
		snprintf(p, sizeof p, "%s/r", root);
		ok = ok && stat(p, &st) == 0 && st.st_uid == 0 && st.st_gid == 0;
		snprintf(p, sizeof p, "%s/r/f", root);
		ok = ok && stat(p, &st) == 0 && st.st_uid == 65534;
		FAILIF(!ok);
		/* 1 */
		int r1 = prep < 0 ? -1 : op_run(rootfd, &ops[1], &e);
		snprintf(p, sizeof p, "%s/i/f", root);
		ok = r1 == 0 && stat(p, &st) == 0 && st.st_uid == 1048576 + 1000 && st.st_gid == 1048576 + 1000;
		snprintf(p, sizeof p, "%s/i/x", root);
		ok = ok && open(p, O_CREAT | O_WRONLY, 0644) < 0 && errno == EROFS;
		FAILIF(!ok);
		/* 2 */
		int r2 = prep < 0 ? -1 : op_run(rootfd, &ops[2], &e);
		snprintf(p, sizeof p, "%s/hn", root);
		FAILIF(r2 != 0 || lstat(p, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 7);
		/* 3 */
		snprintf(p, sizeof p, "%s/opt", root);
		FAILIF(prep < 0 || op_run(rootfd, &ops[3], &e) != 0 || exists(p));
#undef FAILIF
		if (prep < 0)
			fprintf(stderr, "# idmap_bind: %s\n", e.msg);
		userns_after_clone(&s);
		_exit(i == N && write(pp[1], &bits, sizeof bits) == sizeof bits ? 0 : 1);
	}
	close(pp[1]);
	int st, bits = -1;
	if (read(pp[0], &bits, sizeof bits) != sizeof bits)
		bits = -1;
	close(pp[0]);
	waitpid(pid, &st, 0);
	if (bits == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		check(0, "idmap_bind ops: the test child failed before reporting (status 0x%x)", st);
		return;
	}
	for (int i = 0; i < N; i++)
		check(!(bits & (1 << i)), "idmap_bind ops: %s", names[i]);
}

static void test_userns_chown(const char *tmp)
{
	char root[512], p[600];
	struct stat st;
	struct merr e = { 0 };
	snprintf(root, sizeof root, "%s/chown-tree", tmp);
	mkdir(root, 0755);
	snprintf(p, sizeof p, "%s/dir", root);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/dir/suid", root);
	write_file(p, "x", 1, 04755);
	chown(p, 0, 0);
	chmod(p, 04755);
	snprintf(p, sizeof p, "%s/dir/user", root);
	write_file(p, "x", 1, 0644);
	chown(p, 1000, 100);
	snprintf(p, sizeof p, "%s/link", root);
	symlink("/nonexistent", p);

	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = userns_chown_tree(fd, root, 0x100000, &e);
	check(r == 0, "userns chown: tree shifted to 1048576%s%s", r ? ": " : "", r ? e.msg : "");
	check(stat(root, &st) == 0 && st.st_uid == 0x100000 && st.st_gid == 0x100000, "userns chown: the root itself");
	snprintf(p, sizeof p, "%s/dir/suid", root);
	check(stat(p, &st) == 0 && st.st_uid == 0x100000 && (st.st_mode & 07777) == 04755, "userns chown: setuid bit kept");
	snprintf(p, sizeof p, "%s/dir/user", root);
	check(stat(p, &st) == 0 && st.st_uid == 0x100000 + 1000 && st.st_gid == 0x100000 + 100,
	      "userns chown: 1000:100 -> BASE+1000:BASE+100");
	snprintf(p, sizeof p, "%s/link", root);
	check(lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid == 0x100000, "userns chown: symlink itself, not followed");
	/* marker: the root's owner says the tree is done; a file changed behind our back stays */
	snprintf(p, sizeof p, "%s/dir/user", root);
	chown(p, 7, 7);
	r = userns_chown_tree(fd, root, 0x100000, &e);
	check(r == 0 && stat(p, &st) == 0 && st.st_uid == 7, "userns chown: skipped when the root is already in the range");
	/* back to 0 (as nspawn --private-users=0 --private-users-ownership=chown) */
	r = userns_chown_tree(fd, root, 0, &e);
	check(r == 0 && stat(root, &st) == 0 && st.st_uid == 0 && stat(p, &st) == 0 && st.st_uid == 7, "userns chown: shifting back to 0");
	close(fd);
}

/* ---- security.c: seccomp, personality, OOM score, CPU affinity, cgroup_set ---- */
static void sec_body(struct sb *b)
{
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "exec", 2, "/bin/true", "true");
}

static int child_status(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_security(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;

	sec_body(b);
	rec(b, "cgroup_set", 2, "/sys/fs/cgroup/a/pids.max", "20");
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_rule", 4, "97", "socket", "a0==16", "a2==9");
	rec(b, "seccomp_filter", 1, "38");
	rec(b, "seccomp_allow", 2, "read", "write");
	rec(b, "seccomp_deny", 3, "1", "kexec_load", "swapon");
	rec(b, "seccomp_rule", 3, "22", "openat", "a2&0x101000==1052672");
	rec(b, "personality", 1, "8");
	rec(b, "oom_score_adjust", 1, "-17");
	rec(b, "cpu_affinity", 3, "0", "2", "3");
	rec(b, "cgroup_set", 2, "/sys/fs/cgroup/a/cpu.max", "50000 100000");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0, "security: records parse%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		check(s.sec.n_filters == 2 && s.sec.filters[0].default_act == SEC_ACT_ALLOW &&
			      s.sec.filters[1].default_act == SEC_ACT_ERRNO && s.sec.filters[1].default_errno == 38,
		      "security: two filters with their default actions");
		struct sec_filter *f = &s.sec.filters[1];
		check(f->n_entries == 5 && f->entries[0].kind == SEC_ALLOW && !strcmp(f->entries[1].name, "write") &&
			      f->entries[2].kind == SEC_ERRNO && f->entries[2].err == 1 && !strcmp(f->entries[3].name, "swapon"),
		      "security: allow and deny entries in order");
		struct sec_entry *rule = &f->entries[4];
		check(rule->kind == SEC_RULE && rule->err == 22 && rule->n_conds == 1 && rule->conds[0].arg == 2 &&
			      rule->conds[0].op == 2 && rule->conds[0].mask == 0x101000 && rule->conds[0].value == 0x101000,
		      "security: masked condition");
		struct sec_entry *audit = &s.sec.filters[0].entries[0];
		check(audit->n_conds == 2 && audit->conds[0].op == 0 && audit->conds[0].value == 16 && audit->conds[1].arg == 2,
		      "security: equality conditions");
		check(s.sec.has_personality && s.sec.personality == 8 && s.sec.has_oom && s.sec.oom == -17 && s.sec.n_cpus == 3 &&
			      s.sec.cpus[2] == 3,
		      "security: personality, oom_score_adjust, cpu_affinity");
		check(s.sec.n_sets == 2 && !strcmp(s.sec.sets[1].value, "50000 100000"), "security: cgroup_set in order");
		spec_free(&s);
	}
	struct sec_cond c;
	check(sec_parse_cond("a5<=2147483647", &c) == 0 && c.op == 1 && c.arg == 5, "security: <= condition");
	check(sec_parse_cond("a6==1", &c) < 0 && sec_parse_cond("a0=1", &c) < 0 && sec_parse_cond("a0==x", &c) < 0 &&
		      sec_parse_cond("a0&1==", &c) < 0,
	      "security: bad conditions rejected");

	static const struct {
		const char *name;
		int n;
		const char *a[3];
		const char *needle;
	} bads[] = {
		{ "seccomp_allow", 1, { "read" }, "no \"seccomp_filter\" before it" },
		{ "seccomp_filter", 1, { "bogus" }, "malformed DEFAULT" },
		{ "personality", 1, { "-1" }, "expected one N" },
		{ "oom_score_adjust", 1, { "1001" }, "from -1000 to 1000" },
		{ "cpu_affinity", 0, { 0 }, "expected CPU numbers" },
		{ "cgroup_set", 2, { "relative", "1" }, "expected HPATH VALUE" },
		{ "cgroup_set", 2, { "/a/b", "1\n2" }, "expected HPATH VALUE" },
	};
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		sec_body(b);
		rec(b, bads[i].name, bads[i].n, bads[i].a[0], bads[i].a[1], bads[i].a[2]);
		rec(b, "end", 0);
		bad(b, bads[i].needle, bads[i].name);
	}
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_deny", 2, "1", "Bad-Name");
	rec(b, "end", 0);
	bad(b, "malformed system call name", "a bad system call name");
	sec_body(b);
	rec(b, "personality", 1, "8");
	rec(b, "personality", 1, "0");
	rec(b, "end", 0);
	bad(b, "only one such record", "a duplicate personality");

	/* Effects, in a child (the filter stays with it). */
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_deny", 3, "13", "chdir", "no_such_call_xyz");
	rec(b, "seccomp_deny", 2, "0", "fsync");
	rec(b, "seccomp_rule", 3, "22", "dup3", "a2==524288");
	rec(b, "personality", 1, "8");
	rec(b, "cpu_affinity", 1, "0");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0, "security: effect spec parses");
	if (r == 0) {
		/* without seccomp_cache the supervisor only loads libseccomp (dlopen), for the child */
		int pr = sec_seccomp_prepare(&s.sec, &e);
		check(pr == 0 && !s.sec.prepared && dlopen("libseccomp.so.2", RTLD_NOW | RTLD_NOLOAD) != NULL,
		      "security: without a cache, prepare loads libseccomp and compiles nothing (r=%d)", pr);
		pid_t pid = fork();
		if (pid == 0) {
			struct merr ce = { 0 };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sec_seccomp_load(&s.sec, &ce) < 0)
				_exit(10);
			if (chdir("/") != -1 || errno != EACCES)
				_exit(11);
			if (fsync(-1) != 0) /* errno 0: success without doing anything */
				_exit(12);
			if (dup3(0, 100, O_CLOEXEC) != -1 || errno != EINVAL || dup3(0, 100, 0) != 100)
				_exit(13);
			if (getpid() <= 0)
				_exit(14);
			if (sec_process_setup(&s.sec, &ce) < 0)
				_exit(15);
			if ((personality(0xffffffff) & 0xff) != 8)
				_exit(16);
			_exit(0);
		}
		int st = child_status(pid);
		check(st == 0,
		      "security: filters load (errno, errno 0, argument rule, unknown name skipped), personality set (child status %d)",
		      st);
		spec_free(&s);
	}

	/* seccomp_rule actions and comparisons, seccomp_arch (SPEC.md "Security and resources"). */
	sec_body(b);
	rec(b, "seccomp_filter", 1, "kill_process");
	rec(b, "seccomp_arch", 4, "x86_64", "x86", "no_such_arch", "native");
	rec(b, "seccomp_rule", 4, "allow", "personality", "a0!=8", "a1<7");
	rec(b, "seccomp_rule", 4, "trap", "getsid", "a0>=1", "a1>0x10");
	rec(b, "seccomp_rule", 3, "log", "getpid", "a2<=3");
	rec(b, "seccomp_rule", 2, "kill", "getppid");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0, "security: actions, comparisons and seccomp_arch parse%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0) {
		struct sec_filter *f = &s.sec.filters[0];
		check(f->default_act == SEC_ACT_KILL_PROCESS && f->has_arches && f->n_arches == 3 && f->arches[2] == 0 && f->n_entries == 4,
		      "security: kill_process default, known architectures kept, unknown one ignored");
		check(f->entries[0].act == SEC_ACT_ALLOW && f->entries[0].conds[0].op == SEC_OP_NE &&
			      f->entries[0].conds[1].op == SEC_OP_LT && f->entries[1].act == SEC_ACT_TRAP &&
			      f->entries[1].conds[0].op == SEC_OP_GE && f->entries[1].conds[1].op == SEC_OP_GT &&
			      f->entries[1].conds[1].value == 16 && f->entries[2].act == SEC_ACT_LOG &&
			      f->entries[2].conds[0].op == SEC_OP_LE && f->entries[3].act == SEC_ACT_KILL && f->entries[3].n_conds == 0,
		      "security: rule actions and comparison operators");
		spec_free(&s);
	}
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_rule", 2, "kil", "getppid");
	rec(b, "end", 0);
	bad(b, "malformed ACTION", "a bad rule action");
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_arch", 1, "x86");
	rec(b, "seccomp_arch", 1, "x86_64");
	rec(b, "end", 0);
	bad(b, "only one such record per filter", "two seccomp_arch in one filter");
	check(sec_parse_cond("a0=<1", &c) < 0 && sec_parse_cond("a0!1", &c) < 0 && sec_parse_cond("a0>=", &c) < 0,
	      "security: bad comparisons rejected");

	/* Their effects, in a child: A (default allow, for the native architecture) answers by
	 * comparison; B (default ENOSYS) allows getsid only for a0 == 0; a grandchild dies of
	 * kill_process, another of a filter whose seccomp_arch lists no local architecture.
	 * getsid(0) and getpgid(0) may answer 0: a process whose session began outside its pid
	 * namespace, or below a PID 1 that never called setsid (CI runs so). */
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_arch", 1, "native");
	rec(b, "seccomp_rule", 3, "7", "getpgid", "a0>100000000");
	rec(b, "seccomp_rule", 4, "10", "kill", "a0<1", "a1>=64");
	rec(b, "seccomp_rule", 3, "33", "sched_getscheduler", "a0!=0");
	rec(b, "seccomp_rule", 3, "kill_process", "getpgid", "a0==424242");
	rec(b, "seccomp_filter", 1, "38");
	rec(b, "seccomp_allow", 12, "exit_group", "exit", "getpgid", "kill", "sched_getscheduler", "clone", "clone3", "fork", "wait4",
	    "set_robust_list", "rt_sigprocmask", "gettid");
	rec(b, "seccomp_rule", 3, "allow", "getsid", "a0==0");
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	struct spec none;
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_arch", 1, "mips");
	rec(b, "end", 0);
	int r2 = parse(b, &none, &e);
	check(r == 0 && r2 == 0, "security: effect specs for actions and comparisons parse");
	if (r == 0 && r2 == 0) {
		int pr = sec_seccomp_prepare(&s.sec, &e);
		check(pr == 0, "security: prepare (r=%d)", pr);
		pid_t pid = fork();
		if (pid == 0) {
			struct merr ce = { 0 };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sec_seccomp_load(&s.sec, &ce) < 0)
				_exit(10);
			if (syscall(SYS_getpgid, 200000000L) != -1 || errno != E2BIG || syscall(SYS_getpgid, 0L) < 0)
				_exit(11);
			if (syscall(SYS_kill, 0L, 64L) != -1 || errno != ECHILD || syscall(SYS_kill, 0L, 0L) != 0)
				_exit(12);
			if (syscall(SYS_sched_getscheduler, 1L) != -1 || errno != EDOM || syscall(SYS_sched_getscheduler, 0L) < 0)
				_exit(13);
			if (syscall(SYS_getsid, 0L) < 0 || syscall(SYS_getsid, 1L) != -1 || errno != ENOSYS)
				_exit(14);
			pid_t g = fork();
			if (g == 0) {
				syscall(SYS_getpgid, 424242L);
				_exit(0);
			}
			if (g < 0 || child_status(g) != 128 + SIGSYS)
				_exit(15);
			_exit(0);
		}
		int st = child_status(pid);
		check(st == 0, "security: comparisons, allow rule and kill_process take effect (child status %d)", st);
		pid = fork();
		if (pid == 0) {
			struct merr ce = { 0 };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sec_seccomp_prepare(&none.sec, &ce) < 0 ||
			    sec_seccomp_load(&none.sec, &ce) < 0)
				_exit(10);
			(void)syscall(SYS_getppid);
			_exit(0);
		}
		st = child_status(pid);
		check(st == 128 + SIGSYS, "security: an architecture seccomp_arch does not list is killed (child status %d)", st);
	}
	if (r == 0)
		spec_free(&s);
	if (r2 == 0)
		spec_free(&none);

	/* cgroup_set writes the value; a missing file is an open error naming the path. */
	char dir[] = "/tmp/machina-sec.XXXXXX";
	if (mkdtemp(dir)) {
		char f[300], got[32] = { 0 };
		snprintf(f, sizeof f, "%s/pids.max", dir);
		close(open(f, O_CREAT | O_WRONLY, 0644));
		struct sec_cgset set[2] = { { f, "20" }, { "/nonexistent/x/pids.max", "1" } };
		struct sec one = { .sets = set, .n_sets = 1 };
		memset(&e, 0, sizeof e);
		int w = sec_cgroup_write(&one, &e);
		int fd = open(f, O_RDONLY);
		if (fd >= 0) {
			(void)!read(fd, got, sizeof got - 1);
			close(fd);
		}
		check(w == 0 && !strcmp(got, "20"), "security: cgroup_set writes the value");
		one.sets = set + 1;
		w = sec_cgroup_write(&one, &e);
		check(w == -ENOENT && !strcmp(e.syscall, "open") && !strcmp(e.path, "/nonexistent/x/pids.max"),
		      "security: cgroup_set failure names open and the path");
		unlink(f);
		rmdir(dir);
	}
	free(b);
}

/* seccomp_cache: miss (compiled, stored), hit, corrupt and foreign files rejected and replaced. */
static int sec_cache_spec(struct sb *b, struct spec *s, const char *dir)
{
	struct merr e;
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_deny", 2, "13", "chdir");
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_rule", 3, "22", "dup3", "a2==524288");
	rec(b, "seccomp_cache", 1, dir);
	rec(b, "end", 0);
	return parse(b, s, &e);
}

static int cache_file(const char *dir, char *out, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".bpf") && de->d_name[0] != '.') {
			snprintf(out, n, "%s/%s", dir, de->d_name);
			found++;
		}
	if (d)
		closedir(d);
	return found;
}

static int prepare(struct sb *b, const char *dir, struct spec *s)
{
	struct merr e = { 0 };
	if (sec_cache_spec(b, s, dir) < 0)
		return -100;
	return sec_seccomp_prepare(&s->sec, &e);
}

static void test_seccomp_cache(const char *tmp)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s, s2;
	char dir[300], f[700];
	struct stat st;
	snprintf(dir, sizeof dir, "%s/state/seccomp", tmp);

	int r = prepare(b, dir, &s);
	check(r == 0 && s.sec.prepared && s.sec.n_progs == 6 && cache_file(dir, f, sizeof f) == 1 && stat(dir, &st) == 0 &&
		      (st.st_mode & 07777) == 0700,
	      "seccomp cache: a miss compiles 2 filters x 3 architectures and stores one file, dir 0700 (r=%d)", r);
	check(stat(f, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_uid == 0 && st.st_size % 8 == 0,
	      "seccomp cache: the file is root's, 0600, a multiple of 8 bytes");
	if (r == 0 && s.sec.n_progs == 6) {
		check(s.sec.progs[2].native && !s.sec.progs[0].native && s.sec.progs[5].native && s.sec.progs[3].len > 0,
		      "seccomp cache: native architecture last in each filter");
		pid_t pid = fork();
		if (pid == 0) {
			struct merr ce = { 0 };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sec_seccomp_load(&s.sec, &ce) < 0)
				_exit(10);
			if (chdir("/") != -1 || errno != EACCES)
				_exit(11);
			if (dup3(0, 100, O_CLOEXEC) != -1 || errno != EINVAL || dup3(0, 100, 0) != 100)
				_exit(13);
			_exit(0);
		}
		int cst = child_status(pid);
		check(cst == 0, "seccomp cache: the prepared programs load and take effect (child status %d)", cst);
	}
	unsigned uses = sec_seccomp_lib_uses;
	r = prepare(b, dir, &s2);
	int same = r == 1 && s2.sec.n_progs == s.sec.n_progs;
	check(r == 1 && sec_seccomp_lib_uses == uses, "seccomp cache: a hit needs no libseccomp (key without loading it)");
	sec_seccomp_shed(&s2.sec);
	check(s2.sec.n_filters == 2 && !s2.sec.filters[0].entries && !s2.sec.filters[1].n_entries && s2.sec.prepared,
	      "seccomp cache: once prepared, the parsed filters can be freed (the programs stay)");
	for (size_t i = 0; same && i < s.sec.n_progs; i++)
		same = s.sec.progs[i].len == s2.sec.progs[i].len && s.sec.progs[i].arch == s2.sec.progs[i].arch &&
		       !memcmp(s.sec.progs[i].insns, s2.sec.progs[i].insns, s.sec.progs[i].len * 8);
	check(same, "seccomp cache: a second start hits, with the same programs (r=%d)", r);
	spec_free(&s2);

	/* a different policy is a different file */
	char dir2[300], f2[700];
	struct merr e;
	snprintf(dir2, sizeof dir2, "%s/state/seccomp2", tmp);
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "seccomp_deny", 2, "1", "chdir");
	rec(b, "seccomp_cache", 1, dir2);
	rec(b, "end", 0);
	r = parse(b, &s2, &e) == 0 ? sec_seccomp_prepare(&s2.sec, &e) : -100;
	check(r == 0 && s2.sec.n_progs == 3 && cache_file(dir2, f2, sizeof f2) == 1 && strcmp(strrchr(f, '/'), strrchr(f2, '/')),
	      "seccomp cache: another policy, another file (r=%d)", r);
	spec_free(&s2);
	/* the key covers rule actions, comparison operators and seccomp_arch: each its own file */
	static const char *const variants[][3] = {
		{ "1", "a0==1", NULL }, { "kill", "a0==1", NULL },  { "1", "a0!=1", NULL },
		{ "1", "a0>=1", NULL }, { "1", "a0==1", "native" },
	};
	int distinct = 1;
	for (size_t v = 0; v < ARRAY_SIZE(variants); v++) {
		sec_body(b);
		rec(b, "seccomp_filter", 1, "allow");
		if (variants[v][2])
			rec(b, "seccomp_arch", 1, variants[v][2]);
		rec(b, "seccomp_rule", 3, variants[v][0], "chdir", variants[v][1]);
		rec(b, "seccomp_cache", 1, dir2);
		rec(b, "end", 0);
		r = parse(b, &s2, &e) == 0 ? sec_seccomp_prepare(&s2.sec, &e) : -100;
		distinct += r == 0; /* a miss every time */
		spec_free(&s2);
	}
	check(distinct == 1 + (int)ARRAY_SIZE(variants) && cache_file(dir2, f2, sizeof f2) == distinct,
	      "seccomp cache: actions, operators and seccomp_arch are part of the key (%d files)", distinct);
	spec_free(&s);

	/* corrupt: rejected, recompiled and replaced (the next start hits) */
	static const char *kinds[] = { "truncated", "size not a multiple of 8", "bad magic", "wrong count",
				       "wrong key", "a flipped instruction bit" };
	for (int k = 0; k < 6; k++) {
		int fd = open(f, O_RDWR);
		if (k == 0)
			(void)!ftruncate(fd, 64);
		else if (k == 1)
			(void)!pwrite(fd, "abc", 3, lseek(fd, 0, SEEK_END));
		else if (k == 2)
			(void)!pwrite(fd, "X", 1, 0);
		else if (k == 3)
			(void)!pwrite(fd, "\x05", 1, 12);
		else if (k == 4)
			(void)!pwrite(fd, "\xff", 1, 20);
		else
			(void)!pwrite(fd, "\x01", 1, lseek(fd, 0, SEEK_END) - 3);
		close(fd);
		r = prepare(b, dir, &s);
		int ok = r == 0 && s.sec.n_progs == 6;
		spec_free(&s);
		r = prepare(b, dir, &s);
		check(ok && r == 1 && s.sec.n_progs == 6 && cache_file(dir, f, sizeof f) == 1,
		      "seccomp cache: a corrupt file (%s) is rejected, recompiled and replaced", kinds[k]);
		spec_free(&s);
	}

	/* not root's, or writable by others: rejected (recompiled, replaced by root's own file) */
	if (chown(f, 1, 1) == 0) {
		r = prepare(b, dir, &s);
		spec_free(&s);
		check(r == 0 && stat(f, &st) == 0 && st.st_uid == 0,
		      "seccomp cache: a file not owned by root is rejected and replaced (r=%d)", r);
	}
	chmod(f, 0602);
	r = prepare(b, dir, &s);
	spec_free(&s);
	check(r == 0 && stat(f, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "seccomp cache: a file writable by others is rejected and replaced (r=%d)", r);
	/* a directory writable by others is not used at all: compiled, nothing stored */
	chmod(dir, 0777);
	unlink(f);
	r = prepare(b, dir, &s);
	check(r == 0 && s.sec.n_progs == 6 && access(f, F_OK) < 0, "seccomp cache: a directory writable by others is not used (r=%d)", r);
	spec_free(&s);
	chmod(dir, 0700);
	/* bounded: past 64 files, a miss removes the others (and stale temporary files) */
	for (int k = 0; k < 70; k++) {
		char p[800];
		snprintf(p, sizeof p, "%s/%064d.bpf", dir, k);
		close(open(p, O_CREAT | O_WRONLY, 0600));
	}
	char stale[800];
	snprintf(stale, sizeof stale, "%s/.x.bpf.1.tmp", dir);
	close(open(stale, O_CREAT | O_WRONLY, 0600));
	unlink(f);
	r = prepare(b, dir, &s);
	spec_free(&s);
	check(r == 0 && cache_file(dir, f, sizeof f) == 1 && access(stale, F_OK) < 0,
	      "seccomp cache: more than 64 files: the others are removed on a miss (r=%d)", r);
	/* no seccomp_cache: nothing prepared (the child compiles) */
	sec_body(b);
	rec(b, "seccomp_filter", 1, "allow");
	rec(b, "end", 0);
	r = parse(b, &s, &e) == 0 ? sec_seccomp_prepare(&s.sec, &e) : -100;
	check(r == 0 && !s.sec.prepared, "seccomp cache: without seccomp_cache nothing is prepared");
	spec_free(&s);
	free(b);
}

/* net_* records: parsing and validation (the netlink part runs in the integration tests). */
/* The smallest valid spec with a network namespace, without "end". */
static void net_body(struct sb *b)
{
	hdr_body(b);
	rec(b, "namespaces", 3, "mnt", "pid", "net");
	rec(b, "exec", 2, "/bin/sh", "sh");
}

static void test_net_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	hdr_body(b);
	rec(b, "namespaces", 3, "mnt", "pid", "net");
	rec(b, "net_up", 2, "container", "lo");
	rec(b, "net_veth", 4, "ve-web", "aa:bb:cc:dd:ee:01", "host0", "aa:bb:cc:dd:ee:02");
	rec(b, "net_addr", 3, "host", "ve-web", "10.159.0.1/28");
	rec(b, "net_addr", 3, "container", "host0", "fd6d:6163:6869::2/64");
	rec(b, "net_route", 3, "container", "host0", "10.159.0.1");
	rec(b, "net_master", 3, "host", "vb-web", "vz-lab");
	rec(b, "net_sysctl", 2, "net/ipv4/conf/ve-web/route_localnet", "1");
	rec(b, "prestart", 3, "/usr/sbin/nft", "-f", "/run/machina/net/base.nft");
	rec(b, "prestart_unless_table", 2, "inet", "machina");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0 && s.net.n_ops == 7 && !strcmp(s.net.veth_host, "ve-web") && s.net.ops[0].container && s.net.ops[0].kind == NET_UP &&
		      !s.net.ops[2].container && !strcmp(s.net.ops[2].a[1], "10.159.0.1/28") && s.net.ops[6].kind == NET_SYSCTL,
	      "net_*: records kept in order, SIDE parsed");
	check(r == 0 && s.n_prestart == 3 && !strcmp(s.prestart[2], "/run/machina/net/base.nft"), "prestart: ARGV kept");
	check(r == 0 && !strcmp(s.prestart_unless_family, "inet") && !strcmp(s.prestart_unless_table, "machina"),
	      "prestart_unless_table: FAMILY and NAME kept");
	if (r == 0)
		spec_free(&s);
	static const struct bad_spec bads[] = {
		{ min_body, { "net_up", "container", "lo", NULL, NULL }, "need a network namespace", "net_* without a network namespace" },
		{ net_body,
		  { "net_veth", "ve-web", "aa:bb:cc:dd:ee", "host0", "aa:bb:cc:dd:ee:02", NULL, NULL },
		  "HOSTMAC",
		  "net_veth with a short MAC" },
		{ net_body,
		  { "net_veth", "ve-averyveryverylongname", "aa:bb:cc:dd:ee:01", "host0", "aa:bb:cc:dd:ee:02", NULL, NULL },
		  "HOST",
		  "net_veth with a name over 15 bytes" },
		{ net_body, { "net_addr", "guest", "host0", "10.0.0.1/8", NULL, NULL }, "SIDE", "net_addr with a bad side" },
		{ net_body, { "net_addr", "container", "host0", "10.0.0.1/33", NULL, NULL }, "ADDR/PREFIX", "net_addr with a bad prefix" },
		{ net_body, { "net_route", "container", "host0", "10.0.0.1/8", NULL, NULL }, "GATEWAY", "net_route with a prefix" },
		{ net_body, { "net_sysctl", "../../etc/x", "1", NULL, NULL }, "KEY", "net_sysctl escaping /proc/sys" },
		{ net_body,
		  { "prestart_unless_table", "arp", "machina", NULL, NULL },
		  "FAMILY",
		  "prestart_unless_table of another family" },
		{ net_body, { "prestart_unless_table", "inet", "", NULL, NULL }, "NAME", "prestart_unless_table without a name" },
	};
	BAD_SPECS(b, bads);
	unsigned char a[16];
	int fam, pfx;
	check(net_parse_prefix("fd6d::1/64", &fam, a, &pfx) == 0 && fam == AF_INET6 && pfx == 64 && a[0] == 0xfd && a[15] == 1,
	      "net_parse_prefix v6");
	check(net_parse_prefix("10.1.2.3", &fam, a, &pfx) == 0 && fam == AF_INET && pfx == 32 && a[3] == 3,
	      "net_parse_prefix v4 without prefix");
	check(nft_table_exists("arp", "machina") == -EAFNOSUPPORT, "nft_table_exists: another family refused");
	/* root, with nft: a table of the test's own, made and deleted by nft, read by netlink */
	if (geteuid() == 0 && access("/usr/sbin/nft", X_OK) == 0) {
		char name[64], cmd[160];
		snprintf(name, sizeof name, "machina_test_%d", (int)getpid());
		check(nft_table_exists("inet", name) == 0, "nft_table_exists: a missing table is 0");
		snprintf(cmd, sizeof cmd, "/usr/sbin/nft add table inet %s", name);
		if (system(cmd) == 0) {
			check(nft_table_exists("inet", name) == 1, "nft_table_exists: nft's table is found");
			check(nft_table_exists("ip", name) == 0, "nft_table_exists: only in its own family");
			snprintf(cmd, sizeof cmd, "/usr/sbin/nft delete table inet %s", name);
			check(system(cmd) == 0 && nft_table_exists("inet", name) == 0, "nft_table_exists: gone once deleted");
		} else
			check(0, "nft add table (for nft_table_exists)");
	}
	free(b);
}

/* host_umount: parsing, and the supervisor's detaching of host mounts at exit (root). */
/* image_lock: parsing, and the locks themselves (a second exclusive or mixed lock is EBUSY) */
static void image_lock_body(struct sb *b, const char *path, const char *mode)
{
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "image_lock", 3, path, mode, "/var/lib/machines/web");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
}

static void test_image_lock(const char *tmp)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s1, s2, s3;
	struct merr e;
	char path[512];
	snprintf(path, sizeof path, "%s/image-use-lock", tmp);
	image_lock_body(b, "relative", "shared");
	bad(b, "HPATH (a lock file)", "a relative image_lock");
	image_lock_body(b, "/x", "both");
	bad(b, "MODE (exclusive or shared)", "an image_lock mode other than exclusive/shared");
	image_lock_body(b, path, "exclusive");
	int r = parse(b, &s1, &e);
	int parsed1 = r == 0;
	check(r == 0 && s1.n_image_locks == 1 && s1.image_locks[0].exclusive && !strcmp(s1.image_locks[0].image, "/var/lib/machines/web"),
	      "image_lock: parsed");
	if (!parsed1)
		goto out;
	image_lock_body(b, path, "shared");
	if (parse(b, &s2, &e) < 0 || parse(b, &s3, &e) < 0) {
		check(0, "image_lock: shared records parse");
		goto out;
	}
	/* each spec_parse'd spec stands for one supervisor; flock(2) locks belong to the open file */
	check(image_locks_take(&s1, &e) == 0, "image_lock: exclusive lock taken");
	memset(&e, 0, sizeof e);
	r = image_locks_take(&s2, &e);
	check(r == -EBUSY && strstr(e.msg, "image \"/var/lib/machines/web\" is in use by another container"),
	      "image_lock: a shared lock while an exclusive one is held is EBUSY, naming the image");
	/* the holder goes away: its fd is closed (as by the kernel at exit) */
	for (int fd = 3; fd < 1024; fd++) {
		char l[64], t[600];
		snprintf(l, sizeof l, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(l, t, sizeof t - 1);
		if (n > 0 && (t[n] = 0, !strcmp(t, path)))
			close(fd);
	}
	check(image_locks_take(&s2, &e) == 0 && image_locks_take(&s3, &e) == 0,
	      "image_lock: shared locks together, after the holder is gone");
	memset(&e, 0, sizeof e);
	check(image_locks_take(&s1, &e) == -EBUSY, "image_lock: an exclusive lock while shared ones are held is EBUSY");
	spec_free(&s2);
	spec_free(&s3);
out:
	if (parsed1)
		spec_free(&s1);
	free(b);
}

static void test_host_umount_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	b->len = 0;
	sb_str(b, "MACHINA-SPEC");
	sb_str(b, "1");
	rec(b, "root", 1, "/run/machina/raw-mounts/x/root");
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "host_umount", 1, "/run/machina/raw-mounts/x/root");
	rec(b, "host_umount", 1, "/run/machina/raw-mounts/x/usr");
	rec(b, "host_remove", 1, "/run/machina/raw-mounts/x/record.json");
	rec(b, "host_remove", 1, "/run/machina/raw-mounts/x");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0 && s.n_host_umounts == 2 && !strcmp(s.host_umounts[1], "/run/machina/raw-mounts/x/usr"),
	      "host_umount: repeated HPATHs");
	check(r == 0 && s.n_host_removes == 2 && !strcmp(s.host_removes[1], "/run/machina/raw-mounts/x"),
	      "host_remove: repeated HPATHs, in order");
	if (r == 0)
		spec_free(&s);
	static const struct bad_spec bads[] = {
		{ min_body, { "host_umount", "relative", NULL, NULL }, "HPATH (not the root)", "host_umount with a relative path" },
		{ min_body, { "host_umount", "/", NULL, NULL }, "HPATH (not the root)", "host_umount /" },
	};
	BAD_SPECS(b, bads);
	free(b);
}

static void test_host_umount_ops(const char *tmp)
{
	pid_t pid = fork();
	if (pid == 0) {
		char a[512], c[512];
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(10);
		snprintf(a, sizeof a, "%s/hm-root", tmp);
		snprintf(c, sizeof c, "%s/hm-missing", tmp);
		mkdir(a, 0755);
		/* two stacked mounts on one path: both are detached */
		if (mount("t1", a, "tmpfs", 0, NULL) < 0 || mount("t2", a, "tmpfs", 0, NULL) < 0)
			_exit(11);
		/* host_remove: a record file, then its directory (removed only when empty) */
		char d[512], f[512], keep[512], kf[512];
		snprintf(d, sizeof d, "%s/hm-dir", tmp);
		snprintf(f, sizeof f, "%s/hm-dir/record.json", tmp);
		snprintf(keep, sizeof keep, "%s/hm-keep", tmp);
		snprintf(kf, sizeof kf, "%s/hm-keep/other", tmp);
		mkdir(d, 0755);
		mkdir(keep, 0755);
		close(open(f, O_CREAT | O_WRONLY, 0600));
		close(open(kf, O_CREAT | O_WRONLY, 0600));
		const char *paths[] = { c, a };
		const char *removes[] = { f, d, keep };
		struct spec s = { .host_umounts = paths, .n_host_umounts = 2, .host_removes = removes, .n_host_removes = 3 };
		host_umounts(&s);
		struct stat st;
		if (stat(d, &st) == 0 || stat(kf, &st) < 0)
			_exit(14);
		unlink(kf);
		rmdir(keep);
		_exit(stat(a, &st) == 0 ? 12 : errno == ENOENT ? 0 : 13);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "host_umount: stacked mounts detached, mount point removed, missing path ignored; host_remove: file, then empty directory, a "
	      "non-empty one kept (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* on_leader and supervisor_cgroup: parsing; hook_run's {leader} substitution, exit status,
 * quiet stdout and timeout; cgroup_enter_self (root, cgroup2). */
static void test_hooks_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	rec(b, "on_leader", 4, "/usr/bin/busctl", "call", "{leader}", "x");
	rec(b, "supervisor_cgroup", 1, "/sys/fs/cgroup/system.slice/a.service/supervisor");
	rec(b, "exec", 2, "/bin/sh", "sh");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0 && s.n_on_leader == 4 && !strcmp(s.on_leader[2], "{leader}") &&
		      !strcmp(s.supervisor_cgroup, "/sys/fs/cgroup/system.slice/a.service/supervisor"),
	      "on_leader ARGV and supervisor_cgroup HPATH parse");
	if (r == 0)
		spec_free(&s);
	static const struct bad_spec bads[] = {
		{ min_body, { "on_leader", "busctl", NULL, NULL }, "ARGV (an absolute program path first)", "on_leader busctl" },
		{ min_body, { "supervisor_cgroup", "relative", NULL, NULL }, "HPATH", "supervisor_cgroup relative" },
		{ min_body, { "supervisor_cgroup", "/", NULL, NULL }, "HPATH", "supervisor_cgroup /" },
		{ min_body,
		  { "on_leader", "/bin/true", NULL, "on_leader", "/bin/true", NULL, NULL },
		  "duplicate record",
		  "on_leader twice" },
	};
	BAD_SPECS(b, bads);
	free(b);
}

/* oci_hook, oci_hook_state (SPEC.md "OCI runtime") */
static void test_oci_hooks_spec(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	min_body(b);
	rec(b, "exec_fifo", 1, "/run/x/exec.fifo");
	rec(b, "oci_hook", 7, "create_container", "/usr/bin/h", "5", "2", "h", "a1", "K=V");
	rec(b, "oci_hook", 5, "start_container", "/bin/s", "0", "1", "s");
	rec(b, "oci_hook", 5, "create_container", "/usr/bin/g", "0", "1", "g");
	rec(b, "oci_hook_state", 2, "create_container", "\"id\":\"c\",\"status\":\"creating\"");
	rec(b, "oci_hook_state", 2, "start_container", "\"id\":\"c\",\"status\":\"created\"");
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0 && s.n_oci_hooks == 3 && s.oci_hooks[0].stage == OCI_HOOK_CREATE_CONTAINER &&
		      !strcmp(s.oci_hooks[0].path, "/usr/bin/h") && s.oci_hooks[0].timeout_s == 5 && s.oci_hooks[0].n_argv == 2 &&
		      !strcmp(s.oci_hooks[0].argv[1], "a1") && s.oci_hooks[0].n_env == 1 && !strcmp(s.oci_hooks[0].env[0], "K=V") &&
		      s.oci_hooks[1].stage == OCI_HOOK_START_CONTAINER && s.oci_hooks[1].n_env == 0 && s.oci_hooks[2].n_argv == 1 &&
		      !strcmp(s.oci_hook_state[OCI_HOOK_START_CONTAINER], "\"id\":\"c\",\"status\":\"created\""),
	      "oci_hook STAGE PATH TIMEOUT NARGV ARGV ENV and oci_hook_state parse, in order%s%s", r ? ": " : "", r ? e.msg : "");
	if (r == 0)
		spec_free(&s);
	static const struct bad_spec bads[] = {
		{ min_body,
		  { "oci_hook", "prestart", "/h", "0", "1", "h", NULL, NULL },
		  "STAGE (create_container or start_container)",
		  NULL },
		{ min_body, { "oci_hook", "create_container", "h", "0", "1", "h", NULL, NULL }, "PATH (absolute)", NULL },
		{ min_body, { "oci_hook", "create_container", "/h", "-1", "1", "h", NULL, NULL }, "TIMEOUT", NULL },
		{ min_body, { "oci_hook", "create_container", "/h", "0", "0", "h", NULL, NULL }, "NARGV", "oci_hook without argv[0]" },
		{ min_body,
		  { "oci_hook", "create_container", "/h", "0", "2", "h", NULL, NULL },
		  "NARGV",
		  "oci_hook NARGV past its arguments" },
		{ min_body, { "oci_hook", "create_container", "/h", "0", "1", "h", "NOEQUALS", NULL, NULL }, "ENV (NAME=VALUE)", NULL },
		{ min_body,
		  { "oci_hook", "create_container", "/h", "0", "1", "h", NULL, NULL },
		  "needs the \"oci_hook_state\"",
		  "oci_hook without its state" },
		{ min_body,
		  { "oci_hook", "start_container", "/h", "0", "1", "h", NULL, "oci_hook_state", "start_container", "\"id\":\"c\"", NULL,
		    NULL },
		  "needs \"exec_fifo\"",
		  "start_container without exec_fifo" },
		{ min_body,
		  { "oci_hook_state", "create_container", "a", NULL, "oci_hook_state", "create_container", "b", NULL, NULL },
		  "duplicate record \"oci_hook_state\" for stage",
		  "oci_hook_state twice for a stage" },
	};
	BAD_SPECS(b, bads);
	free(b);
}

/* oci_hooks_run: the state on stdin with our pid, ARGV and exactly ENV, cwd; failure and timeout stop it */
static void test_oci_hooks_run(const char *tmp)
{
	char cmd[700], out[512], buf[512] = "";
	snprintf(out, sizeof out, "%s/oci-hook-out", tmp);
	snprintf(cmd, sizeof cmd, "{ cat; echo \" $0 $1 $(tr \\\\0 , < /proc/$$/environ) $(pwd)\"; } > %s", out);
	const char *argv1[] = { "sh", "-c", cmd, "zero", "one" };
	const char *env1[] = { "K=V" };
	const char *argv2[] = { "sh", "-c", "exit 4" };
	struct oci_hook hooks[] = {
		{ OCI_HOOK_CREATE_CONTAINER, "/bin/sh", 0, argv1, 5, env1, 1 },
		{ OCI_HOOK_START_CONTAINER, "/bin/sh", 0, argv2, 3, NULL, 0 },
	};
	struct spec s = { 0 };
	s.oci_hooks = hooks;
	s.n_oci_hooks = 2;
	s.oci_hook_state[OCI_HOOK_CREATE_CONTAINER] = "\"status\":\"creating\"";
	s.oci_hook_state[OCI_HOOK_START_CONTAINER] = "\"status\":\"created\"";
	struct merr e = { 0 };
	int dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = oci_hooks_run(&s, OCI_HOOK_CREATE_CONTAINER, dfd, &e);
	close(dfd);
	FILE *f = fopen(out, "r");
	size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	buf[got] = 0;
	if (f)
		fclose(f);
	char want[200];
	snprintf(want, sizeof want, "{\"pid\":%d,\"status\":\"creating\"} zero one K=V, /\n", (int)getpid());
	check(r == 0 && !strcmp(buf, want), "oci_hooks_run: state on stdin, argv, exactly env, cwd (\"%s\")", buf);
	r = oci_hooks_run(&s, OCI_HOOK_START_CONTAINER, -1, &e);
	check(r < 0 && strstr(e.msg, "startContainer hook 0 (\"/bin/sh\") failed with exit status 4"),
	      "oci_hooks_run: a failing hook fails the stage (%s)", e.msg);
	const char *argv3[] = { "sleep", "5" };
	struct oci_hook slow = { OCI_HOOK_START_CONTAINER, "/bin/sleep", 1, argv3, 2, NULL, 0 };
	s.oci_hooks = &slow;
	s.n_oci_hooks = 1;
	r = oci_hooks_run(&s, OCI_HOOK_START_CONTAINER, -1, &e);
	check(r < 0 && e.err == ETIMEDOUT && strstr(e.msg, "did not finish within 1 s"), "oci_hooks_run: killed after its timeout (%s)",
	      e.msg);
	r = oci_hooks_run(&s, OCI_HOOK_CREATE_CONTAINER, -1, &e);
	check(r == 0, "oci_hooks_run: no hook of the stage, nothing run");
}

static void test_hooks_run(const char *tmp)
{
	char out[512], cmd[700], buf[64] = "";
	snprintf(out, sizeof out, "%s/hook-out", tmp);
	snprintf(cmd, sizeof cmd, "echo \"$1 $2 $#\" > %s; echo noise; exit 3", out);
	const char *argv[] = { "/bin/sh", "-c", cmd, "sh", "{leader}", "x{leader}" };
	int to = 0;
	/* stdout to a pipe we read: with quiet_stdout, "noise" must not arrive */
	int p[2];
	if (pipe(p) < 0) {
		check(0, "pipe");
		return;
	}
	int saved = dup(1);
	dup2(p[1], 1);
	close(p[1]);
	int st = hook_run(argv, 6, 4242, 1, 5000, &to);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	char pb[64];
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	ssize_t got = read(p[0], pb, sizeof pb);
	close(p[0]);
	FILE *f = fopen(out, "r");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	check(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3 && !to && !strcmp(buf, "4242 x{leader} 2\n") && got <= 0,
	      "hook_run: {leader} replaced (whole arguments only), exit status returned, stdout quiet (st=%d, \"%s\", got %zd)", st, buf,
	      got);
	const char *slow[] = { "/bin/sleep", "5" };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = hook_run(slow, 2, 0, 1, 100, &to);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	check(st == -1 && to && ms < 2000, "hook_run: killed after the timeout (%ld ms)", ms);
	const char *missing[] = { "/nonexistent/hook" };
	int fd2 = dup(2), nul = open("/dev/null", O_WRONLY);
	dup2(nul, 2);
	st = hook_run(missing, 1, 0, 1, 5000, &to);
	dup2(fd2, 2);
	close(fd2);
	close(nul);
	check(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 127 && !to, "hook_run: a missing program exits 127");
}

static long fsize(const char *dir, const char *name)
{
	char p[600];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void fread_all(const char *dir, const char *name, char *out, size_t sz)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	out[0] = 0;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, sz - 1);
	out[n > 0 ? n : 0] = 0;
	close(fd);
}

/* conlog: size bound, rotation chain, line splits, the pipe, a long line (no root needed) */
static void test_conlog(void)
{
	char tmp[] = "/tmp/machina-conlog.XXXXXX";
	if (!mkdtemp(tmp)) {
		check(0, "mkdtemp");
		return;
	}
	char path[600], buf[4096];
	snprintf(path, sizeof path, "%s/c.log", tmp);
	struct conlog c;
	struct merr e = { 0 };
	check(conlog_open(&c, path, 20, 3, 0, 1, &e) == 0 && c.fd >= 0 && c.rfd >= 0 && c.wfd >= 0, "conlog: open with a pipe");
	struct stat st;
	check(fstat(c.fd, &st) == 0 && (st.st_mode & 0777) == 0600 && (fcntl(c.fd, F_GETFD) & FD_CLOEXEC) &&
		      (fcntl(c.rfd, F_GETFL) & O_NONBLOCK),
	      "conlog: file 0600, close-on-exec; pipe read end non-blocking");
	conlog_write(&c, "line1\nline2\n", 12);
	check(fsize(tmp, "c.log") == 12 && fsize(tmp, "c.log.1") == -1, "conlog: below the bound, no rotation");
	conlog_write(&c, "line3\nline4\n", 12); /* 24 > 20: line3 fits, then rotate */
	fread_all(tmp, "c.log.1", buf, sizeof buf);
	check(!strcmp(buf, "line1\nline2\nline3\n"), "conlog: split after the last newline that fits (\"%s\")", buf);
	fread_all(tmp, "c.log", buf, sizeof buf);
	check(!strcmp(buf, "line4\n"), "conlog: the rest starts the new file (\"%s\")", buf);
	for (int i = 0; i < 20; i++)
		conlog_write(&c, "0123456789\n", 11);
	check(fsize(tmp, "c.log") <= 20 && fsize(tmp, "c.log.1") <= 20 && fsize(tmp, "c.log.2") <= 20 && fsize(tmp, "c.log.3") == -1,
	      "conlog: every file within MAXBYTES, KEEP files in all (%ld %ld %ld)", fsize(tmp, "c.log"), fsize(tmp, "c.log.1"),
	      fsize(tmp, "c.log.2"));
	conlog_write(&c, "a-line-of-forty-five-bytes-longer-than-max!!\n", 45);
	check(fsize(tmp, "c.log") <= 20 && fsize(tmp, "c.log.1") == 20 && fsize(tmp, "c.log.2") == 20,
	      "conlog: a line longer than MAXBYTES is split");
	conlog_rotate(&c);
	/* the pipe: what the payload writes arrives through conlog_pump */
	(void)!write(c.wfd, "from-pipe\n", 10);
	conlog_pump(&c, 0);
	fread_all(tmp, "c.log", buf, sizeof buf);
	check(!strcmp(buf, "from-pipe\n"), "conlog: pipe pumped into the file (\"%s\")", buf);
	/* a file that cannot shrink (rename fails: HPATH.1 is a non-empty directory): dropped, no endless loop */
	conlog_close(&c);
	char d[700];
	snprintf(d, sizeof d, "%s/k.log.1", tmp);
	mkdir(d, 0700);
	snprintf(d, sizeof d, "%s/k.log.1/x", tmp);
	close(open(d, O_WRONLY | O_CREAT, 0600));
	snprintf(path, sizeof path, "%s/k.log", tmp);
	check(conlog_open(&c, path, 10, 2, 0, 0, &e) == 0 && c.rfd == -1, "conlog: open without a pipe");
	conlog_write(&c, "123456789\n", 10);
	conlog_write(&c, "abc\n", 4);
	check(fsize(tmp, "k.log") <= 10 && c.dropped > 0, "conlog: output dropped when rotation fails (size %ld, dropped %lu)",
	      fsize(tmp, "k.log"), (unsigned long)c.dropped);
	conlog_close(&c);
	snprintf(path, sizeof path, "%s/one.log", tmp);
	conlog_open(&c, path, 10, 1, 0, 0, &e);
	conlog_write(&c, "123456789\nabc\n", 14);
	fread_all(tmp, "one.log", buf, sizeof buf);
	check(!strcmp(buf, "abc\n") && fsize(tmp, "one.log.1") == -1, "conlog: KEEP 1 truncates in place");
	conlog_close(&c);
	rm_rf(tmp);
}

static void test_cgroup_enter_self(void)
{
	const char *v2 = NULL;
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		v2 = "/sys/fs/cgroup";
	else if (statfs("/sys/fs/cgroup/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		v2 = "/sys/fs/cgroup/unified";
	if (!v2) {
		printf("# skipping cgroup_enter_self: no cgroup2 hierarchy\n");
		return;
	}
	char unit[256], sup[300];
	snprintf(unit, sizeof unit, "%s/machina-test-%d.service", v2, (int)getpid());
	snprintf(sup, sizeof sup, "%s/supervisor", unit);
	pid_t pid = fork();
	if (pid == 0) {
		struct merr e = { 0 };
		if (cgroup_enter_self(sup, &e) < 0)
			_exit(10);
		char line[512], want[300];
		FILE *f = fopen("/proc/self/cgroup", "r");
		int found = 0;
		snprintf(want, sizeof want, "0::%s\n", sup + strlen(v2));
		while (f && fgets(line, sizeof line, f))
			found |= !strcmp(line, want);
		_exit(found ? 0 : 11);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cgroup_enter_self: cgroup created with parents, the process moved in (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	rmdir(sup);
	rmdir(unit);
	struct merr e = { 0 };
	check(cgroup_enter_self("/proc/nonexistent/x", &e) < 0 && !strcmp(e.syscall, "mkdir"), "cgroup_enter_self: failure names mkdir");
}

/* selinux_context (-Z): the record, and the write of the exec label (selinux.c). */
static void selinux_body(struct sb *b, const char *label)
{
	hdr_body(b);
	rec(b, "namespaces", 2, "mnt", "pid");
	if (label)
		rec(b, "selinux_context", 1, label);
	rec(b, "exec", 2, "/bin/sh", "sh");
}

static void test_selinux(void)
{
	struct sb *b = calloc(1, sizeof *b);
	struct spec s;
	struct merr e;
	const char *label = "system_u:system_r:container_t:s0:c1,c2";
	selinux_body(b, label);
	rec(b, "end", 0);
	int r = parse(b, &s, &e);
	check(r == 0 && s.selinux_context && !strcmp(s.selinux_context, label), "selinux_context: parsed%s%s", r ? ": " : "",
	      r ? e.msg : "");
	if (r == 0)
		spec_free(&s);
	selinux_body(b, NULL);
	rec(b, "end", 0);
	r = parse(b, &s, &e);
	check(r == 0 && s.selinux_context == NULL, "selinux_context: absent = no label");
	if (r == 0)
		spec_free(&s);
	static const struct bad_spec bads[] = {
		{ min_body, { "selinux_context", "", NULL, NULL }, "malformed LABEL", "selinux_context with an empty label" },
		{ min_body, { "selinux_context", "a:b:c\nd", NULL, NULL }, "malformed LABEL", "selinux_context over two lines" },
		{ min_body,
		  { "selinux_context", "x:y:z", NULL, "selinux_context", "x:y:z", NULL, NULL },
		  "selinux_context",
		  "selinux_context twice" },
	};
	BAD_SPECS(b, bads);

	/* The write, to a file standing in for /proc/thread-self/attr/exec: the label and its NUL,
	 * in one write, nothing else (the file is not truncated by open: the kernel's is not either). */
	char path[] = "/tmp/machina-selinux.XXXXXX";
	int fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	memset(&e, 0, sizeof e);
	char back[128] = { 0 };
	r = selinux_set_exec_label(path, label, &e);
	ssize_t n = read_file(path, back, sizeof back);
	check(fd >= 0 && r == 0 && n == (ssize_t)strlen(label) + 1 && !memcmp(back, label, strlen(label) + 1),
	      "selinux_set_exec_label: writes the label with its trailing NUL (r=%d, %zd bytes)", r, n);
	unlink(path);
	memset(&e, 0, sizeof e);
	r = selinux_set_exec_label(path, label, &e);
	check(r == -ENOENT && !strcmp(e.syscall, "open") && !strcmp(e.path, path) && strstr(e.msg, "SELinux exec label"),
	      "selinux_set_exec_label: a missing attribute file is an error naming open and the path");

	/* The kernel's file, in a child (the label would otherwise stay on this process): a label
	 * that no policy has is refused with EINVAL, with or without SELinux enabled. */
	int pfd[2];
	if (pipe(pfd) < 0) {
		check(0, "pipe");
		free(b);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct merr ce = { 0 };
		close(pfd[0]);
		int cr = selinux_set_exec_label(SELINUX_EXEC_ATTR, "machina_test_u:no_such_r:no_such_t:s0", &ce);
		(void)!write(pfd[1], &ce, sizeof ce);
		_exit(cr < 0 ? 0 : 1);
	}
	close(pfd[1]);
	struct merr ce = { 0 };
	ssize_t got = read(pfd[0], &ce, sizeof ce);
	close(pfd[0]);
	int st = -1;
	waitpid(pid, &st, 0);
	char line[1024];
	merr_format(&ce, "machina-nspawn", line, sizeof line);
	check(got == (ssize_t)sizeof ce && WIFEXITED(st) && WEXITSTATUS(st) == 0 && ce.err == EINVAL && !strcmp(ce.syscall, "write") &&
		      !strcmp(ce.path, SELINUX_EXEC_ATTR),
	      "selinux_set_exec_label: %s rejects an unknown label: %s", SELINUX_EXEC_ATTR, line);
	free(b);
}

/* device_policy / device_allow: parsing, the program's shape, and (root, cgroup2) the policy
 * really refusing a device node that is not allowed while the allowed ones work. */
static void test_devices(void)
{
	struct device_rule r;
	const char *bad = NULL;
	const char *ok1[] = { "c", "1", "3", "rwm" }, *ok2[] = { "c", "136", "*", "rw" };
	check(devices_parse_allow(&r, ok1, &bad) == 0 && r.type == BPF_DEVCG_DEV_CHAR && r.major == 1 && r.minor == 3 && r.access == 7,
	      "device_allow c 1 3 rwm");
	check(devices_parse_allow(&r, ok2, &bad) == 0 && r.minor == -1 && r.access == (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE),
	      "device_allow c 136 * rw");
	const char *bads[][4] = { { "x", "1", "3", "r" }, { "c", "-1", "3", "r" }, { "c", "1", "z", "r" },
				  { "c", "1", "3", "" },  { "c", "1", "3", "rr" }, { "c", "1", "3", "q" } };
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		int pr = devices_parse_allow(&r, bads[i], &bad);
		check(pr == -EINVAL, "device_allow %s %s %s \"%s\" refused (%s)", bads[i][0], bads[i][1], bads[i][2], bads[i][3], bad);
	}
	struct device_rule rules[2] = { { BPF_DEVCG_DEV_CHAR, 1, 3, 7 }, { BPF_DEVCG_DEV_CHAR, 136, -1, 6 } };
	struct bpf_insn prog[64];
	size_t n = devices_program(rules, 2, prog, ARRAY_SIZE(prog));
	/* 6 loads, rule 1: type, major, minor, r0=1, exit; rule 2: type, mov, and, jne, major, r0=1, exit; default deny */
	check(n == 6 + 5 + 7 + 2 && prog[n - 1].code == (BPF_JMP | BPF_EXIT) && prog[n - 2].imm == 0 && prog[6].off == 4,
	      "device program: %zu instructions, a mismatch skips to the next rule", n);
	check(devices_program(rules, 2, prog, 10) == 0, "device program: too small a buffer is refused");
	struct statfs sf;
	if (geteuid() != 0 || statfs("/sys/fs/cgroup/unified", &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return;
	char cg[128];
	snprintf(cg, sizeof cg, "/sys/fs/cgroup/unified/machina-test-devices-%d", (int)getpid());
	if (mkdir(cg, 0755) < 0) {
		check(0, "mkdir %s", cg);
		return;
	}
	struct merr e = { 0 };
	struct device_rule null_only[1] = { { BPF_DEVCG_DEV_CHAR, 1, 3, 7 } };
	int ar = devices_apply(cg, null_only, 1, &e);
	check(ar == 0, "device policy attached to %s (%s)", cg, e.msg);
	pid_t pid = fork();
	if (pid == 0) {
		char procs[160], me[16];
		snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
		int fd = open(procs, O_WRONLY);
		int l = snprintf(me, sizeof me, "%d", (int)getpid());
		if (fd < 0 || write(fd, me, (size_t)l) < 0)
			_exit(10);
		close(fd);
		int null = open("/dev/null", O_WRONLY);
		int zero = open("/dev/zero", O_RDONLY);
		_exit(null < 0 ? 11 : zero >= 0 ? 12 : errno == EPERM ? 0 : 13);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "device policy: /dev/null allowed, /dev/zero refused with EPERM (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	rmdir(cg);
}

/* SHA-256 known answers (FIPS 180-2, appendix B, and the empty message), whole and in pieces that
 * cross block boundaries: the seccomp cache key (security.c) relies on them. */
static void test_sha256(void)
{
	static const struct {
		const char *what, *msg;
		size_t repeat; /* the message this many times */
		const char *hex;
	} kat[] = {
		{ "\"abc\"", "abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "the empty message", "", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "the 448-bit message", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "one million \"a\"", "a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
	};
	for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		size_t len = strlen(kat[i].msg) * kat[i].repeat;
		char *m = malloc(len + 1);
		for (size_t k = 0; k < kat[i].repeat; k++)
			memcpy(m + k * strlen(kat[i].msg), kat[i].msg, strlen(kat[i].msg));
		/* whole, then in 1-, 63- and 65-byte pieces */
		static const size_t steps[] = { 0, 1, 63, 65 };
		for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++) {
			struct sha256 c;
			uint8_t out[32];
			char hex[65];
			sha256_init(&c);
			size_t step = steps[j] ? steps[j] : (len ? len : 1);
			for (size_t off = 0; off < len; off += step)
				sha256_update(&c, m + off, len - off < step ? len - off : step);
			sha256_final(&c, out);
			for (int b = 0; b < 32; b++)
				snprintf(hex + 2 * b, 3, "%02x", out[b]);
			check(!strcmp(hex, kat[i].hex), "sha256 of %s (%s)", kat[i].what,
			      steps[j] ? (steps[j] == 1    ? "byte by byte"
					  : steps[j] == 63 ? "63-byte pieces"
							   : "65-byte pieces")
				       : "whole");
		}
		free(m);
	}
}

int main(void)
{
	test_spec();
	test_sha256();
	test_errors();
	test_copy_fd();
	test_userns();
	test_idmap_bind_spec();
	test_security();
	test_binds_spec();
	test_host_umount_spec();
	test_net_spec();
	test_hooks_spec();
	test_oci_hooks_spec();
	test_conlog();
	test_selinux();
	test_devices();
	if (geteuid() == 0) {
		char tmp[] = "/tmp/machina-test.XXXXXX";
		if (!mkdtemp(tmp)) {
			check(0, "mkdtemp");
		} else {
			test_resolve(tmp);
			test_ops(tmp);
			test_copy_remove(tmp);
			test_userns_chown(tmp);
			test_idmap_bind_ops(tmp);
			test_copy_socket(tmp);
			test_binds_ops(tmp);
			test_seccomp_cache(tmp);
			test_host_umount_ops(tmp);
			test_image_lock(tmp);
			test_hooks_run(tmp);
			test_oci_hooks_run(tmp);
			test_cgroup_enter_self();
			rm_rf(tmp);
			check(!exists(tmp), "cleanup: temporary root removed");
		}
	} else {
		printf("# skipping resolution and op tests: they need root\n");
	}
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
