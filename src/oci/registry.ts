/**
 * A Distribution API v2 client on the built-in fetch: the /v2/ ping, anonymous bearer tokens from
 * the WWW-Authenticate challenge (or with basic credentials from a containers auth.json), image
 * index → platform, manifest, config and layer blobs. Every blob is verified against its sha256
 * and size while it streams (refused and deleted on a mismatch), layers download in parallel with
 * a bounded number of connections, an interrupted blob resumes with a Range request, HTTPS uses
 * the system's CA store plus a CA file / cert directory; tlsVerify: false (podman's --tls-verify=no)
 * takes HTTPS unverified or, when the registry has no TLS, plain HTTP; and
 * a redirect to another host is refused. Blobs land in a BlobCache (content-addressed).
 * Network and file I/O happen here, as in src/host/transfer-io.ts (the other downloads).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { machinaEnv } from "../config.ts";
import { MachinaError } from "../errors.ts";
import { DEFAULT_PULL_MAX_BYTES } from "../image/transfer.ts";
import type { BlobCache } from "./blob-cache.ts";
import {
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  imageConfigSchema,
  layerCompression,
  type LayerCompression,
  MEDIA_TYPES,
  type Platform,
  parseManifestOrIndex,
  zodLine,
} from "./manifest.ts";
import type { CredentialHelperRunner } from "../host/credential-helper.ts";
import { type Challenge, type Credentials, credentialsFromAuthFile, IDENTITY_TOKEN_USER, parseChallenge, tokenSchema } from "./auth.ts";
import { formatPlatform, hostPlatform, parsePlatform, selectPlatform } from "./platform.ts";
import { formatImageReference, type ImageReference, manifestReference, parseImageReference, registryApiHost } from "./reference.ts";

/** Parallel blob downloads (containers/image uses 6; a registry on loopback needs fewer). */
export const DEFAULT_OCI_CONCURRENCY = 4;
/** Manifests and indexes are small; distribution refuses more than 4 MiB. */
const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
const TOKEN_MAX_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;
/** Further attempts (each a Range request from where the last stopped) after a blob stream broke. */
const BLOB_RETRIES = 3;
const SYSTEM_CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.dockerManifest].join(", ");

export interface RegistryOptions {
  /** false (podman's --tls-verify=no): https without verifying the certificate, or plain http when the registry has no TLS; default true: https, verified */
  tlsVerify?: boolean;
  /** a directory of *.crt CA certificates (and optionally a client *.cert + *.key), as podman's --cert-dir */
  certDir?: string;
  /** one more CA certificate file (PEM) */
  caFile?: string;
  /** a containers auth.json ({"auths":{"host":{"auth":"base64(user:pass)"}}}) */
  authFile?: string;
  /** runs the auth file's credential helpers (default: docker-credential-NAME from $PATH) */
  credentialHelper?: CredentialHelperRunner;
  /** cap of all blobs of the pull together, and of each (default: MACHINA_PULL_MAX_BYTES of env, else 64 GiB as the other pulls) */
  maxBytes?: number;
  /** where MACHINA_PULL_MAX_BYTES is read from when maxBytes is not given */
  env?: Readonly<Record<string, string | undefined>>;
  /** parallel blob downloads (default 4) */
  concurrency?: number;
  signal?: AbortSignal;
  /** bytes of one blob so far */
  onProgress?: (event: { digest: string; bytes: number; total: number }) => void;
}

export interface PullOptions extends RegistryOptions {
  cache: BlobCache;
  /** OS/ARCH[/VARIANT]; default the host's */
  platform?: string;
}

export interface PulledLayer {
  digest: string;
  mediaType: string;
  size: number;
  compression: LayerCompression;
  path: string;
}

export interface PulledImage {
  reference: ImageReference;
  /** the digest of the image manifest (after platform selection) */
  manifestDigest: string;
  /** the digest of the index the manifest was selected from, if there was one */
  indexDigest?: string;
  platform: Platform;
  manifest: ImageManifest;
  config: ImageConfig;
  configDigest: string;
  configPath: string;
  /** in order, bottom layer first */
  layers: PulledLayer[];
}

