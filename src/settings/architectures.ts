/**
 * The CPU architectures machina knows, in one table: Debian's name (what users type:
 * `--arch=arm64`), the kernel's (`uname -m`), Go's (OCI platforms), qemu-user's, and the ELF
 * header fields that identify a binary of it. Everything else is derived from this table: which
 * architecture an image is (its programs' ELF headers), whether the host runs it natively, the
 * binfmt_misc magic and mask that send its programs to qemu-user, bootstrap's `--arch=` values.
 * Pure.
 */
import { isElf } from "../elf.ts";
import { SIGRTMAX, SIGRTMIN } from "./values.ts";

export interface Architecture {
  /** Debian's name: `--arch=`, `machinactl list`'s ARCH. */
  name: string;
  /** The kernel's name (`uname -m` inside a container of it). */
  uname: string;
  /** Go's GOARCH (and GOARM variant): OCI platforms. */
  go: { architecture: string; variant?: string };
  /** qemu-user's name: qemu-NAME-static, binfmt_misc entry qemu-NAME. */
  qemu: string;
  /** Fedora's name (`dnf --forcearch=`) where Fedora has the architecture. */
  fedora?: string;
  /** ELF header: EI_CLASS (1: 32-bit, 2: 64-bit), EI_DATA (1: little endian, 2: big endian), e_machine. */
  elf: { class: 1 | 2; data: 1 | 2; machine: number /** ARM: e_flags' EF_ARM_ABI_FLOAT_HARD set (armhf) or not (armel) */; hardFloat?: boolean };
}

export const ARCHITECTURES: readonly Architecture[] = [
  { name: "amd64", uname: "x86_64", go: { architecture: "amd64" }, qemu: "x86_64", fedora: "x86_64", elf: { class: 2, data: 1, machine: 62 } },
  { name: "i386", uname: "i686", go: { architecture: "386" }, qemu: "i386", elf: { class: 1, data: 1, machine: 3 } },
  {
    name: "arm64",
    uname: "aarch64",
    go: { architecture: "arm64", variant: "v8" },
    qemu: "aarch64",
    fedora: "aarch64",
    elf: { class: 2, data: 1, machine: 183 },
  },
  { name: "armhf", uname: "armv7l", go: { architecture: "arm", variant: "v7" }, qemu: "arm", elf: { class: 1, data: 1, machine: 40, hardFloat: true } },
  { name: "armel", uname: "armv7l", go: { architecture: "arm", variant: "v5" }, qemu: "arm", elf: { class: 1, data: 1, machine: 40, hardFloat: false } },
  { name: "ppc64el", uname: "ppc64le", go: { architecture: "ppc64le" }, qemu: "ppc64le", fedora: "ppc64le", elf: { class: 2, data: 1, machine: 21 } },
  { name: "s390x", uname: "s390x", go: { architecture: "s390x" }, qemu: "s390x", fedora: "s390x", elf: { class: 2, data: 2, machine: 22 } },
  { name: "riscv64", uname: "riscv64", go: { architecture: "riscv64" }, qemu: "riscv64", fedora: "riscv64", elf: { class: 2, data: 1, machine: 243 } },
];

export const ARCHITECTURE_NAMES = ARCHITECTURES.map((a) => a.name);

export function architectureNamed(name: string): Architecture | undefined {
  return ARCHITECTURES.find((a) => a.name === name);
}

/** The host's architecture from the kernel's name (`/proc/sys/kernel/arch`, `uname -m`). */
export function architectureOfUname(uname: string | undefined): Architecture | undefined {
  if (uname === undefined) return undefined;
  if (/^i[3-6]86$/.test(uname)) return architectureNamed("i386");
  if (/^armv[5-8]/.test(uname)) return architectureNamed("armhf");
  return ARCHITECTURES.find((a) => a.uname === uname);
}

/** The architecture of a Go platform (`linux/arm64/v8`'s arm64 and v8). */
export function architectureOfPlatform(architecture: string, variant: string | undefined): Architecture | undefined {
  const all = ARCHITECTURES.filter((a) => a.go.architecture === architecture);
  return all.find((a) => a.go.variant === variant) ?? all[0];
}

