/**
 * SELinux labels of -Z/--selinux-context= and -L/--selinux-apifs-context=. systemd-nspawn 252
 * takes the value as it is (the kernel judges it); machina only refuses what could not be
 * carried through unchanged: the -L value is written as `context="LABEL"` into mount options,
 * so quotes, backslashes, whitespace and control characters are refused for both. An empty
 * value resets the option (for -Z, setexeccon("") clears the exec label: the same effect). Pure.
 */
import type { ErrorContext } from "../errors.ts";
import { invalid } from "./values.ts";

/** user:role:type[:level]; the level may hold ',' and '.' (s0-s15:c0.c1023,c5). */
const LABEL = /^[A-Za-z0-9_.:,@+=-]+$/;

export function parseSelinuxLabel(value: string, ctx: ErrorContext): string | undefined {
  if (value === "") return undefined;
  if (!LABEL.test(value) || !value.includes(":"))
    throw invalid(ctx, value, "an SELinux context such as system_u:system_r:container_t:s0 (no quotes, backslashes or spaces)");
  return value;
}
