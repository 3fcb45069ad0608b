/**
 * The OpenAPI 3.1 document of machinad's API, generated from the route table (routes.ts) and its zod
 * schemas (zod's own JSON Schema output; OpenAPI 3.1 uses JSON Schema 2020-12). Committed as
 * docs/api/openapi.json (`bun src/api/openapi.ts > docs/api/openapi.json`; a unit test checks
 * that the file is current) and served at GET /openapi.json. Pure.
 */
import { z } from "zod";
import { VERSION } from "../paths.ts";
import { errorStatuses, PATH_PARAMS, pathParams, ROUTES } from "./routes.ts";

type Json = Record<string, unknown>;

const HTTP_TEXT: Record<number, string> = {
  400: "bad request (malformed JSON, invalid name or body)",
  404: "no such machine, image or job",
  409: "conflict (already running, image in use or locked, cancelled)",
  413: "request body too large",
  500: "the operation failed",
  501: "not supported on this host",
};

export function openapiDocument(): Json {
  const registry = z.globalRegistry;
  const ref = (schema: z.ZodType): Json => {
    const json = z.toJSONSchema(schema, { target: "draft-2020-12", metadata: registry, io: "input", unrepresentable: "any" }) as Json;
    delete json["$schema"];
    // Definitions are hoisted into components below; a schema that is itself registered is a $ref.
    delete json["$defs"];
    const id = registry.get(schema)?.id;
    return typeof id === "string" ? { $ref: `#/components/schemas/${id}` } : json;
  };

  // Every registered schema becomes a component.
  const all = z.toJSONSchema(registry, { target: "draft-2020-12", uri: (id: string) => `#/components/schemas/${id}`, io: "input", unrepresentable: "any" }) as {
    schemas: Record<string, Json>;
  };
  const components: Record<string, Json> = {};
  for (const [id, schema] of Object.entries(all.schemas)) {
    const copy = { ...schema };
    delete copy["$schema"];
    delete copy["$id"];
    components[id] = copy;
  }

  const paths: Record<string, Record<string, Json>> = {};
  for (const r of ROUTES) {
    const parameters: Json[] = [];
    for (const name of pathParams(r.path)) parameters.push({ name, in: "path", required: true, schema: ref(PATH_PARAMS[name].schema) });
    for (const [name, q] of Object.entries(r.query ?? {}))
      parameters.push({ name, in: "query", required: false, description: q.description, schema: ref(q.schema) });
    const responses: Record<string, Json> = {};
    for (const [status, resp] of Object.entries(r.responses)) {
      responses[status] = resp.ndjson
        ? { description: resp.description, content: { "application/x-ndjson": { schema: ref(resp.ndjson) } } }
        : resp.binary
          ? { description: resp.description, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } }
          : { description: resp.description, content: { "application/json": { schema: ref(resp.schema!) } } };
    }
    for (const status of errorStatuses(r))
      responses[String(status)] = {
        description: HTTP_TEXT[status] ?? "error",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      };
    const op: Json = { operationId: r.id, summary: r.summary, responses };
    if (parameters.length > 0) op["parameters"] = parameters;
    if (r.body) op["requestBody"] = { required: false, content: { "application/json": { schema: ref(r.body) } } };
    if (r.rawBody)
      op["requestBody"] = {
        required: true,
        description: `${r.rawBody.description} (at most ${r.rawBody.maxBytes} bytes)`,
        content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
      };
    (paths[r.path] ??= {})[r.method] = op;
  }

  return {
    openapi: "3.1.0",
    info: {
      title: "machinad",
      version: VERSION,
      description:
        "machina's local API: machinectl's machine and image verbs over HTTP on a Unix socket (/run/machina/api.sock, root only). JSON everywhere; errors are {code, message, details}. Long operations (start, stop) are jobs: poll, stream (NDJSON) or cancel them.",
    },
    servers: [{ url: "http://localhost", description: "over the Unix socket /run/machina/api.sock (e.g. curl --unix-socket)" }],
    paths,
    components: { schemas: components },
  };
}

if (import.meta.main) process.stdout.write(JSON.stringify(openapiDocument(), null, 2) + "\n");
