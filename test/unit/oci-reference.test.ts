/** Image references: the distribution grammar's cases and docker/podman's normalization. */
import { describe, expect, test } from "bun:test";
import { MachinaError } from "../../src/errors.ts";
import { parseManifestOrIndex } from "../../src/oci/manifest.ts";
import { defaultImageName, formatImageReference, parseImageReference, registryApiHost } from "../../src/oci/reference.ts";

const D = `sha256:${"a".repeat(64)}`;

describe("parseImageReference", () => {
  const good: [string, string][] = [
    ["debian", "docker.io/library/debian:latest"],
    ["debian:12", "docker.io/library/debian:12"],
    ["library/debian:bookworm-slim", "docker.io/library/debian:bookworm-slim"],
    ["docker.io/debian", "docker.io/library/debian:latest"],
    ["index.docker.io/debian", "docker.io/library/debian:latest"],
    ["foo/bar", "docker.io/foo/bar:latest"],
    ["quay.io/podman/hello:latest", "quay.io/podman/hello:latest"],
    ["localhost/foo", "localhost/foo:latest"],
    ["localhost:5000/foo/bar:v1.2", "localhost:5000/foo/bar:v1.2"],
    ["127.0.0.1:5000/a", "127.0.0.1:5000/a:latest"],
    ["[::1]:5000/a:t", "[::1]:5000/a:t"],
    ["Example.COM/a", "Example.COM/a:latest"],
    ["my-registry.local/a.b/c__d/e-f--g", "my-registry.local/a.b/c__d/e-f--g:latest"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`r.io/a:t@${D}`, `r.io/a:t@${D}`],
    ["a:_Tag.1-x", "docker.io/library/a:_Tag.1-x"],
    [`a:${"t".repeat(128)}`, `docker.io/library/a:${"t".repeat(128)}`],
    ["localhost:5000", "docker.io/library/localhost:5000"], // as docker: a name with a tag
  ];
  for (const [input, want] of good) {
    test(`${input} → ${want}`, () => expect(formatImageReference(parseImageReference(input))).toBe(want));
  }

  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["Debian", /lowercase/],
    ["foo/Bar", /lowercase/],
    ["a b", /white space/],
    ["https://r.io/a", /no scheme/],
    ["a:", /tag "" is not allowed/],
    ["a:.x", /tag ".x"/],
    [`a:${"t".repeat(129)}`, /tag/],
    ["a@sha256:abc", /not a digest/],
    [`a@sha512:${"a".repeat(128)}`, /only sha256/],
    [`a@sha256:${"A".repeat(64)}`, /only sha256/],
    ["r.io//a", /empty path component/],
    ["r.io/a/", /empty path component/],
    ["/a", /empty path component/],
    ["r.io:99999/a", /port 99999/],
    ["-r.io/a", /registry "-r.io"/],
    ["a/-b", /not a valid path component/],
    ["a/b_", /not a valid path component/],
    ["a/b___c", /not a valid path component/],
    [`r.io/${"a".repeat(260)}`, /longer than 255/],
    ["r.io/:t", /empty path component|no repository/],
  ];
  for (const [input, why] of bad) {
    test(`refuses ${JSON.stringify(input)}`, () => {
      let error: unknown;
      try {
        parseImageReference(input);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MachinaError);
      const e = error as MachinaError;
      expect(e.code).toBe("E_INVALID");
      expect(e.message).toMatch(why);
      expect(e.message).toContain(`"${input}"`);
      expect(e.message).toContain("allowed:");
      expect(e.message.includes("\n")).toBe(false);
    });
  }

  test("the API host and a default name", () => {
    expect(registryApiHost(parseImageReference("debian"))).toBe("registry-1.docker.io");
    expect(registryApiHost(parseImageReference("127.0.0.1:5000/x/y"))).toBe("127.0.0.1:5000");
    expect(defaultImageName(parseImageReference("127.0.0.1:5000/x/y:3"))).toBe("y");
  });
});

describe("manifest documents", () => {
  const desc = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: D, size: 3 };
  test("told apart by mediaType or shape", () => {
    const m = parseManifestOrIndex({ schemaVersion: 2, config: desc, layers: [desc] });
    expect(m.ok && m.value.kind).toBe("manifest");
    const i = parseManifestOrIndex({ schemaVersion: 2, manifests: [desc] });
    expect(i.ok && i.value.kind).toBe("index");
    const bad = parseManifestOrIndex({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { ...desc, digest: "sha256:x" },
      layers: [],
    });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toMatch(/config\.digest/);
    expect(parseManifestOrIndex({ schemaVersion: 2, config: { ...desc, size: -1 }, layers: [] }).ok).toBe(false);
  });
});