const systemError = (message: string, value?: string) => new MachinaError("E_SYSTEM", message, value === undefined ? {} : { value });
const invalid = (message: string, value?: string) => new MachinaError("E_INVALID", message, value === undefined ? {} : { value });

// ---------------------------------------------------------------------------------------------
// Helpers

/** Read a body up to `max` bytes; over it: E_TOO_LARGE naming what. */
async function readCapped(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel();
    throw new MachinaError("E_TOO_LARGE", `${what}: ${declared} bytes is over the limit of ${max}`);
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      n += chunk.byteLength;
      if (n > max) {
        await res.body.cancel().catch(() => undefined);
        throw new MachinaError("E_TOO_LARGE", `${what}: more than the limit of ${max} bytes`);
      }
      chunks.push(chunk);
    }
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

export function sha256Hex(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** Run fn over items with at most `limit` at once; the first failure is thrown (and told to onFail, to stop the rest). */
async function runLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>, onFail?: () => void): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T);
      } catch (e) {
        if (failed === undefined) {
          failed = e;
          onFail?.();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}

/** The size cap in effect: maxBytes, else MACHINA_PULL_MAX_BYTES, else the transfers' default. */
export function pullMaxBytes(options: Pick<RegistryOptions, "maxBytes" | "env">): number {
  return options.maxBytes ?? (options.env ? machinaEnv(options.env, "MACHINA_PULL_MAX_BYTES") : undefined) ?? DEFAULT_PULL_MAX_BYTES;
}

function isAbort(e: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (e instanceof Error && e.name === "AbortError");
}

// ---------------------------------------------------------------------------------------------
// The client

interface TlsOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

/** CA certificates: the system store, plus caFile and certDir's *.crt; a client cert from certDir's *.cert/*.key. */
function tlsOptions(options: RegistryOptions): TlsOptions | undefined {
  const ca: string[] = [];
  const system = SYSTEM_CA_BUNDLES.find((p) => existsSync(p));
  if (system) ca.push(readFileSync(system, "utf8"));
  // no system bundle and nothing given: Bun's own root store
  else if (options.certDir === undefined && options.caFile === undefined) return undefined;
  const tls: TlsOptions = {};
  if (options.caFile !== undefined) {
    try {
      ca.push(readFileSync(options.caFile, "utf8"));
    } catch (e) {
      throw new MachinaError("E_NOT_FOUND", `CA file ${options.caFile}: cannot read it (${(e as Error).message})`, { file: options.caFile });
    }
  }
  if (options.certDir !== undefined) {
    let names: string[];
    try {
      names = readdirSync(options.certDir).sort();
    } catch (e) {
      throw new MachinaError("E_NOT_FOUND", `--cert-dir ${options.certDir}: cannot read it (${(e as Error).message})`, { path: options.certDir });
    }
    for (const n of names) if (n.endsWith(".crt")) ca.push(readFileSync(join(options.certDir, n), "utf8"));
    const cert = names.find((n) => n.endsWith(".cert"));
    if (cert !== undefined) {
      const key = `${cert.slice(0, -".cert".length)}.key`;
      if (!names.includes(key)) throw invalid(`--cert-dir ${options.certDir}: client certificate ${cert} has no ${key}`, options.certDir);
      tls.cert = readFileSync(join(options.certDir, cert), "utf8");
      tls.key = readFileSync(join(options.certDir, key), "utf8");
    }
  }
  tls.ca = ca;
  return tls;
}

export class RegistryClient {
  readonly ref: ImageReference;
  /** scheme://host:port/ of the API; with tlsVerify: false decided by the first request (https unverified, else http) */
  base: URL;
  private schemeDecided: Promise<void> | undefined;
  private readonly options: RegistryOptions;
  private tls: TlsOptions | undefined;
  private creds: { value: Credentials | undefined } | undefined;
  private authorization: string | undefined;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(ref: ImageReference, options: RegistryOptions = {}) {
    this.ref = ref;
    this.options = options;
    this.base = new URL(`https://${registryApiHost(ref)}/`);
    this.tls = options.tlsVerify === false ? { rejectUnauthorized: false } : tlsOptions(options);
  }

  /** The auth file's credentials for this registry, read when first needed (a credential helper runs only then). */
  private get credentials(): Credentials | undefined {
    if (this.creds === undefined) {
      const file = this.options.authFile;
      this.creds = { value: file !== undefined ? credentialsFromAuthFile(file, this.ref, this.options.credentialHelper) : undefined };
    }
    return this.creds.value;
  }

  private label(): string {
    return `registry ${this.base.host}`;
  }

  private async fetchOnce(url: URL, headers: Headers): Promise<Response> {
    const init: RequestInit & { tls?: TlsOptions } = { headers, redirect: "manual" };
    if (this.options.signal) init.signal = this.options.signal;
    if (this.tls) init.tls = this.tls;
    try {
      return await fetch(url, init);
    } catch (e) {
      if (isAbort(e, this.options.signal)) throw new MachinaError("E_CANCELLED", "pull cancelled");
      const message = (e as Error).message;
      const hint = /certificate|self.signed|SSL|TLS|handshake/i.test(message)
        ? "give the registry's CA certificate with --cert-dir DIR (*.crt), or --tls-verify=no for a registry that only speaks plain HTTP"
        : undefined;
      throw new MachinaError("E_SYSTEM", `${this.label()}: ${url.pathname}: ${message}`, {}, hint);
    }
  }

  /**
   * tlsVerify: false as podman's --tls-verify=no: HTTPS without verifying the certificate when the
   * registry speaks it (a TLS handshake within 5 s), else plain HTTP.
   */
  private decideScheme(): Promise<void> {
    if (this.options.tlsVerify !== false) return Promise.resolve();
    this.schemeDecided ??= (async () => {
      const signals = [AbortSignal.timeout(5000)];
      if (this.options.signal) signals.push(this.options.signal);
      const init: RequestInit & { tls?: TlsOptions } = { redirect: "manual", signal: AbortSignal.any(signals), tls: { rejectUnauthorized: false } };
      const https = await fetch(new URL("/v2/", this.base), init).then(
        async (res) => {
          await res.body?.cancel().catch(() => undefined);
          return true;
        },
        () => false,
      );
      if (this.options.signal?.aborted) throw new MachinaError("E_CANCELLED", "pull cancelled");
      if (!https) {
        this.base = new URL(`http://${this.base.host}/`);
        this.tls = undefined;
      }
    })();
    return this.schemeDecided;
  }

  /** One request, following redirects within the registry's own scheme://host:port only. */
  private async send(path: string, extra: Record<string, string>): Promise<Response> {
    await this.decideScheme();
    let url = new URL(path, this.base);
    for (let hop = 0; ; hop++) {
      const headers = new Headers(extra);
      if (this.authorization && url.host === this.base.host) headers.set("Authorization", this.authorization);
      const res = await this.fetchOnce(url, headers);
      if (![301, 302, 303, 307, 308].includes(res.status)) return res;
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get("location");
      if (!location) throw systemError(`${this.label()}: ${url.pathname}: redirect ${res.status} without a Location`);
      const next = new URL(location, url);
      if (next.protocol !== this.base.protocol || next.host !== this.base.host) {
        throw invalid(
          `${this.label()}: ${url.pathname} redirects to another host (${next.protocol}//${next.host}); refused: only redirects within ${this.base.protocol}//${this.base.host} are followed`,
          next.href,
        );
      }
      if (hop >= MAX_REDIRECTS) throw systemError(`${this.label()}: ${url.pathname}: more than ${MAX_REDIRECTS} redirects`);
      url = next;
    }
  }

  /** A request with authentication: on a 401 answer the challenge (bearer token or basic) once and retry. */
  async request(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const res = await this.send(path, headers);
    if (res.status !== 401) return res;
    const header = res.headers.get("www-authenticate");
    await res.body?.cancel().catch(() => undefined);
    const challenge = header ? parseChallenge(header) : undefined;
    if (!challenge) throw systemError(`${this.label()}: ${path}: 401 without a WWW-Authenticate challenge`);
    const before = this.authorization;
    await this.authenticate(challenge);
    if (this.authorization === before) {
      throw new MachinaError(
        "E_INVALID",
        `${this.label()}: ${path}: access denied (401)`,
        {},
        this.credentials ? "check the credentials of --authfile" : "the registry wants credentials: give them with --authfile",
      );
    }
    const again = await this.send(path, headers);
    if (again.status === 401) {
      await again.body?.cancel().catch(() => undefined);
      throw new MachinaError(
        "E_INVALID",
        `${this.label()}: ${path}: access denied (401) with the token the registry gave`,
        {},
        this.credentials ? "check the credentials of --authfile" : "the image may need credentials: --authfile",
      );
    }
    return again;
  }

  private basic(): string | undefined {
    if (!this.credentials || this.credentials.username === IDENTITY_TOKEN_USER) return undefined;
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}`;
  }

  private async authenticate(challenge: Challenge): Promise<void> {
    if (challenge.scheme === "basic") {
      this.authorization = this.basic();
      return;
    }
    if (challenge.scheme !== "bearer") throw systemError(`${this.label()}: unsupported authentication scheme "${challenge.scheme}"`);
    const realm = challenge.params.realm;
    if (!realm) throw systemError(`${this.label()}: bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw systemError(`${this.label()}: bearer realm "${realm}" is not a URL`);
    }
    const allowed = this.options.tlsVerify === false ? ["https:", "http:"] : ["https:"];
    if (!allowed.includes(url.protocol))
      throw invalid(`${this.label()}: bearer realm ${realm}: only https is allowed (plain http only with --tls-verify=no)`, realm);
    const scope = challenge.params.scope ?? `repository:${this.ref.repository}:pull`;
    const headers = new Headers();
    const init: RequestInit & { tls?: TlsOptions } = { headers, redirect: "error" };
    if (this.credentials?.username === IDENTITY_TOKEN_USER) {
      // An identity token (a helper's "<token>" user): the OAuth2 refresh_token grant, as docker does.
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: this.credentials.password, client_id: "machina", scope });
      if (challenge.params.service) form.set("service", challenge.params.service);
      init.method = "POST";
      init.body = form.toString();
      headers.set("Content-Type", "application/x-www-form-urlencoded");
    } else {
      if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
      url.searchParams.set("scope", scope);
      const basic = this.basic();
      if (basic) headers.set("Authorization", basic);
    }
    if (this.options.signal) init.signal = this.options.signal;
    if (this.tls) init.tls = this.tls;
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (e) {
      if (isAbort(e, this.options.signal)) throw new MachinaError("E_CANCELLED", "pull cancelled");
      throw systemError(`token server ${url.host}: ${(e as Error).message}`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new MachinaError(
        "E_INVALID",
        `token server ${url.host}: answered ${res.status} for ${scope}`,
        {},
        this.credentials ? undefined : "the image may need credentials: --authfile",
      );
    }
    const body = await readCapped(res, TOKEN_MAX_BYTES, `token server ${url.host}`);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw systemError(`token server ${url.host}: the answer is not JSON`);
    }
    const parsed = tokenSchema.safeParse(json);
    const token = parsed.success ? (parsed.data.token ?? parsed.data.access_token) : undefined;
    if (!token) throw systemError(`token server ${url.host}: the answer has no token`);
    this.authorization = `Bearer ${token}`;
  }

  /** GET /v2/: the registry speaks the API (401 is fine: it wants a token). */
  async ping(): Promise<void> {
    const res = await this.send("/v2/", {});
    await res.body?.cancel().catch(() => undefined);
    if (res.status !== 200 && res.status !== 401) throw systemError(`${this.label()}: /v2/ answered ${res.status}; not a Distribution v2 registry?`);
  }

  private async fail(res: Response, what: string): Promise<never> {
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404) throw new MachinaError("E_NOT_FOUND", `${this.label()}: ${what}: not found (404)`);
    throw systemError(`${this.label()}: ${what}: answered ${res.status}`);
  }

  /** A manifest or index by tag or digest, verified against the digest when there is one. */
  async getManifest(reference: string): Promise<{ digest: string; mediaType: string; body: Uint8Array; parsed: ReturnType<typeof parseManifestOrIndex> }> {
    const what = `manifest ${this.ref.repository}:${reference}`;
    const res = await this.request(`/v2/${this.ref.repository}/manifests/${reference}`, { Accept: MANIFEST_ACCEPT });
    if (!res.ok) return this.fail(res, what);
    const body = await readCapped(res, MANIFEST_MAX_BYTES, `${this.label()}: ${what}`);
    const digest = `sha256:${sha256Hex(body)}`;
    if (reference.startsWith("sha256:") && digest !== reference) {
      throw invalid(`${this.label()}: ${what}: the content's digest is ${digest}; refused`, reference);
    }
    const claimed = res.headers.get("docker-content-digest");
    if (claimed?.startsWith("sha256:") && claimed !== digest) {
      throw invalid(`${this.label()}: ${what}: Docker-Content-Digest ${claimed} does not match the content (${digest}); refused`, claimed);
    }
    const contentType = res.headers.get("content-type") ?? "";
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw invalid(`${this.label()}: ${what}: not JSON`);
    }
    const parsed = parseManifestOrIndex(json, contentType);
    const mediaType = (json as { mediaType?: string }).mediaType ?? contentType.split(";")[0]?.trim() ?? "";
    return { digest, mediaType, body, parsed };
  }

  /**
   * A blob into the cache, verified while it streams; returns its cache path. Already cached:
   * no request. An interrupted download resumes with Range (also one a previous run left).
   */
  fetchBlob(cache: BlobCache, desc: Pick<Descriptor, "digest" | "size">): Promise<string> {
    const running = this.inflight.get(desc.digest);
    if (running) return running;
    const p = this.downloadBlob(cache, desc).finally(() => this.inflight.delete(desc.digest));
    this.inflight.set(desc.digest, p);
    return p;
  }

  private async downloadBlob(cache: BlobCache, desc: Pick<Descriptor, "digest" | "size">): Promise<string> {
    const hit = await cache.lookup(desc.digest, desc.size);
    if (hit) return hit;
    await cache.ensureDir();
    const lock = await cache.lockBlob(desc.digest, this.options.signal);
    try {
      // another process may have finished it while we waited
      return (await cache.lookup(desc.digest, desc.size)) ?? (await this.downloadLocked(cache, desc));
    } finally {
      lock.release();
    }
  }

  private async downloadLocked(cache: BlobCache, desc: Pick<Descriptor, "digest" | "size">): Promise<string> {
    const { digest, size } = desc;
    const max = pullMaxBytes(this.options);
    if (size > max)
      throw new MachinaError("E_TOO_LARGE", `blob ${digest}: ${size} bytes is over the limit of ${max} (MACHINA_PULL_MAX_BYTES)`, { value: digest });
    const partial = cache.partialPath(digest);
    const what = `blob ${digest}`;
    let hasher = new Bun.CryptoHasher("sha256");
    let have = 0;
    // A partial file a previous run left: hash what is there and go on from its end.
    const st = await stat(partial).catch(() => undefined);
    const resumedFromDisk = st?.isFile() === true && st.size > 0 && st.size <= size;
    if (st?.isFile() && st.size <= size) {
      for await (const chunk of Bun.file(partial).stream()) hasher.update(chunk);
      have = st.size;
    } else if (st) {
      await rm(partial, { force: true });
    }
    const refuse = async (error: MachinaError): Promise<never> => {
      await rm(partial, { force: true });
      throw error;
    };
    let retries = 0;
    while (have < size) {
      const headers: Record<string, string> = { "Accept-Encoding": "identity" };
      if (have > 0) headers.Range = `bytes=${have}-`;
      const res = await this.request(`/v2/${this.ref.repository}/blobs/${digest}`, headers);
      if (res.status === 416 && have > 0 && retries < BLOB_RETRIES) {
        // the partial download is not a prefix the server knows: start over
        await res.body?.cancel().catch(() => undefined);
        hasher = new Bun.CryptoHasher("sha256");
        have = 0;
        await rm(partial, { force: true });
        retries++;
        continue;
      }
      if (res.status === 206) {
        const range = res.headers.get("content-range") ?? "";
        if (!range.startsWith(`bytes ${have}-`)) {
          await res.body?.cancel().catch(() => undefined);
          return refuse(systemError(`${this.label()}: ${what}: Content-Range "${range}" does not start at ${have}`));
        }
      } else if (res.status === 200) {
        if (have > 0) {
          hasher = new Bun.CryptoHasher("sha256");
          have = 0;
        }
      } else {
        // a partial download stays for a later resume (clean() removes it); an empty one goes
        if (have === 0) await rm(partial, { force: true });
        return this.fail(res, what);
      }
      const file = await open(partial, have > 0 ? "a" : "w", 0o600);
      let broken: unknown;
      try {
        if (res.body) {
          for await (const chunk of res.body) {
            if (have + chunk.byteLength > size) {
              await res.body.cancel().catch(() => undefined);
              await file.close();
              return refuse(
                new MachinaError("E_TOO_LARGE", `${this.label()}: ${what}: more than the ${size} bytes its descriptor names; refused`, { value: digest }),
              );
            }
            hasher.update(chunk);
            await file.write(chunk);
            have += chunk.byteLength;
            this.options.onProgress?.({ digest, bytes: have, total: size });
          }
        }
      } catch (e) {
        if (isAbort(e, this.options.signal)) {
          await file.close();
          throw new MachinaError("E_CANCELLED", "pull cancelled");
        }
        broken = e;
      }
      await file.close();
      if (have < size) {
        if (retries >= BLOB_RETRIES) {
          const why = broken instanceof Error ? broken.message : "the stream ended early";
          throw systemError(
            `${this.label()}: ${what}: interrupted at ${have} of ${size} bytes after ${retries + 1} attempts (${why}); the partial download is kept for a resume`,
          );
        }
        retries++;
        await Bun.sleep(100 * retries);
      }
    }
    const got = `sha256:${hasher.digest("hex")}`;
    if (got !== digest) {
      if (resumedFromDisk) {
        // the partial file an earlier run left was not this blob's start: once more from nothing
        await rm(partial, { force: true });
        return this.downloadLocked(cache, desc);
      }
      return refuse(invalid(`${this.label()}: ${what}: the content's digest is ${got}; refused and deleted`, digest));
    }
    return cache.commit(digest, partial);
  }
}

