/**
 * Per-process settings of the container's PID 1 (inherited by everything in it): personality(2),
 * OOM score adjustment, CPU affinity. Pure.
 */
import { invalidError } from "../errors.ts";
import type { HostFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";

export const PER_LINUX = 0x0000;
export const PER_LINUX32 = 0x0008;

/** Kernel architecture -> [the native personality name, the 32-bit one it can also run]. */
const ARCH_PERSONALITIES: Record<string, [string, string | undefined]> = {
  x86_64: ["x86-64", "x86"],
  i686: ["x86", undefined],
  i386: ["x86", undefined],
  aarch64: ["arm64", "arm"],
  armv7l: ["arm", undefined],
  ppc64le: ["ppc64-le", undefined],
  ppc64: ["ppc64", "ppc"],
  s390x: ["s390x", "s390"],
};

/** personality(2) value for --personality=, or undefined to leave it alone. */
export function personalityValue(settings: Settings, host: HostFacts): number | undefined {
  const want = settings.personality;
  if (want === undefined) return undefined;
  const pair = host.arch === undefined ? undefined : ARCH_PERSONALITIES[host.arch];
  if (pair !== undefined && want === pair[0]) return PER_LINUX;
  if (pair !== undefined && want === pair[1]) return PER_LINUX32;
  const possible = pair === undefined ? "none known" : pair.filter((p) => p !== undefined).join(", ");
  throw invalidError(`personality "${want}" is not supported on this host (architecture ${host.arch ?? "unknown"}; possible: ${possible})`, {
    flag: "--personality",
    value: want,
  });
}
