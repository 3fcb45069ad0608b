/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RunSpec wire format v1 (see SPEC.md): strict, bounded parser. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "error.h"
#include "security.h"
#include "userns.h"
#include "netlink.h"
#include "records.h"

#define SPEC_MAGIC "MACHINA-SPEC"
#define SPEC_VERSION "1"
#define SPEC_MAX_SIZE (4u << 20)
#define SPEC_MAX_RECORDS 65536u

enum op_kind {
	OP_MOUNT,
	OP_REBIND,
	OP_MKDIR,
	OP_MKNOD,
	OP_SYMLINK,
	OP_WRITE,
	OP_MASK,
	OP_CGROUPNS,
	OP_NOTIFY,
	OP_COPY,
	OP_REMOVE,
	OP_FSMOUNT,
	OP_OVERLAY,
	OP_IDMAP_BIND
};
/* CREATE_COPYUP: as CREATE_DIR, and the new file system starts with a copy of what the directory held */
enum create_mode { CREATE_NONE, CREATE_DIR, CREATE_FILE, CREATE_OPTIONAL, CREATE_AUTO, CREATE_COPYUP };
/* How the container's root mount is made (binds.c). */
enum root_mode { ROOT_BIND, ROOT_TMPFS, ROOT_OVERLAY };
enum console_mode { CONSOLE_PIPE, CONSOLE_INTERACTIVE, CONSOLE_READ_ONLY, CONSOLE_PASSIVE };

struct op {
	enum op_kind kind;
	const char *path;    /* CPATH (all kinds but cgroupns) */
	const char *src;     /* mount: SRC; symlink: TARGET; copy: HPATH */
	const char *fstype;  /* mount: NULL for "" */
	const char *data;    /* mount: NULL for ""; write: CONTENT */
	unsigned long flags; /* mount, rebind */
	mode_t mode;         /* mkdir, mknod, write, copy */
	unsigned major, minor;
	int create;               /* mount: enum create_mode */
	int optional;             /* rebind */
	int fd;                   /* fsmount: the prepared mount (supervisor, per run), -1 */
	const char *upper, *work; /* overlay: "" for a read-only overlay */
	const char **layers;      /* overlay: lower layers, bottom first */
	size_t n_layers;
	long idmap_from; /* idmap_bind: FROM, or -1 = the owner of SRC */
	unsigned long idmap_to, idmap_count;
};

/* scratch_dir, host_mkdir, host_symlink (binds.c) */
struct host_path {
	const char *path;   /* HPATH, or "+CPATH" inside the image (scratch_dir) */
	const char *target; /* host_symlink */
	mode_t mode;
};

/* host_record (supervisor.c): a file written with state.json, "{leader}" replaced */
struct host_record {
	const char *path; /* HPATH */
	const char *body;
};

struct image_lock {
	const char *path;  /* HPATH of the lock file */
	int exclusive;     /* 1: LOCK_EX, 0: LOCK_SH */
	const char *image; /* the image it stands for (messages) */
};

struct rlim {
	int res;
	rlim_t soft, hard;
	int closest; /* on EPERM, set the closest limits the process may (systemd's setrlimit_closest) */
};

struct exec_cand {
	const char *path, *argv0;
};

struct device_rule;

/* oci_hook (SPEC.md "OCI runtime"): a runtime-spec hook the container's side runs itself. */
enum oci_hook_stage { OCI_HOOK_CREATE_CONTAINER, OCI_HOOK_START_CONTAINER, N_OCI_HOOK_STAGES };
struct oci_hook {
	int stage;         /* enum oci_hook_stage */
	const char *path;  /* executed as given: the host's tree before the pivot, the container's after */
	int timeout_s;     /* 0 = none */
	const char **argv; /* argv[0] first (n_argv >= 1) */
	size_t n_argv;
	const char **env; /* exactly these */
	size_t n_env;
};

struct spec {
	char *buf;         /* owned: all strings point into it */
	const char **strs; /* owned: argument pointers (env, args, ... slices) */
	size_t len;

	const char *prog, *machine, *root, *hostname, *registry, *state_json, *notify_forward;
	int read_only, status_fd, kill_signal, boot, on_reboot_exit133, notify_ready;
	int console, console_opost, no_new_privs, as_pid2;
	int quiet; /* default 1 */
	/* OCI runtime (machina-oci create): the supervisor exits once the payload waits at the
	 * exec fifo, leaving it to the caller's subreaper; see SPEC.md "OCI runtime". */
	int oci_detach;
	int umask;                      /* umask of the payload (default 022) */
	unsigned long root_propagation; /* root_propagation FLAGS: set on "/" after the pivot, or 0 */
	const char *exec_fifo;          /* exec_fifo HPATH */
	int exec_fifo_fd;               /* set by the supervisor: O_PATH fd of exec_fifo, or -1 */
	const char *console_socket;     /* console_socket HPATH: the pty master goes there */
	struct oci_hook *oci_hooks;     /* oci_hook records, in spec order */
	size_t n_oci_hooks;
	/* oci_hook_state BODY of each stage */
	const char *oci_hook_state[N_OCI_HOOK_STAGES];
	const char *console_log; /* console_log HPATH MAXBYTES KEEP (conlog.h) */
	uint64_t console_log_max;
	int console_log_keep;
	int console_log_wfd;       /* set by the supervisor: the pipe the child puts on fds 1 and 2, or -1 */
	unsigned long clone_flags; /* CLONE_NEW* except CLONE_NEWCGROUP */
	int ns_cgroup;             /* "cgroup" listed in namespaces */
	int has_cgroupns_op;

