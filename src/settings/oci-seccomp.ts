/**
 * A runtime-spec `linux.seccomp` object -> the exact seccomp filter machina loads instead of its
 * own default filter (Settings.seccompProfile). Pure; what cannot be honoured exactly — neither
 * wider nor narrower — is refused with one line naming the config.json field.
 *
 * Semantics are those of runc and crun, which hand the profile to libseccomp as one filter:
 *  - defaultAction / each entry's action: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO (errnoRet, else
 *    defaultErrnoRet for the default, else EPERM), SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD,
 *    SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG. SCMP_ACT_TRACE (without a tracer the
 *    kernel answers ENOSYS, with one the tracer decides) and SCMP_ACT_NOTIFY (listenerPath) are
 *    refused: machina has neither.
 *  - architectures: the filter applies to the native architecture and the listed ones (runc's
 *    libseccomp filter always has the native one); a compat architecture the kernel runs but
 *    the profile does not list gets every call killed (libseccomp's default bad-architecture
 *    action, what runc and crun load). A listed architecture the kernel cannot run is moot.
 *  - syscalls[i]: one rule per name, in order. args are ANDed (libseccomp's SCMP_CMP_*, unsigned
 *    64-bit; SCMP_CMP_MASKED_EQ is (arg & value) == valueTwo); entries for the same call are
 *    ORed; an unconditional entry wins over conditional ones, and of two unconditional entries
 *    for a call with different actions the first one (libseccomp drops the second). A name
 *    libseccomp does not know, or that an architecture lacks, is skipped there (as runc).
 * An entry whose action is the default one is skipped (it changes nothing; runc does the same).
 * Refused: flags (machina loads its filters without any; SECCOMP_FILTER_FLAG_TSYNC is accepted:
 * the payload is a single thread when its filter is loaded), listenerPath, two conditions on the
 * same argument in one entry (libseccomp cannot AND them; runc splits them into ORed rules,
 * which is wider), the same call with the same (non-empty) conditions and different actions
 * (libseccomp refuses it), errnoRet on an action other than SCMP_ACT_ERRNO, values JSON cannot carry exactly.
 */
import type { SeccompAction, SeccompCondition, SeccompFilter, SeccompRule } from "../spec/seccomp.ts";

/** runtime-spec `linux.seccomp` (the fields machina reads; `args` are checked here). */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number | undefined;
  architectures?: string[] | undefined;
  flags?: string[] | undefined;
  listenerPath?: string | undefined;
  listenerMetadata?: string | undefined;
  syscalls?: Array<{ names: string[]; action: string; errnoRet?: number | undefined; args?: unknown[] | undefined }> | undefined;
}

export type SeccompFail = (field: string, what: string) => never;

const EPERM = 1;
const MAX_ERRNO = 4095;

/** runtime-spec architectures -> libseccomp's names (what the helper's seccomp_arch takes). */
export const OCI_SECCOMP_ARCHES: Readonly<Record<string, string>> = Object.fromEntries(
  [
    "X86",
    "X86_64",
    "X32",
    "ARM",
    "AARCH64",
    "MIPS",
    "MIPS64",
    "MIPS64N32",
    "MIPSEL",
    "MIPSEL64",
    "MIPSEL64N32",
    "PPC",
    "PPC64",
    "PPC64LE",
    "S390",
    "S390X",
    "PARISC",
    "PARISC64",
    "RISCV64",
    "LOONGARCH64",
    "M68K",
    "SH",
    "SHEB",
  ].map((a) => [`SCMP_ARCH_${a}`, a.toLowerCase()]),
);

