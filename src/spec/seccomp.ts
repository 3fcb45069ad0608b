/**
 * The seccomp policy of a container, as systemd-nspawn 252 builds it (src/nspawn/nspawn-seccomp.c,
 * src/shared/seccomp-util.c), computed here as final lists of system call names; the helper only
 * resolves the names for the native and compat architectures and loads the filters. Pure.
 *
 * Filters (all of them apply; the kernel takes the strictest answer). Loaded in the order
 * audit, sync, allow list:
 *  1. allow list: default ENOSYS (for system calls systemd does not know), EPERM for every known
 *     system call that is not allowed, the allow list itself (groups + nspawn's extra calls, some
 *     only with a retained capability, + --system-call-filter= entries, minus `~` entries).
 *  2. audit: socket(AF_NETLINK, *, NETLINK_AUDIT) fails with EAFNOSUPPORT ("audit is disabled").
 *  3. with --suppress-sync=yes: the @sync calls succeed without doing anything; open()/openat()
 *     with O_SYNC/O_DSYNC fail with EINVAL, openat2() with ENOSYS (its flags cannot be filtered).
 */
import { MachinaError } from "../errors.ts";
import type { CapabilityName } from "../settings/capabilities.ts";
import type { Settings } from "../settings/settings.ts";
import { SYSCALL_GROUPS } from "./syscall-groups.ts";

export const ERRNO = { EPERM: 1, EINVAL: 22, ENOSYS: 38, EAFNOSUPPORT: 97 } as const;

/**
 * What a filter answers a system call: allowed, an errno (a number 0..4095: the call returns
 * -errno; 0 = it succeeds without doing anything), or killing the thread (`kill`), the process
 * (`kill_process`), SIGSYS (`trap`), allowed and logged (`log`). native/SPEC.md ACTION.
 */
export type SeccompAction = "allow" | "kill" | "kill_process" | "trap" | "log" | number;

export interface SeccompCondition {
  /** Argument index 0..5. */
  arg: number;
  /** Compared as unsigned 64-bit values (libseccomp's SCMP_CMP_*). */
  op: "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "masked_eq";
  value: bigint;
  /** For masked_eq: (arg & mask) == value. */
  mask?: bigint;
}

export interface SeccompRule {
  /** What the call gets when every condition holds (no conditions: always). */
  action: SeccompAction;
  syscall: string;
  /** At most 6, at most one per argument (libseccomp refuses two on the same one). */
  conditions: SeccompCondition[];
}

export interface SeccompFilter {
  /** What a system call no rule matches gets. */
  defaultAction: SeccompAction;
  /**
   * The architectures the filter speaks for, by libseccomp's names (`x86_64`, `x86`, `x32`, …);
   * the helper builds every filter for each architecture the kernel runs, and gives one this
   * list leaves out a filter that kills every call. Undefined: all of them.
   */
  architectures?: string[];
  allow: string[];
  /** Unconditional errno returns, by errno. */
  deny: Array<{ errno: number; names: string[] }>;
  rules: SeccompRule[];
}

/** systemd-nspawn 252's allow list: groups and calls, some only with a retained capability. */
export const NSPAWN_ALLOW_LIST: ReadonlyArray<readonly [CapabilityName | undefined, string]> = [
  [undefined, "@aio"],
  [undefined, "@basic-io"],
  [undefined, "@chown"],
  [undefined, "@default"],
  [undefined, "@file-system"],
  [undefined, "@io-event"],
  [undefined, "@ipc"],
  [undefined, "@mount"],
  [undefined, "@network-io"],
  [undefined, "@process"],
  [undefined, "@resources"],
  [undefined, "@setuid"],
  [undefined, "@signal"],
  [undefined, "@sync"],
  [undefined, "@timer"],
  ["CAP_SYS_TIME", "@clock"],
  ["CAP_SYS_MODULE", "@module"],
  ["CAP_SYS_RAWIO", "@raw-io"],
  ["CAP_IPC_LOCK", "@memlock"],
  ...[
    "brk",
    "capget",
    "capset",
    "copy_file_range",
    "fadvise64",
    "fadvise64_64",
    "flock",
    "get_mempolicy",
    "getcpu",
    "getpriority",
    "getrandom",
    "ioctl",
    "ioprio_get",
    "kcmp",
    "madvise",
    "mincore",
    "mprotect",
    "mremap",
    "name_to_handle_at",
    "oldolduname",
    "olduname",
    "personality",
    "readahead",
    "readdir",
    "remap_file_pages",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_yield",
    "seccomp",
    "sendfile",
    "sendfile64",
    "setdomainname",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "sethostname",
    "setpgid",
    "setsid",
    "splice",
    "sysinfo",
    "tee",
    "umask",
    "uname",
    "userfaultfd",
    "vmsplice",
  ].map((n) => [undefined, n] as const),
  ["CAP_SYS_PACCT", "acct"],
  ["CAP_SYS_PTRACE", "process_vm_readv"],
  ["CAP_SYS_PTRACE", "process_vm_writev"],
  ["CAP_SYS_PTRACE", "ptrace"],
  ["CAP_SYS_BOOT", "reboot"],
  ["CAP_SYSLOG", "syslog"],
  ["CAP_SYS_TTY_CONFIG", "vhangup"],
];

