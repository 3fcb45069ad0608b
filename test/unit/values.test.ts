import { describe, expect, test } from "bun:test";
import {
  parseAbsolutePath,
  parseBoolean,
  parseEnvAssignment,
  parseHostname,
  parseMachineName,
  parseSignal,
  parseUuid,
  signalName,
} from "../../src/settings/values.ts";
import { parseCapabilityList, capabilityMask, NSPAWN_DEFAULT_CAPS } from "../../src/settings/capabilities.ts";
import { parseRlimitAssignment } from "../../src/settings/rlimits.ts";
import { escapeUnitName, machineNameFromDirectory } from "../../src/settings/machine-name.ts";

const ctx = { flag: "--x" };

describe("value parsers", () => {
  test("booleans take systemd's words", () => {
    for (const w of ["1", "yes", "Y", "true", "t", "on"]) expect(parseBoolean(w, ctx)).toBe(true);
    for (const w of ["0", "no", "N", "false", "f", "off"]) expect(parseBoolean(w, ctx)).toBe(false);
    expect(() => parseBoolean("maybe", ctx)).toThrow('invalid value "maybe" for --x: expected a boolean');
    expect(() => parseBoolean("", ctx)).toThrow("expected a boolean");
  });

  test("machine names follow hostname rules", () => {
    for (const ok of ["a", "deb-12", "web.example", "A1", "x".repeat(64)]) expect(parseMachineName(ok, ctx)).toBe(ok);
    for (const bad of ["", "bad name", "-x", ".x", "x.", "a..b", "x".repeat(65), "a/b", "é", ".#tmp"])
      expect(() => parseMachineName(bad, ctx)).toThrow("expected a machine name");
  });

  test("hostnames", () => {
    expect(parseHostname("box.example.org", ctx)).toBe("box.example.org");
    for (const bad of ["", "a_b", "-a", "a-", "a..b"]) expect(() => parseHostname(bad, ctx)).toThrow("hostname");
  });

  test("UUIDs with or without dashes, normalised", () => {
    expect(parseUuid("0123456789ABCDEF0123456789abcdef", ctx)).toBe("01234567-89ab-cdef-0123-456789abcdef");
    expect(parseUuid("01234567-89ab-cdef-0123-456789abcdef", ctx)).toBe("01234567-89ab-cdef-0123-456789abcdef");
    for (const bad of ["", "xyz", "0123456789abcdef0123456789abcde", "00000000000000000000000000000000"])
      expect(() => parseUuid(bad, ctx)).toThrow("expected a UUID");
  });

  test("signals by name, number and real-time offset", () => {
    expect(parseSignal("SIGTERM", ctx)).toBe(15);
    expect(parseSignal("term", ctx)).toBe(15);
    expect(parseSignal("9", ctx)).toBe(9);
    expect(parseSignal("RTMIN+3", ctx)).toBe(37);
    expect(parseSignal("SIGRTMIN+4", ctx)).toBe(38);
    expect(parseSignal("RTMAX-1", ctx)).toBe(63);
    for (const bad of ["", "SIGFOO", "0", "65", "32", "RTMIN+40"]) expect(() => parseSignal(bad, ctx)).toThrow("expected a signal");
    expect(signalName(37)).toBe("SIGRTMIN+3");
    expect(signalName(9)).toBe("SIGKILL");
  });

  test("environment assignments", () => {
    expect(parseEnvAssignment("A=b=c", {}, ctx)).toBe("A=b=c");
    expect(parseEnvAssignment("HOMEX", { HOMEX: "/h" }, ctx)).toBe("HOMEX=/h");
    expect(parseEnvAssignment("UNSET", {}, ctx)).toBeUndefined();
    for (const bad of ["", "=x", "1A=x", "A B=x", "A=\n"]) expect(() => parseEnvAssignment(bad, {}, ctx)).toThrow("NAME=VALUE");
  });

  test("absolute paths are normalised; relative and .. refused", () => {
    expect(parseAbsolutePath("//a/./b/", ctx)).toBe("/a/b");
    expect(() => parseAbsolutePath("a", ctx)).toThrow("an absolute path");
    expect(() => parseAbsolutePath("/a/../b", ctx)).toThrow("without '..'");
  });

  test("capabilities", () => {
    expect(parseCapabilityList("net_admin,CAP_SYS_TIME", ctx)).toEqual(["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
    expect(parseCapabilityList("all", ctx)).toBe("all");
    expect(() => parseCapabilityList("CAP_FLY", ctx)).toThrow("capability name");
    expect(() => parseCapabilityList("", ctx)).toThrow();
    // systemd-nspawn's default bounding set, as seen in /proc/self/status inside its containers
    expect(capabilityMask(NSPAWN_DEFAULT_CAPS)).toBe("fdecafff");
  });

  test("rlimits", () => {
    expect(parseRlimitAssignment("NOFILE=1024:4096", ctx)).toEqual({ resource: 7, name: "NOFILE", soft: 1024n, hard: 4096n });
    expect(parseRlimitAssignment("RLIMIT_CORE=infinity", ctx)).toMatchObject({ resource: 4, soft: "infinity", hard: "infinity" });
    for (const bad of ["", "NOFILE", "FOO=1", "NOFILE=x", "NOFILE=10:5", "NOFILE=infinity:5", "NOFILE=-1"])
      expect(() => parseRlimitAssignment(bad, ctx)).toThrow("invalid value");
  });

  test("machine names derived from directories, and unit-name escaping", () => {
    expect(machineNameFromDirectory("/var/lib/machines/deb12/")).toBe("deb12");
    expect(machineNameFromDirectory("/srv/my_box")).toBe("mybox");
    expect(machineNameFromDirectory("/srv/___")).toBeUndefined();
    expect(escapeUnitName("my-box.x")).toBe("my\\x2dbox.x");
  });
});
