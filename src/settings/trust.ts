/**
 * nspawn's trust rules for .nspawn files. Pure.
 *
 * A file in /etc/systemd/nspawn/ or /run/systemd/nspawn/ (or any file with --settings=trusted)
 * is TRUSTED: every key applies. A file found next to the image (/var/lib/machines/NAME.nspawn,
 * or beside the -D directory) is UNTRUSTED: it usually comes with a downloaded image, so it
 * must not be able to elevate the container's privileges or reach into the host. The keys
 * below are ignored in an untrusted file, each with a one-line warning naming file, line and
 * key. See docs/trust.md.
 *
 * The list is systemd-nspawn's (systemd.nspawn(5), "This setting is privileged"), plus the
 * keys that the fix for CVE-2026-40226 (systemd 260) added: PivotRoot= (an untrusted file
 * could pivot the container onto a host-controlled path) and Ephemeral=. BindUserShell= is
 * privileged too but does not exist in systemd 252's key set, so machina does not accept it.
 */
import { RLIMITS } from "./rlimits.ts";

export type PrivilegeRule =
  /** The key is ignored altogether in an untrusted file. */
  | "privileged"
  /** SystemCallFilter=: an allow-list is ignored, a `~` deny list still applies. */
  | "allow-list-only";

export interface PrivilegedKey {
  section: "Exec" | "Files" | "Network";
  key: string;
  rule: PrivilegeRule;
  why: string;
}

const GRANTS_CAPS = "grants capabilities beyond nspawn's default set";
const HOST_FILES = "exposes host files or directories, or hides parts of the container's tree";
const HOST_NET = "creates or moves network interfaces on the host, or opens host ports";
const RESOURCES = "raises resource limits or priorities beyond the defaults";

/** The one list. Every key here is ignored in an untrusted file (see `rule`). */
export const PRIVILEGED_KEYS: readonly PrivilegedKey[] = [
  { section: "Exec", key: "Capability", rule: "privileged", why: GRANTS_CAPS },
  { section: "Exec", key: "AmbientCapability", rule: "privileged", why: GRANTS_CAPS },
  { section: "Exec", key: "MachineID", rule: "privileged", why: "could impersonate another machine's identity (journal, registration)" },
  { section: "Exec", key: "PrivateUsers", rule: "privileged", why: "chooses which host UIDs the container's users map to" },
  { section: "Exec", key: "SystemCallFilter", rule: "allow-list-only", why: "an allow-list permits system calls nspawn blocks by default" },
  ...Object.keys(RLIMITS).map((r) => ({ section: "Exec" as const, key: `Limit${r}`, rule: "privileged" as const, why: RESOURCES })),
  { section: "Exec", key: "OOMScoreAdjust", rule: "privileged", why: RESOURCES },
  { section: "Exec", key: "CPUAffinity", rule: "privileged", why: RESOURCES },
  { section: "Exec", key: "LinkJournal", rule: "privileged", why: "makes the container's journal appear in, or bind-mounts, the host's /var/log/journal" },
  { section: "Exec", key: "PivotRoot", rule: "privileged", why: "CVE-2026-40226: changes which directory becomes the container's root" },
  { section: "Exec", key: "Ephemeral", rule: "privileged", why: "CVE-2026-40226: makes nspawn snapshot the image on the host" },
  { section: "Files", key: "Bind", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "BindReadOnly", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "BindUser", rule: "privileged", why: "copies host users (and their home directories) into the container" },
  { section: "Files", key: "TemporaryFileSystem", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "Inaccessible", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "Overlay", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "OverlayReadOnly", rule: "privileged", why: HOST_FILES },
  { section: "Files", key: "PrivateUsersOwnership", rule: "privileged", why: "makes nspawn chown the image's files on the host" },
  { section: "Files", key: "PrivateUsersChown", rule: "privileged", why: "makes nspawn chown the image's files on the host" },
  { section: "Network", key: "Private", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "VirtualEthernet", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "VirtualEthernetExtra", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "Interface", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "MACVLAN", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "IPVLAN", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "Bridge", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "Zone", rule: "privileged", why: HOST_NET },
  { section: "Network", key: "Port", rule: "privileged", why: HOST_NET },
];

const BY_KEY = new Map(PRIVILEGED_KEYS.map((p) => [`${p.section}.${p.key}`, p]));

/**
 * Whether an assignment may take effect in a file of the given trust; undefined = it may,
 * else the warning to print (one line: FILE:LINE: … Key= …).
 */
export function untrustedRefusal(
  entry: { section: string; key: string; value: string; file: string; line: number },
  trusted: boolean,
): string | undefined {
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
