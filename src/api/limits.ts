/** The API's size limits, in a module of their own: the core (local-service.ts) needs them without the route and schema tables (zod). */

/** Largest file a client may upload (PUT …/files); Bun.serve's own request limit is this. */
export const MAX_UPLOAD_BYTES = 4 * 1024 ** 3;

/** Largest stdout (and stderr) an exec answers with, in bytes; the rest is cut and flagged. */
export const EXEC_OUTPUT_CAP = 1024 * 1024;
