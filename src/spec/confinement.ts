/**
 * The confinement a container was started with, as it is recorded in its state.json
 * (`confinement`): capability sets, no_new_privs, rlimits and the exact seccomp records (plus the
 * cache directory the supervisor compiled them into). A process entered from the host
 * (machinactl shell/exec/login, machinad) gets exactly this: the enter plan
 * (src/machine/enter.ts) turns it back into the same wire records, which the helper parses,
 * compiles or finds in the same cache, and loads the same way as for the container's payload.
 * Pure; the schema checks the file at the edge.
 */
import type * as Mini from "zod/mini";
import { lazyMiniSchemas } from "../lazy-zod.ts";
import { seccompRecords } from "./seccomp.ts";
import type { RunSpec } from "./types.ts";

export const CONFINEMENT_VERSION = 1;

/** The schemas of this module, built on first use (src/lazy-zod.ts; zod/mini: every enter reads one). */
const confinementSchemas = lazyMiniSchemas((z) => {
  const hex = z.string().check(z.regex(/^[0-9a-f]{1,16}$/));
  const limit = z.string().check(z.regex(/^(infinity|[0-9]{1,20})$/));
  const recordName = z.string().check(z.regex(/^seccomp_(filter|arch|allow|deny|rule|cache)$/));
  const confinementSchema = z.strictObject({
    version: z.literal(CONFINEMENT_VERSION),
    caps_bounding: hex,
    caps_ambient: hex,
    no_new_privs: z.boolean(),
    /** [resource, soft, hard], as the `rlimit` record. */
    rlimits: z.array(z.tuple([z.int().check(z.gte(0), z.lte(15)), limit, limit])),
    /** The seccomp wire records in load order (`seccomp_cache` included when the supervisor had one). */
    seccomp: z.array(z.tuple([recordName, z.array(z.string())])),
  });
  return { hex, limit, recordName, confinementSchema };
});
/** The confinementSchema schema (built on first use). */
export const confinementSchemaOf = (): ReturnType<typeof confinementSchemas>["confinementSchema"] => confinementSchemas().confinementSchema;

export type Confinement = Mini.infer<ReturnType<typeof confinementSchemas>["confinementSchema"]>;

const limitString = (v: bigint | "infinity") => (v === "infinity" ? "infinity" : v.toString());

/** What a RunSpec confines its payload with (recorded in state.json at the start). */
export function confinementOf(spec: RunSpec): Confinement {
  const seccomp = seccompRecords(spec.seccomp);
  if (spec.seccompCache !== undefined && spec.seccomp.length > 0) seccomp.push(["seccomp_cache", [spec.seccompCache]]);
  return {
    version: CONFINEMENT_VERSION,
    caps_bounding: spec.capsBounding,
    caps_ambient: spec.capsAmbient,
    no_new_privs: spec.noNewPrivs,
    rlimits: spec.rlimits.map((l) => [l.resource, limitString(l.soft), limitString(l.hard)]),
    seccomp: seccomp as Confinement["seccomp"],
  };
}

/** The `state_json` body with the confinement appended (JSON members without braces). */
export function stateJsonWithConfinement(stateJson: string, spec: RunSpec): string {
  return `${stateJson},${JSON.stringify({ confinement: confinementOf(spec) }).slice(1, -1)}`;
}

/** A recorded confinement (state.json's `confinement` member), or undefined when absent or malformed. */
export function parseConfinement(raw: unknown): Confinement | undefined {
  const r = confinementSchemas().confinementSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

/** The enter spec's confinement records (native/SPEC.md, "Enter spec"). */
export function confinementRecords(c: Confinement): Array<[string, string[]]> {
  return [
    ["caps_bounding", [c.caps_bounding]],
    ["caps_ambient", [c.caps_ambient]],
    ["no_new_privs", [c.no_new_privs ? "1" : "0"]],
    ...c.rlimits.map(([res, soft, hard]): [string, string[]] => ["rlimit", [String(res), soft, hard]]),
    ...c.seccomp.map(([name, args]): [string, string[]] => [name, args]),
  ];
}
