/**
 * The verb table. Each group of verbs lives in its own module and is listed here.
 */
import { IMAGE_VERBS } from "./image-verbs.ts";
import { ENTER_VERBS } from "./enter-verbs.ts";
import { LIFECYCLE_VERBS } from "./lifecycle-verbs.ts";
import { MACHINE_VERBS } from "./machine-verbs.ts";
import { TRANSFER_VERBS } from "./transfer-verbs.ts";
import type { Verb } from "./verb.ts";

export const VERBS: Verb[] = [...MACHINE_VERBS, ...ENTER_VERBS, ...LIFECYCLE_VERBS, ...IMAGE_VERBS, ...TRANSFER_VERBS];

export function findVerb(name: string): Verb | undefined {
  return VERBS.find((v) => v.name === name);
}