// ---------------------------------------------------------------------------------------------
// A whole image

/**
 * Resolve REF (index → the platform's manifest), download config and layers into the cache
 * (verified, in parallel, resumable), and return what an image is made of, layers in order.
 * Nothing is unpacked here. The cache keeps the blobs; then it is trimmed to its size limit
 * (never this image's blobs).
 */
export async function pullOciImage(reference: string | ImageReference, options: PullOptions): Promise<PulledImage> {
  const ref = typeof reference === "string" ? parseImageReference(reference) : reference;
  const want = options.platform !== undefined ? parsePlatform(options.platform) : hostPlatform();
  // One signal for the whole pull: the caller's cancel, or the first failed blob stops the others.
  const stop = new AbortController();
  const onCancel = () => stop.abort();
  if (options.signal?.aborted) stop.abort();
  options.signal?.addEventListener("abort", onCancel, { once: true });
  try {
    return await pullWith(ref, want, new RegistryClient(ref, { ...options, signal: stop.signal }), options, () => stop.abort());
  } finally {
    options.signal?.removeEventListener("abort", onCancel);
  }
}

/** The image manifest REF names for a platform: the index resolved, sizes checked. */
export interface ResolvedManifest {
  manifest: ImageManifest;
  /** the image manifest's digest */
  digest: string;
  /** the digest of the index it was selected from, if there was one */
  indexDigest?: string;
}

