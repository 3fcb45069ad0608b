/** JSON documents read through a schema (records in the state directory, extended attributes). */
import type { z } from "zod";

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
