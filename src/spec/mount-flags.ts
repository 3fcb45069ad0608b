import type { Propagation } from "../settings/compound-values.ts";

/** mount(2) flag bits (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  I_VERSION: 1 << 23,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

/**
 * The per-mount flags of libmount's MNT_LINUX_MAP that systemd's mount_option_mangle() takes
 * out of an option list (`set` sets the bit, `clear` clears it). libmount's bind, rbind,
 * remount, move and propagation entries are not here: they make no sense for a new file
 * system and are refused.
 */
const FLAG_OPTIONS: Readonly<Record<string, { set?: number; clear?: number }>> = {
  ro: { set: MS.RDONLY },
  rw: { clear: MS.RDONLY },
  noexec: { set: MS.NOEXEC },
  exec: { clear: MS.NOEXEC },
  nosuid: { set: MS.NOSUID },
  suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV },
  dev: { clear: MS.NODEV },
  sync: { set: MS.SYNCHRONOUS },
  async: { clear: MS.SYNCHRONOUS },
  dirsync: { set: MS.DIRSYNC },
  mand: { set: MS.MANDLOCK },
  nomand: { clear: MS.MANDLOCK },
  noatime: { set: MS.NOATIME },
  atime: { clear: MS.NOATIME },
  iversion: { set: MS.I_VERSION },
  noiversion: { clear: MS.I_VERSION },
  nodiratime: { set: MS.NODIRATIME },
  diratime: { clear: MS.NODIRATIME },
  relatime: { set: MS.RELATIME },
  norelatime: { clear: MS.RELATIME },
  strictatime: { set: MS.STRICTATIME },
  nostrictatime: { clear: MS.STRICTATIME },
  lazytime: { set: MS.LAZYTIME },
  nolazytime: { clear: MS.LAZYTIME },
  nosymfollow: { set: MS.NOSYMFOLLOW },
  symfollow: { clear: MS.NOSYMFOLLOW },
};

/** libmount's MNT_LINUX_MAP entries that are not flags of a new mount. */
export const REFUSED_MOUNT_OPTIONS = [
  "bind",
  "rbind",
  "remount",
  "move",
  "silent",
  "loud",
  "private",
  "rprivate",
  "shared",
  "rshared",
  "slave",
  "rslave",
  "unbindable",
  "runbindable",
];

/**
 * systemd's mount_option_mangle(): split a comma-separated option list into mount(2) flags
 * (starting from `flags`, in order, so `rw` after `ro` wins) and the remaining file system
 * data; `x-*` options are dropped. Returns the name of a refused option instead when one is
 * present. Pure.
 */
export function mangleMountOptions(options: string, flags: number): { flags: number; data: string } | { refused: string } {
  const data: string[] = [];
  for (const word of options.split(",")) {
    if (word === "") continue;
    if (REFUSED_MOUNT_OPTIONS.includes(word)) return { refused: word };
    const f = Object.hasOwn(FLAG_OPTIONS, word) ? FLAG_OPTIONS[word] : undefined;
    if (f !== undefined) {
      if (f.set !== undefined) flags |= f.set;
      if (f.clear !== undefined) flags &= ~f.clear;
    } else if (!/^x-/i.test(word)) data.push(word);
  }
  return { flags, data: data.join(",") };
}

/** A propagation type (`shared` … `runbindable`) as mount(2) flags: the type's bit, with MS_REC for the r… forms. */
export function propagationFlags(p: Propagation): number {
  const type = p.startsWith("r") ? p.slice(1) : p;
  const bits: Record<string, number> = { shared: MS.SHARED, slave: MS.SLAVE, private: MS.PRIVATE, unbindable: MS.UNBINDABLE };
  return bits[type]! | (type === p ? 0 : MS.REC);
}

/** File type bits for mknod(2) modes. */
export const S_IF = { REG: 0o100000, CHR: 0o020000, BLK: 0o060000, FIFO: 0o010000, SOCK: 0o140000 } as const;