const ACTIONS: Readonly<Record<string, Exclude<SeccompAction, number> | "errno">> = {
  SCMP_ACT_ALLOW: "allow",
  SCMP_ACT_ERRNO: "errno",
  SCMP_ACT_KILL: "kill",
  SCMP_ACT_KILL_THREAD: "kill",
  SCMP_ACT_KILL_PROCESS: "kill_process",
  SCMP_ACT_TRAP: "trap",
  SCMP_ACT_LOG: "log",
};
const REFUSED_ACTIONS: Readonly<Record<string, string>> = {
  SCMP_ACT_TRACE: "cannot be honoured (machina attaches no tracer: the kernel would answer ENOSYS, a tracer would decide)",
  SCMP_ACT_NOTIFY: "cannot be honoured (seccomp user notification is not supported by machina)",
};
const KNOWN_ACTIONS = Object.keys(ACTIONS).join(", ");
/** The flags honoured (machina-oci features: knownFlags and supportedFlags). */
const FLAGS = ["SECCOMP_FILTER_FLAG_TSYNC"];

const OPS: Readonly<Record<string, SeccompCondition["op"]>> = {
  SCMP_CMP_EQ: "eq",
  SCMP_CMP_NE: "ne",
  SCMP_CMP_LT: "lt",
  SCMP_CMP_LE: "le",
  SCMP_CMP_GT: "gt",
  SCMP_CMP_GE: "ge",
  SCMP_CMP_MASKED_EQ: "masked_eq",
};

function action(name: string, errnoRet: number | undefined, fallbackErrno: number, field: string, errnoField: string, fail: SeccompFail): SeccompAction {
  const a = ACTIONS[name];
  if (a === undefined) {
    const why = REFUSED_ACTIONS[name];
    return fail(field, why !== undefined ? `${name} ${why}` : `unknown action "${name}" (machina honours ${KNOWN_ACTIONS})`);
  }
  if (a !== "errno") {
    if (errnoRet !== undefined) fail(errnoField, `is only meaningful with SCMP_ACT_ERRNO, not ${name}`);
    return a;
  }
  const errno = errnoRet ?? fallbackErrno;
  if (errno > MAX_ERRNO) fail(errnoField, `${errno} is not an errno (0 to ${MAX_ERRNO})`);
  return errno;
}

/** A JSON number that is exactly the uint64 it stands for. */
function u64(v: unknown, field: string, fail: SeccompFail): bigint {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) return fail(field, `${JSON.stringify(v)} is not an unsigned integer`);
  if (!Number.isSafeInteger(v)) return fail(field, `${v} is beyond 2^53: a JSON number cannot carry it exactly`);
  return BigInt(v);
}

function condition(raw: unknown, field: string, fail: SeccompFail): SeccompCondition {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail(field, "is not an object with index, value and op");
  const o = raw as Record<string, unknown>;
  const index = o["index"];
  if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 5)
    fail(`${field}.index`, `${JSON.stringify(index)} is not an argument index (0 to 5)`);
  const opName = o["op"];
  if (typeof opName !== "string") return fail(`${field}.op`, "is required");
  const op = OPS[opName];
  if (op === undefined) return fail(`${field}.op`, `unknown operator "${opName}" (one of ${Object.keys(OPS).join(", ")})`);
  const value = u64(o["value"], `${field}.value`, fail);
  const two = o["valueTwo"] === undefined ? 0n : u64(o["valueTwo"], `${field}.valueTwo`, fail);
  if (op === "masked_eq") return { arg: index as number, op, mask: value, value: two };
  if (two !== 0n) fail(`${field}.valueTwo`, `is only meaningful with SCMP_CMP_MASKED_EQ, not ${opName}`);
  return { arg: index as number, op, value };
}

const condKey = (c: SeccompCondition) => `${c.arg}:${c.op}:${c.value}:${c.mask ?? ""}`;
const actionName = (a: SeccompAction) => (typeof a === "number" ? `errno ${a}` : a);