/**
 * Which image manifest REF names for the platform (default the host's): the top manifest, and the
 * platform's manifest when that is an index. Only manifests are fetched, no blob: what a pull of
 * an image already in the pool needs to tell whether the registry has something newer.
 */
export async function resolveOciManifest(reference: string | ImageReference, options: RegistryOptions & { platform?: string }): Promise<ResolvedManifest> {
  const ref = typeof reference === "string" ? parseImageReference(reference) : reference;
  const want = options.platform !== undefined ? parsePlatform(options.platform) : hostPlatform();
  return resolveWith(ref, want, new RegistryClient(ref, options));
}

async function resolveWith(ref: ImageReference, want: Platform, client: RegistryClient): Promise<ResolvedManifest> {
  const label = formatImageReference(ref);
  let top = await client.getManifest(manifestReference(ref));
  if (!top.parsed.ok) throw invalid(`${label}: the registry's manifest is not valid: ${top.parsed.error}`);
  let indexDigest: string | undefined;
  if (top.parsed.value.kind === "index") {
    indexDigest = top.digest;
    const chosen = selectPlatform(top.parsed.value.index, want);
    top = await client.getManifest(chosen.digest);
    if (top.body.byteLength !== chosen.size) {
      throw invalid(`${label}: the manifest ${chosen.digest} has ${top.body.byteLength} bytes, the index says ${chosen.size}; refused`, chosen.digest);
    }
    if (!top.parsed.ok) throw invalid(`${label}: the manifest for ${formatPlatform(want)} is not valid: ${top.parsed.error}`);
    if (top.parsed.value.kind !== "manifest")
      throw invalid(`${label}: the index names another index for ${formatPlatform(want)}; nested indexes are not supported`);
  }
  const manifest = (top.parsed.value as { kind: "manifest"; manifest: ImageManifest }).manifest;
  return indexDigest !== undefined ? { manifest, digest: top.digest, indexDigest } : { manifest, digest: top.digest };
}

