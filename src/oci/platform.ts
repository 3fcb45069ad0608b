/**
 * Platforms (OS/ARCH[/VARIANT] in Go's words): the host's, `--platform=` values, and the
 * choice of an index's manifest for one. Pure.
 */
import { MachinaError } from "../errors.ts";
import type { Descriptor, ImageIndex, Platform } from "./manifest.ts";

const invalid = (message: string, value: string) => new MachinaError("E_INVALID", message, { value });

const GO_ARCH: Readonly<Record<string, string>> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
};

/** The host's platform in Go's words (linux/amd64, linux/arm64/v8). */
export function hostPlatform(): Platform {
  const architecture = GO_ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: "linux", architecture };
  if (architecture === "arm64") p.variant = "v8";
  return p;
}

/** What a platform looks like, for error lines. */
export const PLATFORM_SYNTAX = "OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8";

/** `--platform=OS/ARCH[/VARIANT]`; throws one line naming the value. */
export function parsePlatform(value: string): Platform {
  const parts = value.split("/");
  const ok = parts.length >= 2 && parts.length <= 3 && parts.every((p) => /^[a-z0-9._-]+$/.test(p));
  if (!ok) throw invalid(`invalid --platform "${value}": allowed is ${PLATFORM_SYNTAX}`, value);
  const p: Platform = { os: parts[0] as string, architecture: parts[1] as string };
  if (parts[2] !== undefined) p.variant = parts[2];
  return p;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** arm64's variant is v8 when it is not named. */
function normVariant(p: Platform): string | undefined {
  return p.variant ?? (p.architecture === "arm64" ? "v8" : undefined);
}

/** The manifest of the index for the platform wanted: os and arch equal; the variant when one is wanted. */
export function selectPlatform(index: ImageIndex, want: Platform): Descriptor {
  const candidates = index.manifests.filter((d) => d.platform !== undefined && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const wantVariant = normVariant(want);
  const exact = candidates.find((d) => d.platform !== undefined && normVariant(d.platform) === wantVariant);
  const chosen = exact ?? (want.variant === undefined || want.architecture === "arm64" ? candidates[0] : undefined);
  if (chosen === undefined) {
    const offered = index.manifests.flatMap((d) => (d.platform && d.platform.os !== "unknown" ? [formatPlatform(d.platform)] : [])).join(", ");
    throw new MachinaError(
      "E_NOT_FOUND",
      `the image has no manifest for platform ${formatPlatform(want)}; it offers: ${offered || "(none)"}`,
      { value: formatPlatform(want) },
      "choose one with --platform=OS/ARCH[/VARIANT]",
    );
  }
  return chosen;
}