/** `linux.seccomp` -> the one filter that replaces machina's default filter. */
export function mapOciSeccomp(s: OciSeccomp, fail: SeccompFail): SeccompFilter[] {
  const F = "linux.seccomp";
  // SECCOMP_FILTER_FLAG_TSYNC: the payload is one thread when the filter is loaded (runc too ignores it).
  const flag = (s.flags ?? []).find((f) => !FLAGS.includes(f));
  if (flag !== undefined) fail(`${F}.flags`, `${flag} cannot be honoured (machina loads its seccomp filters without flags)`);
  if (s.listenerPath !== undefined && s.listenerPath !== "") fail(`${F}.listenerPath`, "seccomp user notification is not supported by machina");
  if (s.defaultErrnoRet !== undefined && s.defaultAction !== "SCMP_ACT_ERRNO")
    fail(`${F}.defaultErrnoRet`, `is only meaningful with SCMP_ACT_ERRNO, not ${s.defaultAction}`);
  const defaultAction = action(s.defaultAction, s.defaultErrnoRet, EPERM, `${F}.defaultAction`, `${F}.defaultErrnoRet`, fail);

  const architectures = ["native"];
  for (const [i, a] of (s.architectures ?? []).entries()) {
    const name = OCI_SECCOMP_ARCHES[a];
    if (name === undefined) fail(`${F}.architectures[${i}]`, `unknown architecture "${a}" (SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_AARCH64, …)`);
    if (!architectures.includes(name!)) architectures.push(name!);
  }

  const allow: string[] = [];
  const deny = new Map<number, string[]>();
  const rules: SeccompRule[] = [];
  /** syscall + conditions -> the first entry's action and field (a different action is a conflict) */
  const seen = new Map<string, { action: SeccompAction; field: string }>();
  for (const [i, e] of (s.syscalls ?? []).entries()) {
    const field = `${F}.syscalls[${i}]`;
    const act = action(e.action, e.errnoRet, EPERM, `${field}.action`, `${field}.errnoRet`, fail);
    // An entry with the default action changes nothing: skipped (as runc; libseccomp refuses it).
    const redundant = act === defaultAction;
    const args = e.args ?? [];
    if (args.length > 6) fail(`${field}.args`, `${args.length} conditions: a rule takes at most 6`);
    const conditions: SeccompCondition[] = [];
    for (const [j, raw] of args.entries()) {
      const c = condition(raw, `${field}.args[${j}]`, fail);
      const same = conditions.find((d) => d.arg === c.arg);
      if (same === undefined) conditions.push(c);
      else if (condKey(same) !== condKey(c) && !redundant)
        fail(
          `${field}.args[${j}]`,
          `a second condition on argument ${c.arg} cannot be honoured (libseccomp cannot AND two conditions on one argument; split the entry or use SCMP_CMP_MASKED_EQ)`,
        );
    }
    conditions.sort((a, b) => a.arg - b.arg);
    if (redundant) continue;
    for (const [j, name] of e.names.entries()) {
      if (!/^[a-z0-9_]{1,64}$/.test(name)) fail(`${field}.names[${j}]`, `"${name}" is not a system call name`);
      const key = `${name}|${conditions.map(condKey).join(",")}`;
      const prev = seen.get(key);
      // libseccomp: a second unconditional rule for a call is dropped (the first one stands:
      // podman's profile allows setns, then denies it without CAP_SYS_ADMIN); a second
      // conditional one with another action is an error (EEXIST), as in runc and crun.
      if (prev !== undefined && prev.action !== act && conditions.length > 0)
        fail(
          `${field}.names[${j}]`,
          `"${name}" has the same conditions as in ${prev.field} with another action (${actionName(act)}, not ${actionName(prev.action)}): libseccomp refuses that`,
        );
      if (prev !== undefined) continue;
      seen.set(key, { action: act, field });
      if (conditions.length > 0) rules.push({ action: act, syscall: name, conditions });
      else if (act === "allow") allow.push(name);
      else if (typeof act === "number") deny.set(act, [...(deny.get(act) ?? []), name]);
      else rules.push({ action: act, syscall: name, conditions: [] });
    }
  }
  return [{ defaultAction, architectures, allow, deny: [...deny].map(([errno, names]) => ({ errno, names })), rules }];
}

/** What machina-oci's `features` says about seccomp: exactly what this mapping honours. */
export function ociSeccompFeatures(): { actions: string[]; operators: string[]; archs: string[]; knownFlags: string[]; supportedFlags: string[] } {
  return {
    actions: Object.keys(ACTIONS),
    operators: Object.keys(OPS),
    archs: Object.keys(OCI_SECCOMP_ARCHES),
    knownFlags: [...FLAGS],
    supportedFlags: [...FLAGS],
  };
}
