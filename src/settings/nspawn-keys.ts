/**
 * The building blocks of .nspawn keys (systemd.nspawn(5)): an accumulator for one file's
 * values (list keys accumulate and `Key=` resets them, scalars: the last assignment wins) and
 * the constructors the option table (nspawn-table.ts) uses to declare each option's keys next
 * to its command-line form. Pure.
 */
import type { ErrorContext } from "../errors.ts";
import { parseCapabilityName, type CapabilityName } from "./capabilities.ts";
import { parseBind } from "./compound-values.ts";
import type { Settings, Source } from "./settings.ts";
import { SplitError, splitQuoted } from "./unit-file.ts";
import { invalid, parseBoolean, parseInterfaceName } from "./values.ts";

export type PrivilegeRule =
  /** The key is ignored altogether in an untrusted file. */
  | "privileged"
  /** SystemCallFilter=: an allow-list is ignored, a `~` deny list still applies. */
  | "allow-list-only";

export type FileSource = Extract<Source, { kind: "file" }>;

/** Working state while reading one file. List items are tagged with the key that added them. */
export class Accumulator {
  readonly values: Partial<Settings> = {};
  readonly provenance = new Map<keyof Settings, Source>();
  private readonly lists = new Map<keyof Settings, Array<{ tag: string; item: unknown; src: FileSource }>>();

  set<K extends keyof Settings>(key: K, value: Settings[K], src: FileSource): void {
    this.values[key] = value;
    this.provenance.set(key, src);
  }

  unset(key: keyof Settings): void {
    delete this.values[key];
    this.provenance.delete(key);
  }

  push(key: keyof Settings, tag: string, items: readonly unknown[], src: FileSource): void {
    const list = this.lists.get(key) ?? [];
    for (const item of items) list.push({ tag, item, src });
    this.lists.set(key, list);
  }

  /** Drop the items `tag` added (an empty assignment). */
  reset(key: keyof Settings, tag: string | ((t: string) => boolean)): void {
    const match = typeof tag === "string" ? (t: string) => t === tag : tag;
    this.lists.set(
      key,
      (this.lists.get(key) ?? []).filter((e) => !match(e.tag)),
    );
  }

  items(key: keyof Settings): Array<{ tag: string; item: unknown; src: FileSource }> {
    return this.lists.get(key) ?? [];
  }

  listKeys(): Array<keyof Settings> {
    return [...this.lists.keys()];
  }
}

export interface KeySpec {
  section: "Exec" | "Files" | "Network";
  key: string;
  /** `Key=` clears instead of being an invalid value. */
  emptyResets: boolean;
  /** The command-line twin, for docs and messages. */
  flag: string;
  apply(acc: Accumulator, value: string, ctx: ErrorContext, src: FileSource): void;
  /** Set: ignored in an untrusted file (trust.ts), with why. */
  privileged?: { rule: PrivilegeRule; why: string };
  /** A value this key accepts (learns the key's Settings field; used by tests). */
  sample: string;
}

/** What the constructors below make; the table adds the sample and the trust rule (fileKey). */
export type KeyCore = Omit<KeySpec, "sample" | "privileged" | "flag">;

export function words(value: string, ctx: ErrorContext, allowed: string): string[] {
  try {
    return splitQuoted(value);
  } catch (e) {
    if (e instanceof SplitError) throw invalid(ctx, value, `${allowed} (${e.message})`);
    throw e;
  }
}

export const bool = (
  section: KeySpec["section"],
  key: string,
  field: keyof Settings & ("ephemeral" | "noNewPrivileges" | "notifyReady" | "suppressSync" | "readOnly" | "privateNetwork" | "networkVeth"),
): KeyCore => ({
  section,
  key,
  emptyResets: true,
  apply: (acc, v, ctx, src) => acc.set(field, parseBoolean(v, ctx), src),
});

export function scalar<K extends keyof Settings>(
  section: KeySpec["section"],
  key: string,
  field: K,
  emptyResets: boolean,
  parse: (v: string, ctx: ErrorContext) => Settings[K],
): KeyCore {
  return { section, key, emptyResets, apply: (acc, v, ctx, src) => acc.set(field, parse(v, ctx), src) };
}

export function list(section: KeySpec["section"], key: string, field: keyof Settings, parse: (v: string, ctx: ErrorContext) => unknown[]): KeyCore {
  return { section, key, emptyResets: true, apply: (acc, v, ctx, src) => acc.push(field, key, parse(v, ctx), src) };
}

export function capabilityWords(value: string, ctx: ErrorContext, allowAll: boolean): Array<CapabilityName | "all"> {
  // nspawn splits on white space only (extract_first_word without flags).
  return value
    .split(/[ \t\n\r]+/)
    .filter((w) => w.length > 0)
    .map((w) => {
      if (w === "all") {
        if (!allowAll) throw invalid(ctx, value, "a space-separated list of capability names ('all' is not supported here)");
        return "all";
      }
      return parseCapabilityName(w, ctx);
    });
}

/** `IF[:NAME]` for Interface=, MACVLAN=, IPVLAN=. */
export function interfaceSpec(w: string, value: string, ctx: ErrorContext): string {
  const parts = w.split(":");
  if (parts.length > 2) throw invalid(ctx, value, "a space-separated list of IF[:NAME] interface names");
  parseInterfaceName(parts[0]!, ctx);
  if (parts[1] !== undefined) parseInterfaceName(parts[1], ctx);
  return w;
}

export const interfaceList = (key: string, field: keyof Settings) =>
  list("Network", key, field, (v, ctx) => words(v, ctx, "a space-separated list of interface names").map((w) => interfaceSpec(w, v, ctx)));

export function startMode(which: "boot" | "asPid2", other: "boot" | "asPid2", key: string, otherKey: string): KeyCore {
  return {
    section: "Exec",
    key,
    emptyResets: false,
    apply: (acc, v, ctx, src) => {
      const on = parseBoolean(v, ctx);
      if (on && acc.values[other] === true) throw invalid(ctx, v, `no for ${key}= when ${otherKey}=yes is set (they may not be combined)`);
      acc.set(which, on, src);
    },
  };
}

export function bindSource(v: string, readOnly: boolean, ctx: ErrorContext) {
  // In a file, relative sources have nothing to be relative to: nspawn requires absolute ones.
  const first = v.split(":")[0] ?? "";
  if (first !== "" && !first.startsWith("/") && !first.startsWith("+"))
    throw invalid(ctx, v, "SOURCE[:DESTINATION[:OPTIONS]] with absolute paths (SOURCE may start with '+' or be empty)");
  return parseBind(v, readOnly, ctx, "/");
}
