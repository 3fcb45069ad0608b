/**
 * nspawn's trust rules for .nspawn files. Pure.
 *
 * A file in /etc/systemd/nspawn/ or /run/systemd/nspawn/ (or any file with --settings=trusted)
 * is TRUSTED: every key applies. A file found next to the image (/var/lib/machines/NAME.nspawn,
 * or beside the -D directory) is UNTRUSTED: it usually comes with a downloaded image, so it
 * must not be able to elevate the container's privileges or reach into the host. The keys
 * below are ignored in an untrusted file, each with a one-line warning naming file, line and
 * key. See docs/trust.md. Which keys these are is declared with each key in the option table
 * (nspawn-table.ts: `priv(...)`).
 *
 * The list is systemd-nspawn's (systemd.nspawn(5), "This setting is privileged"), plus the
 * keys that the fix for CVE-2026-40226 (systemd 260) added: PivotRoot= (an untrusted file
 * could pivot the container onto a host-controlled path) and Ephemeral=. BindUserShell= is
 * privileged too but does not exist in systemd 252's key set, so machina does not accept it.
 */
import type { PrivilegeRule } from "./nspawn-keys.ts";
import { NSPAWN_FILE_KEYS } from "./nspawn-table.ts";

export type { PrivilegeRule } from "./nspawn-keys.ts";

export interface PrivilegedKey {
  section: "Exec" | "Files" | "Network";
  key: string;
  rule: PrivilegeRule;
  why: string;
}

/** Every key that is ignored in an untrusted file (see `rule`): declared in the option table. */
export const PRIVILEGED_KEYS: readonly PrivilegedKey[] = NSPAWN_FILE_KEYS.flatMap((k) =>
  k.privileged === undefined ? [] : [{ section: k.section, key: k.key, rule: k.privileged.rule, why: k.privileged.why }],
);

const BY_KEY = new Map(PRIVILEGED_KEYS.map((p) => [`${p.section}.${p.key}`, p]));

/**
 * Whether an assignment may take effect in a file of the given trust; undefined = it may,
 * else the warning to print (one line: FILE:LINE: … Key= …).
 */
export function untrustedRefusal(entry: { section: string; key: string; value: string; file: string; line: number }, trusted: boolean): string | undefined {
  if (trusted) return undefined;
  const rule = BY_KEY.get(`${entry.section}.${entry.key}`);
  if (rule === undefined) return undefined;
  if (rule.rule === "allow-list-only") {
    const v = entry.value.trim();
    // A deny list (~…) and the reset (empty) still apply.
    if (v === "" || v.startsWith("~")) return undefined;
    return `${entry.file}:${entry.line}: ignoring ${entry.key}= allow-list: the settings file is not trusted (see docs/trust.md)`;
  }
  return `${entry.file}:${entry.line}: ignoring ${entry.key}=: the settings file is not trusted (see docs/trust.md)`;
}