export function syscallGroupNames(): string[] {
  return Object.keys(SYSCALL_GROUPS);
}

/** Expand names and @groups (recursively) into syscall names, in first-seen order. */
export function expandSyscalls(items: readonly string[], where: string): string[] {
  const out = new Set<string>();
  const visit = (item: string, depth: number) => {
    if (item.startsWith("@")) {
      const g = SYSCALL_GROUPS[item];
      if (g === undefined)
        throw new MachinaError("E_INVALID", `unknown system call group "${item}" in ${where}; known groups: ${syscallGroupNames().join(" ")}`, {
          flag: where,
          value: item,
        });
      if (depth > 8) return;
      for (const m of g.members) visit(m, depth + 1);
    } else out.add(item);
  };
  for (const i of items) visit(i, 0);
  return [...out];
}

const INT_MAX = 2147483647n;
const O_DSYNC = 0o10000n;
const O_SYNC = 0o4010000n;

export function seccompFilters(settings: Settings, retained: readonly CapabilityName[], origin: string): SeccompFilter[] {
  const caps = new Set(retained);
  const deny = new Set(expandSyscalls(settings.systemCallFilter.deny, origin));
  const allowed = new Set<string>();
  const base = NSPAWN_ALLOW_LIST.filter(([cap]) => cap === undefined || caps.has(cap)).map(([, n]) => n);
  for (const n of [...expandSyscalls(base, "nspawn's allow list"), ...expandSyscalls(settings.systemCallFilter.allow, origin)])
    if (!deny.has(n)) allowed.add(n);
  const eperm = new Set<string>();
  for (const n of [...expandSyscalls(["@known"], "@known"), ...deny]) if (!allowed.has(n)) eperm.add(n);
  const sorted = (s: Iterable<string>) => [...s].sort();

  // The allow list goes last: it may deny seccomp() itself, which would stop later filters.
  const allowList: SeccompFilter = { defaultAction: ERRNO.ENOSYS, allow: sorted(allowed), deny: [{ errno: ERRNO.EPERM, names: sorted(eperm) }], rules: [] };
  const filters: SeccompFilter[] = [
    {
      defaultAction: "allow",
      allow: [],
      deny: [],
      rules: [
        {
          action: ERRNO.EAFNOSUPPORT,
          syscall: "socket",
          conditions: [
            { arg: 0, op: "eq", value: 16n },
            { arg: 2, op: "eq", value: 9n },
          ],
        },
      ],
    },
  ];
  if (settings.suppressSync) {
    const fdCalls = new Set(["fdatasync", "fsync", "sync_file_range", "sync_file_range2", "syncfs"]);
    const sync = expandSyscalls(["@sync"], "@sync");
    filters.push({
      defaultAction: "allow",
      allow: [],
      deny: [
        { errno: 0, names: sync.filter((n) => !fdCalls.has(n)).sort() },
        { errno: ERRNO.ENOSYS, names: ["openat2"] },
      ],
      rules: [
        // Only for a plausible fd, as systemd does: a bad fd still gets EBADF.
        ...sync
          .filter((n) => fdCalls.has(n))
          .sort()
          .map((syscall): SeccompRule => ({ action: 0, syscall, conditions: [{ arg: 0, op: "le", value: INT_MAX }] })),
        ...[O_SYNC, O_DSYNC].flatMap((flag): SeccompRule[] => [
          { action: ERRNO.EINVAL, syscall: "open", conditions: [{ arg: 1, op: "masked_eq", mask: flag, value: flag }] },
          { action: ERRNO.EINVAL, syscall: "openat", conditions: [{ arg: 2, op: "masked_eq", mask: flag, value: flag }] },
        ]),
      ],
    });
  }
  filters.push(allowList);
  return filters;
}

/** Wire records for the filters (see native/SPEC.md, "Seccomp"). */
export function seccompRecords(filters: readonly SeccompFilter[]): Array<[string, string[]]> {
  const r: Array<[string, string[]]> = [];
  for (const f of filters) {
    r.push(["seccomp_filter", [String(f.defaultAction)]]);
    if (f.architectures !== undefined) r.push(["seccomp_arch", f.architectures]);
    if (f.allow.length > 0) r.push(["seccomp_allow", f.allow]);
    for (const d of f.deny) if (d.names.length > 0) r.push(["seccomp_deny", [String(d.errno), ...d.names]]);
    for (const rule of f.rules) r.push(["seccomp_rule", [String(rule.action), rule.syscall, ...rule.conditions.map(conditionString)]]);
  }
  return r;
}

const OPS = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" } as const;

function conditionString(c: SeccompCondition): string {
  if (c.op === "masked_eq") return `a${c.arg}&${c.mask ?? 0n}==${c.value}`;
  return `a${c.arg}${OPS[c.op]}${c.value}`;
}
