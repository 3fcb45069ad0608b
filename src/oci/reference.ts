/**
 * Image references, `[REGISTRY[:PORT]/]REPOSITORY[:TAG|@DIGEST]`, after the distribution
 * reference grammar (github.com/distribution/reference) with docker/podman's normalization:
 * no registry → docker.io, a one-component name there → library/NAME, no tag and no digest →
 * :latest. Pure: no I/O.
 */
import { invalidError } from "../errors.ts";

export const DEFAULT_REGISTRY = "docker.io";
/** The host docker.io's API really answers on. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";
export const DEFAULT_TAG = "latest";
const NAME_MAX = 255;

export interface ImageReference {
  /** host[:port], normalized (index.docker.io → docker.io) */
  registry: string;
  /** path components joined by "/", e.g. library/debian */
  repository: string;
  tag?: string;
  digest?: string;
}

// The grammar, piece by piece.
const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;

const PATH_COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

const ALLOWED =
  "[REGISTRY[:PORT]/]REPOSITORY[:TAG|@DIGEST]: lowercase path components of a-z 0-9 separated by . _ __ or -, a tag of up to 128 of A-Z a-z 0-9 _ . - (not starting with . or -), a digest sha256:64-hex";

function bad(value: string, why: string): never {
  throw invalidError(`invalid image reference "${value}": ${why}; allowed: ${ALLOWED}`, { value });
}

/** Is this first path component a registry (docker's rule: has "." or ":", is localhost, or has uppercase)? */
function isRegistryComponent(component: string): boolean {
  return /[.:]/.test(component) || component === "localhost" || component !== component.toLowerCase() || component.startsWith("[");
}

/** Parse and normalize; throws E_INVALID with one line naming the value and what is allowed. */
export function parseImageReference(input: string): ImageReference {
  const value = input;
  if (value === "") bad(value, "empty");
  if (/\s/.test(value)) bad(value, "contains white space");
  if (value.includes("://")) bad(value, "a reference has no scheme (no https://)");

  let rest = value;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) bad(value, `"${digest}" is not a digest`);
    if (!SHA256_RE.test(digest)) bad(value, `digest "${digest}": only sha256 with 64 lowercase hex digits is supported`);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) bad(value, `tag "${tag}" is not allowed`);
  }

  if (rest === "") bad(value, "no repository name");
  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  const first = parts[0] ?? "";
  if (parts.length > 1 && isRegistryComponent(first)) {
    if (!DOMAIN_RE.test(first)) bad(value, `registry "${first}" is not a host name or host:port`);
    const port = first.match(/:([0-9]+)$/)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) bad(value, `port ${port} is out of 1…65535`);
    registry = first === "index.docker.io" ? DEFAULT_REGISTRY : first;
    parts.shift();
  }
  for (const component of parts) {
    if (component === "") bad(value, "an empty path component (// or a leading/trailing /)");
    if (!PATH_COMPONENT_RE.test(component)) {
      bad(value, component !== component.toLowerCase() ? `"${component}": repository names are lowercase` : `"${component}" is not a valid path component`);
    }
  }
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (`${registry}/${repository}`.length > NAME_MAX) bad(value, `the name is longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The fully qualified form, e.g. docker.io/library/debian:12 or host:5000/a/b@sha256:… */
export function formatImageReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** What to ask the registry's manifest endpoint for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** host[:port] the HTTP API is at (docker.io's API lives on registry-1.docker.io). */
export function registryApiHost(ref: ImageReference): string {
  return ref.registry === DEFAULT_REGISTRY ? DOCKER_HUB_API_HOST : ref.registry;
}

/** A default pool image name for a reference: the last path component (debian for docker.io/library/debian:12). */
export function defaultImageName(ref: ImageReference): string {
  const parts = ref.repository.split("/");
  return parts[parts.length - 1] ?? ref.repository;
}
