/**
 * binfmt_misc for containers of another architecture (docs/architectures.md): the kernel hands
 * a foreign program to qemu-user when an enabled entry's magic matches it. An entry with the
 * `F` (fix binary) flag has its interpreter opened when it is registered, so it works in every
 * mount namespace — a container needs no qemu in its image.
 *
 * What the host already has is used and never changed: an enabled entry that matches the
 * image's program and either has `F` or names an interpreter the image itself contains (Debian's
 * binfmt-support, systemd-binfmt, an administrator's). Otherwise machina registers its own entry
 * `machina-qemu-NAME` (qemu-NAME-static from qemu-user-static, flags `POF`: argv[0] preserved, the
 * program passed as an open file, the interpreter fixed) and records that it did. Each user — a
 * running machine, a bootstrap — holds a claim (BINFMT_STATE/ENTRY.claims/ID); the entry goes
 * when the last claim goes: the supervisor's at-exit command (machina-net teardown) releases the
 * machine's, a failed start its own, and the sweep the claims of machines that were killed.
 * binfmt_misc is one per host, so this record is too: one directory for every state directory
 * (a claim names its machine's registry lock), and everything happens under its lock.
 */
import { MachinaError } from "../errors.ts";
import { dependencyOf } from "../host/deps.ts";
import type { Host } from "../host/host.ts";
import { lockHeld, lockWaiting } from "../host/locks.ts";
import { resolveInRoot } from "../host/resolve-in-root.ts";
import { machineLockPath } from "../machine/registry.ts";
import { type Architecture, binfmtEscape, binfmtMagic, matchesMagic } from "../settings/architectures.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";

export const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";
/** Our entries' names: machina-qemu-aarch64. */
export const ENTRY_PREFIX = "machina-qemu-";
/** A claim is "starting" (kept although its machine does not run yet) for this long. */
const STARTING_MS = 120_000;

export interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: string;
  offset: number;
  magic: Uint8Array | undefined;
  mask: Uint8Array | undefined;
}

const hex = (s: string | undefined): Uint8Array | undefined => (s === undefined ? undefined : Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16)));

/** One entry file of binfmt_misc (`enabled`, `interpreter …`, `flags: …`, `offset N`, `magic HEX`, `mask HEX`). Pure. */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry {
  const field = (key: string) => new RegExp(`^${key}:? (.*)$`, "m").exec(text)?.[1]?.trim();
  return {
    name,
    enabled: /^enabled$/m.test(text),
    interpreter: field("interpreter") ?? "",
    flags: field("flags") ?? "",
    offset: Number(field("offset") ?? "0"),
    magic: hex(field("magic")),
    mask: hex(field("mask")),
  };
}

/** machina's record of its entries, for the whole host (binfmt_misc is one per host). */
export const BINFMT_STATE = "/run/machina/binfmt";

const st = {
  dir: BINFMT_STATE,
  lock: `${BINFMT_STATE}/lock`,
  marker: (entry: string) => `${BINFMT_STATE}/${entry}.added`,
  claims: (entry: string) => `${BINFMT_STATE}/${entry}.claims`,
};

/**
 * A user's claim: its file name and what tells whether it still stands — a machine's registry
 * lock (held while its supervisor runs), or a process (bootstrap: `.bootstrap-PID`).
 */
function claimOf(stateDir: string, user: string): { id: string; content: string } {
  const pid = /^\.bootstrap-(\d+)$/.exec(user)?.[1];
  if (pid !== undefined) return { id: user, content: `${JSON.stringify({ pid: Number(pid) })}\n` };
  const tag = new Bun.CryptoHasher("sha256").update(stateDir).digest("hex").slice(0, 12);
  return { id: `${user}@${tag}`, content: `${JSON.stringify({ lock: machineLockPath(stateDir, user) })}\n` };
}

function withLock<T>(host: Host, fn: () => T): T {
  const lock = lockWaiting(host, st.lock, "binfmt_misc");
  try {
    return fn();
  } finally {
    lock.release();
  }
}

