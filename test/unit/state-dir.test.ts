/** The state directory stays 0755 when a 0700 directory below it is its first (src/host/state-dir.ts). Pure (fake host). */
import { expect, test } from "bun:test";
import { tokenPath, newToken } from "../../src/daemon/token-file.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { stateTemp } from "../../src/host/stream-file.ts";

test("machinad's temporaries and token, as the first things made in a missing state directory: it is 0755, they are root's", () => {
  const host = new FakeHost();
  host.mkdirp("/run", 0o755);
  stateTemp(host, "/run/machina", "upload");
  expect([host.stat("/run/machina", true)?.mode, host.stat("/run/machina/tmp", true)?.mode]).toEqual([0o755, 0o700]);
  const other = new FakeHost();
  other.mkdirp("/run", 0o755);
  newToken(other, tokenPath("/run/machina"));
  expect([other.stat("/run/machina", true)?.mode, other.stat("/run/machina/web.token", true)?.mode]).toEqual([0o755, 0o600]);
});
