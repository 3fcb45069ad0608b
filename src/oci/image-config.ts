/**
 * An OCI image config's execution parameters as the image's settings: the text of the
 * `.nspawn` file written next to an imported image. The file is untrusted (it lies in the
 * pool, docs/trust.md), so it holds only keys an untrusted file may set: Parameters=
 * (Entrypoint + Cmd), Environment= (Env), WorkingDirectory= (WorkingDir), User= (User),
 * KillSignal= (StopSignal). What has no untrusted key (ExposedPorts, Volumes, Labels) is kept
 * as comments, for the administrator to turn into trusted settings. Pure.
 */
import { isValidEnvName, parseSignal } from "../settings/values.ts";
import type { ImageConfig } from "./manifest.ts";

export interface ImageSettings {
  /** The .nspawn file's text. */
  text: string;
  /** One line per value that could not be carried over (for the log). */
  skipped: string[];
}

const BARE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One word as the .nspawn parser (splitQuoted, escapes kept) reads it back; undefined when it
 * cannot be written (a control character, both kinds of quotes, a trailing backslash).
 */
export function quoteWord(w: string): string | undefined {
  if (/[\x00-\x1f\x7f]/.test(w) || w.endsWith("\\")) return undefined;
  if (w !== "" && BARE.test(w)) return w;
  if (!w.includes("'")) return `'${w}'`;
  if (!w.includes('"')) return `"${w}"`;
  return undefined;
}

/** Text safe on one comment line. */
const oneLine = (s: string) => JSON.stringify(s).slice(1, -1);

/** `header`: comment lines (without `# `) saying where the image came from. */
export function settingsFromConfig(config: ImageConfig, header: readonly string[]): ImageSettings {
  const c = config.config ?? {};
  const skipped: string[] = [];
  const exec: string[] = [];
  const comments: string[] = [];

  const argv = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  if (argv.length > 0) {
    const quoted = argv.map(quoteWord);
    if (quoted.every((q) => q !== undefined)) exec.push(`Parameters=${quoted.join(" ")}`);
    else skipped.push(`the command ${JSON.stringify(argv)} cannot be written as Parameters= (a control character, or both kinds of quotes in one word)`);
  }
  for (const assignment of c.Env ?? []) {
    const eq = assignment.indexOf("=");
    const q = quoteWord(assignment);
    if (eq <= 0 || !isValidEnvName(assignment.slice(0, eq)) || q === undefined)
      skipped.push(`the variable ${JSON.stringify(assignment)} cannot be written as Environment=`);
    else exec.push(`Environment=${q}`);
  }
  if (c.WorkingDir !== undefined && c.WorkingDir !== "") {
    if (c.WorkingDir.startsWith("/") && !/[\x00-\x1f\x7f]/.test(c.WorkingDir)) exec.push(`WorkingDirectory=${c.WorkingDir}`);
    else skipped.push(`WorkingDir ${JSON.stringify(c.WorkingDir)} is not an absolute path`);
  }
  if (c.User !== undefined && c.User !== "") {
    // USER[:GROUP]: nspawn's User= takes a user only (its primary group applies).
    const user = c.User.split(":")[0]!;
    if (user !== "" && !/[\s\0]/.test(user)) {
      exec.push(`User=${user}`);
      if (user !== c.User) skipped.push(`User ${JSON.stringify(c.User)}: only the user "${user}" is kept (User= takes no group)`);
    } else skipped.push(`User ${JSON.stringify(c.User)} is not a user name or UID`);
  }
  if (c.StopSignal !== undefined && c.StopSignal !== "") {
    try {
      parseSignal(c.StopSignal, { flag: "StopSignal" });
      exec.push(`KillSignal=${c.StopSignal}`); // KillSignal= reads it as StopSignal is written (SIGTERM, TERM, 15)
    } catch {
      skipped.push(`StopSignal ${JSON.stringify(c.StopSignal)} is not a signal`);
    }
  }
  const ports = Object.keys(c.ExposedPorts ?? {});
  if (ports.length > 0)
    comments.push(`ExposedPorts: ${ports.map(oneLine).join(" ")} (Port= is privileged: set it in a trusted file, /etc/systemd/nspawn/NAME.nspawn)`);
  const volumes = Object.keys(c.Volumes ?? {});
  if (volumes.length > 0) comments.push(`Volumes: ${volumes.map(oneLine).join(" ")} (Bind= is privileged: set it in a trusted file)`);
  for (const [k, v] of Object.entries(c.Labels ?? {})) comments.push(`Label ${oneLine(k)}=${oneLine(v)}`);

  const lines = [
    ...header.map((h) => `# ${oneLine(h)}`),
    "# Written by machinactl import-oci from the image's config; an untrusted file: only keys such a file may set (docs/trust.md).",
    ...comments.map((h) => `# ${h}`),
    "",
    "[Exec]",
    ...exec,
  ];
  return { text: lines.join("\n") + "\n", skipped };
}