/** binfmt_misc's entries; mounts it first when it is not (as systemd's proc-sys-fs-binfmt_misc.mount). */
export function binfmtEntries(host: Host): BinfmtEntry[] {
  if (host.lstat(`${BINFMT_DIR}/register`) === undefined) {
    try {
      host.mount("binfmt_misc", BINFMT_DIR, "binfmt_misc", 0x2 | 0x4 | 0x8 /* nosuid nodev noexec */, "");
    } catch (e) {
      throw new MachinaError(
        "E_UNSUPPORTED",
        `cannot mount binfmt_misc on ${BINFMT_DIR}: ${(e as Error).message}`,
        { path: BINFMT_DIR },
        "the kernel needs CONFIG_BINFMT_MISC",
      );
    }
  }
  return host
    .readdir(BINFMT_DIR)
    .filter((n) => n !== "register" && n !== "status")
    .map((n) => parseBinfmtEntry(n, host.readFile(`${BINFMT_DIR}/${n}`) ?? ""));
}

/** The program whose architecture decided, and its first bytes. */
export interface ForeignProgram {
  arch: Architecture;
  /** Host path of the image's root. */
  root: string;
  /** What needs it, for messages: `image "NAME" (/usr/lib/systemd/systemd)`, `bootstrap --arch=arm64`. */
  subject: string;
  header: Uint8Array;
}

export type BinfmtUse =
  /** The host's own entry runs it. */
  | { kind: "host"; entry: string }
  /** machina's entry (registered now or by an earlier container); `user` holds a claim on it. */
  | { kind: "machina"; entry: string; registered: boolean; claimed: boolean };

/** The interpreter machina registers: qemu-NAME-static in `qemuDir` or $PATH. */
function findQemu(host: Host, arch: Architecture, qemuDir: string | undefined): string | undefined {
  const program = `qemu-${arch.qemu}-static`;
  const dirs = qemuDir !== undefined ? [qemuDir] : (host.env()["PATH"] ?? DEFAULT_PATH).split(":").filter((d) => d.startsWith("/"));
  for (const d of dirs) if (host.lstat(`${d}/${program}`) !== undefined) return host.realpath(`${d}/${program}`);
  return undefined;
}

/** The host entry that runs the program inside its container, if any. Pure apart from reading the image. */
function usableHostEntry(host: Host, entries: BinfmtEntry[], prog: ForeignProgram): BinfmtEntry | undefined {
  return entries.find(
    (e) =>
      e.enabled &&
      // machina's own (recorded) entries are claimed, not borrowed; one of that name nobody recorded is the host's
      !(e.name.startsWith(ENTRY_PREFIX) && host.lstat(st.marker(e.name)) !== undefined) &&
      e.magic !== undefined &&
      matchesMagic(prog.header, e.offset, e.magic, e.mask) &&
      (e.flags.includes("F") || (e.interpreter.startsWith("/") && resolveInRoot(host, prog.root, e.interpreter) !== undefined)),
  );
}

/**
 * Make the host run `prog` (a foreign program of the image): reuse a host entry, or register
 * machina's and claim it for `user` (a machine name). One clear line when it cannot.
 */
