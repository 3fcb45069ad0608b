/** JSON documents read through a schema (records in the state directory, extended attributes). */
import type { z } from "zod";
import { type ErrorContext, MachinaError } from "./errors.ts";

/** The value of JSON `text` when it matches `schema`; undefined when the text is missing, not JSON or not of the schema. */
export function parseJson<S extends z.ZodType>(schema: S, text: string | undefined): z.infer<S> | undefined {
  if (text === undefined) return undefined;
  try {
    const r = schema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** A schema issue's place as a document names it: `mounts[3].options`; "(top level)" for the document itself. */
export function issueField(path: readonly PropertyKey[]): string {
  return (
    path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "") || "(top level)"
  );
}

/** JSON `text` as a value, or one line: `WHERE: not JSON (why)` (E_INVALID, with `ctx`). */
export function jsonValue(text: string, where: string, ctx: ErrorContext): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MachinaError("E_INVALID", `${where}: not JSON (${e instanceof Error ? e.message : String(e)})`, ctx);
  }
}

/** `value` through `schema`, or one line naming the first wrong field: `WHERE: FIELD: what is wrong` (E_INVALID). */
export function validated<S extends z.ZodType>(schema: S, value: unknown, where: string, ctx: ErrorContext): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new MachinaError("E_INVALID", `${where}: ${issueField(issue.path)}: ${issue.message}`, { ...ctx, value: issueField(issue.path) });
}
