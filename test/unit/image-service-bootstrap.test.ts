/** The image service's bootstrap check: what machinad answers before it queues a bootstrap job. */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";

describe("the image service's bootstrap check (what the API answers before it queues a job)", () => {
  test("a build tool on PATH: accepted; none: the missing program named; an unknown distribution or bad name refused", async () => {
    const { LocalImageService } = await import("../../src/api/image-service.ts");
    const paths = { helper: "/h", stateDir: "/s", pool: ["/p"] };
    const withTool = new LocalImageService(new FakeHost({ files: { "/usr/sbin/debootstrap": "", "/p": { kind: "dir" } } }), paths, {
      PATH: "/usr/sbin:/usr/bin",
    });
    expect(() => withTool.checkBootstrap({ name: "deb", distro: "debian" })).not.toThrow();
    const without = new LocalImageService(new FakeHost(), paths, { PATH: "/usr/sbin:/usr/bin" });
    expect(() => without.checkBootstrap({ name: "deb", distro: "debian" })).toThrow(/debootstrap|mmdebstrap/);
    expect(() => withTool.checkBootstrap({ name: "deb", distro: "arch" as "debian" })).toThrow("unknown distribution");
    expect(() => withTool.checkBootstrap({ name: "a/b", distro: "debian" })).toThrow();
  });
});