export function provideBinfmt(host: Host, stateDir: string, prog: ForeignProgram, user: string, hostArch: string, qemuDir: string | undefined): BinfmtUse {
  return withLock(host, () => {
    const entries = binfmtEntries(host);
    if (host.readFile(`${BINFMT_DIR}/status`)?.trim() === "disabled")
      throw new MachinaError(
        "E_UNSUPPORTED",
        `binfmt_misc is disabled on this host (${BINFMT_DIR}/status): cannot run the ${prog.arch.name} image`,
        { path: `${BINFMT_DIR}/status` },
        `echo 1 > ${BINFMT_DIR}/status`,
      );
    const hostEntry = usableHostEntry(host, entries, prog);
    if (hostEntry !== undefined) return { kind: "host", entry: hostEntry.name };
    const entry = `${ENTRY_PREFIX}${prog.arch.qemu}`;
    const ours = entries.find((e) => e.name === entry);
    let registered = false;
    if (ours !== undefined && host.lstat(st.marker(entry)) === undefined)
      throw new MachinaError(
        "E_BUSY",
        `${BINFMT_DIR}/${entry} was not made by machina and does not run ${prog.arch.name} programs in containers (disabled, or no F flag)`,
        { path: `${BINFMT_DIR}/${entry}` },
        `echo -1 > ${BINFMT_DIR}/${entry}`,
      );
    if (ours === undefined || !ours.enabled) {
      const qemu = findQemu(host, prog.arch, qemuDir);
      if (qemu === undefined) {
        const program = `qemu-${prog.arch.qemu}-static`;
        throw new MachinaError(
          "E_UNSUPPORTED",
          `${prog.subject} is ${prog.arch.name} (${prog.arch.uname}): this ${hostArch} host runs its programs only through qemu-user, and has neither a binfmt_misc handler for them nor ${program}`,
          {},
          `apt-get install ${dependencyOf(program)?.package ?? "qemu-user-static"}`,
        );
      }
      if (ours !== undefined) host.writeFile(`${BINFMT_DIR}/${entry}`, "-1"); // ours, but disabled: replace it
      const { magic, mask } = binfmtMagic(prog.arch);
      host.writeFile(st.marker(entry), `${JSON.stringify({ architecture: prog.arch.name, interpreter: qemu })}\n`, 0o644);
      try {
        host.writeFile(`${BINFMT_DIR}/register`, `:${entry}:M::${binfmtEscape(magic)}:${binfmtEscape(mask)}:${qemu}:POF`);
      } catch (e) {
        host.unlink(st.marker(entry));
        throw new MachinaError("E_SYSTEM", `registering ${qemu} for ${prog.arch.name} in ${BINFMT_DIR} failed: ${(e as Error).message}`, {
          path: `${BINFMT_DIR}/register`,
        });
      }
      registered = true;
    }
    host.mkdirp(st.claims(entry), 0o755);
    // a claim that exists already is a running machine's of the same name (this start will fail): not ours to drop
    const claim = claimOf(stateDir, user);
    const claimed = host.lstat(`${st.claims(entry)}/${claim.id}`) === undefined;
    if (claimed) host.writeFile(`${st.claims(entry)}/${claim.id}`, claim.content, 0o644);
    return { kind: "machina", entry, registered, claimed };
  });
}

/** Whether a claim still stands: made moments ago (a start under way), its machine runs (holds its registry lock), its process lives. */
function claimLive(host: Host, path: string): boolean {
  const age = Date.now() - (host.mtimeMs(path) ?? 0);
  if (age < STARTING_MS) return true;
  let what: { lock?: unknown; pid?: unknown };
  try {
    what = JSON.parse(host.readFile(path) ?? "{}") as { lock?: unknown; pid?: unknown };
  } catch {
    return false;
  }
  if (typeof what.pid === "number") return what.pid > 0 && host.lstat(`/proc/${what.pid}`) !== undefined;
  return typeof what.lock === "string" && lockHeld(host, what.lock);
}

/**
 * Drop `user`'s claims (undefined: none, only the sweep), the claims of machines that no longer
 * run, and every machina entry left without one. Returns the entries removed.
 */
export function releaseBinfmt(host: Host, stateDir: string, user: string | undefined): string[] {
  if (host.lstat(st.dir) === undefined) return [];
  const mine = user === undefined ? undefined : claimOf(stateDir, user).id;
  return withLock(host, () => {
    const removed: string[] = [];
    for (const f of host.readdir(st.dir)) {
      if (!f.endsWith(".added")) continue;
      const entry = f.slice(0, -".added".length);
      const claims = st.claims(entry);
      if (mine !== undefined && host.lstat(`${claims}/${mine}`) !== undefined) host.unlink(`${claims}/${mine}`);
      for (const c of host.readdir(claims)) if (!claimLive(host, `${claims}/${c}`)) host.unlink(`${claims}/${c}`);
      if (host.readdir(claims).length > 0) continue;
      if (host.lstat(`${BINFMT_DIR}/${entry}`) !== undefined) host.writeFile(`${BINFMT_DIR}/${entry}`, "-1");
      host.removeTree(claims);
      host.unlink(st.marker(entry));
      removed.push(entry);
    }
    return removed;
  });
}
