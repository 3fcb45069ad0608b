/** The machine name systemd-nspawn derives from a directory when -M is not given. Pure. */
import { isValidMachineName } from "./values.ts";

/** Keep hostname characters of the last path component; undefined when nothing valid remains. */
export function machineNameFromDirectory(directory: string): string | undefined {
  const base = directory.replace(/\/+$/, "").split("/").pop() ?? "";
  let name = base.replace(/[^A-Za-z0-9.-]/g, "").replace(/\.{2,}/g, ".");
  name = name
    .replace(/^[.-]+/, "")
    .replace(/\.+$/, "")
    .slice(0, 64)
    .replace(/\.+$/, "");
  return isValidMachineName(name) ? name : undefined;
}

/** systemd unit-name escaping of a machine name, for `machine-NAME.scope`. */
export function escapeUnitName(name: string): string {
  let out = "";
  for (const [i, ch] of [...name].entries()) {
    if (/[A-Za-z0-9:_]/.test(ch) || (ch === "." && i > 0)) out += ch;
    else out += [...new TextEncoder().encode(ch)].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
  }
  return out;
}