/** What the host's kernel runs without emulation: its own architecture and its 32-bit compat one (x86-64 runs i386). */
export function runsNatively(host: Architecture, image: Architecture): boolean {
  if (host.name === image.name) return true;
  return host.name === "amd64" && image.name === "i386";
}

const u16 = (data: 1 | 2, v: number): [number, number] => (data === 1 ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff]);

/**
 * The binfmt_misc magic and mask (20 bytes from offset 0) that match this architecture's
 * executables and shared objects — qemu's own recipe (scripts/qemu-binfmt-conf.sh): ELF, class,
 * byte order, version 1, any OS ABI, e_type 2 or 3 (EXEC, DYN), e_machine.
 */
export function binfmtMagic(a: Architecture): { magic: Uint8Array; mask: Uint8Array } {
  const { class: cls, data, machine } = a.elf;
  const magic = [0x7f, 0x45, 0x4c, 0x46, cls, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...u16(data, 2), ...u16(data, machine)];
  const mask = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...u16(data, 0xfffe), 0xff, 0xff];
  return { magic: Uint8Array.from(magic), mask: Uint8Array.from(mask) };
}

/** binfmt_misc's `\xHH` escapes of bytes (the register file's syntax). */
export function binfmtEscape(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
}

/** Whether `header` (the file's first bytes) matches magic under mask at offset: the kernel's test for an `M` entry. */
export function matchesMagic(header: Uint8Array, offset: number, magic: Uint8Array, mask: Uint8Array | undefined): boolean {
  if (header.length < offset + magic.length) return false;
  for (let i = 0; i < magic.length; i++) {
    const m = mask?.[i] ?? 0xff;
    if (((header[offset + i] as number) & m) !== ((magic[i] as number) & m)) return false;
  }
  return true;
}

/** The architecture of an ELF file from its first 40 bytes or more; undefined when it is not an ELF file of a known one. */
export function architectureOfElf(header: Uint8Array): Architecture | undefined {
  if (header.length < 20 || !isElf(header)) return undefined;
  const cls = header[4];
  const data = header[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
  const machine = data === 1 ? (header[18] as number) | ((header[19] as number) << 8) : ((header[18] as number) << 8) | (header[19] as number);
  const candidates = ARCHITECTURES.filter((a) => a.elf.class === cls && a.elf.data === data && a.elf.machine === machine);
  if (candidates.length <= 1) return candidates[0];
  // ARM: e_flags (32-bit ELF: offset 36) tells hard float (armhf) from soft (armel)
  if (header.length < 40) return candidates[0];
  const flags = data === 1 ? (header[36] as number) | ((header[37] as number) << 8) | ((header[38] as number) << 16) | ((header[39] as number) << 24) : 0;
  const hard = (flags & 0x400) !== 0;
  return candidates.find((a) => a.elf.hardFloat === hard) ?? candidates[0];
}

/** The architecture of an image's program (its ELF header) when the host (`uname -m`) does not run it natively; else undefined. */
export function foreignArchitecture(hostUname: string | undefined, header: Uint8Array): Architecture | undefined {
  const image = architectureOfElf(header);
  const host = architectureOfUname(hostUname);
  if (image === undefined || host === undefined) return undefined;
  return runsNatively(host, image) ? undefined : image;
}

/**
 * The host signal that qemu-user delivers to its guest as `signal`. qemu (a glibc program: its
 * SIGRTMIN is 34) hands host SIGRTMIN+n to the guest as signal 32+n, so a guest's real-time signal
 * (34 and up, glibc's numbering there too) arrives only when sent 2 higher — SIGRTMIN+3, systemd's
 * halt, sent as such would reach an emulated systemd as SIGRTMIN+1 and put it into rescue mode.
 * The others are the same. (machinactl sends real-time signals to an emulated machine from inside
 * instead: src/machine/machines.ts insideKill.)
 */
export function signalForEmulated(signal: number): number {
  const QEMU_RT_OFFSET = 2;
  return signal >= SIGRTMIN && signal + QEMU_RT_OFFSET <= SIGRTMAX ? signal + QEMU_RT_OFFSET : signal;
}
