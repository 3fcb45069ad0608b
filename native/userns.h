/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* User namespaces (SPEC.md "User namespaces"): ID maps written by the supervisor, the range
 * lock, the recursive chown of the tree, the idmapped root, filesystems created on the host
 * side (fsmount), cgroup ownership, and the child becoming root of its namespace. */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct idmap_line {
	unsigned long inside, outside, count;
};

struct userns_spec {
	int enabled; /* "user" in namespaces */
	struct idmap_line *uid_map, *gid_map;
	size_t n_uid_map, n_gid_map;
	int has_cgroup_owner;
	uid_t cgroup_uid;
	gid_t cgroup_gid;
	const char *lock; /* userns_lock HPATH */
	int has_chown;    /* chown_root BASE COUNT */
	unsigned long chown_base, chown_count;
	int has_idmap_root; /* idmap_root OUTSIDE COUNT */
	unsigned long idmap_base, idmap_count;
	/* runtime */
	int lock_fd;
	int root_tree_fd; /* detached idmapped tree of the root (per run) */
};

struct spec;
struct op;

/* Parse one of: uid_map gid_map cgroup_owner userns_lock chown_root idmap_root.
 * Returns 0, -ENOMEM, or -EINVAL with *bad naming the malformed argument. */
int userns_parse_record(struct userns_spec *u, const char *name, const char **a, size_t n, const char **bad);
/* Checks after the whole spec was read; 0 or -EINVAL with a message in *why. */
int userns_validate(const struct userns_spec *u, const char **why);
void userns_spec_free(struct userns_spec *u);

/* Supervisor, once: take the range lock, chown the tree. */
int userns_prepare(const struct spec *s, struct merr *e);
/* Supervisor, at exit: release and remove the range lock. */
void userns_cleanup(const struct spec *s);
/* Supervisor, before each clone: host-side filesystems (fsmount ops) and the idmapped root. */
int userns_before_clone(struct spec *s, struct merr *e);
/* Supervisor, after each clone (parent side): close what the child has inherited. */
void userns_after_clone(struct spec *s);
/* Supervisor, before releasing the child: write uid_map/gid_map, chown the cgroups. */
int userns_setup_child(const struct spec *s, pid_t pid, struct merr *e);

/* Child: attach the idmapped root tree at s->root instead of bind-mounting it. 1 = done, 0 =
 * not applicable, -errno. */
int userns_attach_root(const struct spec *s, struct merr *e);
/* Child: become root of the user namespace (setgroups, setresgid, setresuid to 0). */
int userns_become_root(const struct spec *s, struct merr *e);
/* Setup process (host's user namespace): create files as the container's root (fsuid/fsgid of
 * the uid/gid map's inside 0) while keeping the host's capabilities. */
int userns_host_act_as_root(const struct spec *s, struct merr *e);
/* Child: attach a host-side filesystem (OP_FSMOUNT) at its place in the op list. */
int userns_op_fsmount(int rootfd, const struct op *op, struct merr *e);

/* Shift the ownership of the tree at dirfd (same filesystem only): id -> base + (id & 0xffff).
 * Skipped when the root already has the base in its upper 16 bits. Exposed for tests. */
int userns_chown_tree(int dirfd, const char *what, unsigned long base, struct merr *e);
/* "0 100000 65536\n..." for /proc/PID/{uid,gid}_map. Exposed for tests. */
int userns_format_map(const struct idmap_line *m, size_t n, char *buf, size_t sz);