async function pullWith(ref: ImageReference, want: Platform, client: RegistryClient, options: PullOptions, stopAll: () => void): Promise<PulledImage> {
  const label = formatImageReference(ref);
  const { manifest, digest: manifestDigest, indexDigest } = await resolveWith(ref, want, client);

  const layers = manifest.layers.map((d) => {
    const compression = layerCompression(d.mediaType);
    if (compression === undefined)
      throw invalid(`${label}: layer ${d.digest} has media type ${d.mediaType}, not an image layer machina can unpack`, d.mediaType);
    return { ...d, compression };
  });
  const max = pullMaxBytes(options);
  const total = manifest.config.size + layers.reduce((n, l) => n + l.size, 0);
  if (total > max) throw new MachinaError("E_TOO_LARGE", `${label}: ${total} bytes of blobs is over the limit of ${max} (MACHINA_PULL_MAX_BYTES)`);

  await options.cache.ensureDir();
  const configPath = await client.fetchBlob(options.cache, manifest.config);
  let configJson: unknown;
  try {
    configJson = JSON.parse(await Bun.file(configPath).text());
  } catch {
    throw invalid(`${label}: the image config ${manifest.config.digest} is not JSON`);
  }
  const config = imageConfigSchema.safeParse(configJson);
  if (!config.success) throw invalid(`${label}: the image config is not valid: ${zodLine(config.error)}`);
  if (config.data.rootfs.diff_ids.length !== layers.length) {
    throw invalid(`${label}: the config names ${config.data.rootfs.diff_ids.length} layers, the manifest ${layers.length}`);
  }

  const paths = await runLimited(layers, options.concurrency ?? DEFAULT_OCI_CONCURRENCY, (l) => client.fetchBlob(options.cache, l), stopAll);
  const pinned = [manifest.config.digest, ...layers.map((l) => l.digest)];
  await options.cache.evict(pinned);

  const platform: Platform = { os: config.data.os, architecture: config.data.architecture };
  if (config.data.variant !== undefined) platform.variant = config.data.variant;
  const pulled: PulledImage = {
    reference: ref,
    manifestDigest,
    platform,
    manifest,
    config: config.data,
    configDigest: manifest.config.digest,
    configPath,
    layers: layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, compression: l.compression, path: paths[i] as string })),
  };
  if (indexDigest !== undefined) pulled.indexDigest = indexDigest;
  return pulled;
}