	const char **cgroups;
	size_t n_cgroups;
	struct op *ops;
	size_t n_ops;
	const char **env; /* NULL-terminated */
	size_t n_env;
	const char *chdir;
	int has_caps_bounding, has_caps_ambient;
	uint64_t caps_bounding, caps_ambient;
	struct rlim *rlimits;
	size_t n_rlimits;
	int has_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	struct exec_cand *execs;
	size_t n_execs;
	const char **args; /* args after argv[0] */
	size_t n_args;
	const char *selinux_context; /* SELinux exec label of the payload (selinux.h), NULL = none */
	struct sec sec;              /* seccomp, personality, OOM score, CPU affinity, cgroup_set (security.c) */
	struct userns_spec us;       /* userns.h */

	/* binds.c: root modes, pivot_root_dir, host-side preparation */
	int root_mode;                     /* enum root_mode */
	const char *root_data;             /* tmpfs options for root_tmpfs / root_overlay */
	const char *pivot_new, *pivot_old; /* pivot_old NULL = the old root is unmounted */
	struct host_path *scratch;
	size_t n_scratch;
	const char *scratch_list; /* HPATH: the scratch dirs of this run, for the next start after a crash */
	struct host_path *host_mkdirs;
	size_t n_host_mkdirs;
	struct host_path *host_symlinks;
	size_t n_host_symlinks;

	/* a network namespace prepared by the TypeScript side (src/net/), and its undo command */
	const char *netns_path;    /* HPATH of a network namespace (nsfs bind mount) the container joins */
	const char *ipcns_path;    /* likewise an IPC namespace (ipcns) */
	const char *utsns_path;    /* likewise a UTS namespace (utsns) */
	const char *mntns_path;    /* likewise a mount namespace (mntns): the root is set up in it */
	const char *pidns_path;    /* likewise a PID namespace (pidns): the container's PID 1 is not its init */
	struct net_spec net;       /* net_* records: the main veth, made after each clone (netlink.h) */
	const char **host_umounts; /* host_umount: HPATHs detached by the supervisor at exit (hostmount.c) */
	size_t n_host_umounts;
	const char *device_cgroup;        /* device_policy: the cgroup2 directory the device program is attached to */
	struct device_rule *device_rules; /* device_allow (devices.h) */
	size_t n_device_rules;
	const char **host_removes; /* host_remove: files or empty directories removed after them */
	size_t n_host_removes;
	struct host_record *host_records; /* host_record: written with every state.json (supervisor.c) */
	size_t n_host_records;
	struct host_record *host_record_links; /* host_record_link: symlinks made with them (path, body = target) */
	size_t n_host_record_links;
	struct image_lock *image_locks; /* image_lock: held by the supervisor for its whole life (imagelock.c) */
	size_t n_image_locks;
	const char **on_exit; /* ARGV run by the supervisor after the container is gone; NULL = none */
	size_t n_on_exit;
	int on_exit_detach;    /* on_exit started in the background, not waited for; the veth left to it */
	const char *exit_mark; /* HPATH created when the container is gone, before on_exit */
	const char **prestart; /* ARGV started in the background before the first clone, awaited before the payload runs (hooks.c) */
	size_t n_prestart;
	/* prestart_unless_table FAMILY NAME: the prestart is not started when that nft table exists */
	const char *prestart_unless_family, *prestart_unless_table;
	const char **on_leader; /* ARGV run by the supervisor once each leader exists, before it goes on (hooks.c) */
	size_t n_on_leader;
	const char *supervisor_cgroup; /* HPATH: cgroup the supervisor moves itself into at start (--keep-unit) */
};

/* Parse buf[0..len). Takes ownership of buf (freed by spec_free, also on error). */
int spec_parse(struct spec *s, char *buf, size_t len, struct merr *e);
/* Read a whole spec from fd (bounded by SPEC_MAX_SIZE). */
int spec_read_fd(int fd, const char *what, char **buf, size_t *len, struct merr *e);
void spec_free(struct spec *s);
/* Supervisor, once the last container is released: free what only the child's setup uses (mount
 * operations, environment, rlimits, groups, exec candidates, security records). */
void spec_shed_child(struct spec *s);
