import { describe, expect, it } from "vitest";
import { isRfc3339 } from "../../../attestation/manifest/release.js";
import { parseManifest, resolvePolicy, policyFromManifest } from "../../../attestation/client/policy.js";

const hex48 = (byte: number) => Buffer.alloc(48, byte).toString("hex");
const release = () => ({
  version: "0.1.0",
  gitCommit: "0123456789abcdef0123456789abcdef01234567",
  imageDigest: `sha256:${"ab".repeat(32)}`,
  eifSha384: "cd".repeat(48),
  builtAt: "2026-11-25T12:00:00Z",
});
const manifest = (r: unknown) => ({ version: 1, measurements: [{ label: "egw 0.1.0", pcrs: { "0": hex48(1) }, release: r }], trust: "any" });
const parse = (value: unknown) => parseManifest(JSON.stringify(value));
/** One mutated field of `release`; the error must name exactly that field's path. */
const refusedField = (field: string, value: unknown) =>
  expect(() => parse(manifest({ ...release(), [field]: value }))).toThrow(
    expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining(`manifest measurements[0].release.${field}: expected`) }),
  );

describe("manifest entry release", () => {
  it("reads every field; the client policy is unchanged by it", () => {
    const m = parse(manifest(release()));
    expect(m.measurements[0]!.release).toEqual(release());
    const policy = resolvePolicy(policyFromManifest(m));
    expect(policy.measurements).not.toBe("any");
  });

  it("eifSha384 and builtAt are optional; a SHA-256 object-format commit and offsets are accepted", () => {
    const { eifSha384: _e, builtAt: _b, ...required } = release();
    expect(parse(manifest(required)).measurements[0]!.release).toEqual(required);
    const r = { ...release(), gitCommit: "a".repeat(64), builtAt: "2026-11-25T12:00:00.123456789+05:30", version: "1.2.3-rc.1+build.5" };
    expect(parse(manifest(r)).measurements[0]!.release).toEqual(r);
    // Entries without a release still parse, as before.
    expect(parse({ version: 1, measurements: [{ label: "a", pcrs: { "0": hex48(1) } }], trust: "any" }).measurements[0]!.release).toBeUndefined();
  });

  it("refuses a release that is not an object, or has unknown or repeated fields", () => {
    for (const bad of ["0.1.0", [release()], null, 1]) {
      expect(() => parse(manifest(bad))).toThrow(
        expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining("measurements[0].release: expected an object") }),
      );
    }
    expect(() => parse(manifest({ ...release(), signedBy: "me" }))).toThrow(
      expect.objectContaining({ message: expect.stringContaining('measurements[0].release: unknown field "signedBy"') }),
    );
    const proto = JSON.stringify(manifest(release())).replace('"version":"0.1.0"', '"__proto__":{"version":"9.9.9"},"version":"0.1.0"');
    expect(() => parseManifest(proto)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining('unknown field "__proto__"') }));
    const twice = JSON.stringify(manifest(release())).replace('"version":"0.1.0"', '"version":"0.1.0","version":"9.9.9"');
    expect(() => parseManifest(twice)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining('"version" appears twice') }));
  });

  it("requires version, gitCommit and imageDigest", () => {
    for (const field of ["version", "gitCommit", "imageDigest"]) {
      const r: Record<string, unknown> = release();
      delete r[field];
      expect(() => parse(manifest(r))).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining(`release.${field}: expected`) }));
    }
  });

  it("version: SemVer 2.0.0 only, at most 64 characters", () => {
    for (const bad of ["v0.1.0", "0.1", "01.0.0", "0.1.0-", "0.1.0+", "0.1.0 ", "", `0.1.0-${"a".repeat(59)}`, 1, null]) refusedField("version", bad);
    expect(() => parse(manifest({ ...release(), version: `0.1.0-${"a".repeat(58)}` }))).not.toThrow(); // 64 characters
  });

  it("gitCommit: 40 or 64 lower-case hex digits", () => {
    for (const bad of ["a".repeat(39), "a".repeat(41), "A".repeat(40), `${"a".repeat(39)}g`, "a".repeat(63), "0123456", 40]) refusedField("gitCommit", bad);
  });

  it("imageDigest: sha256: and 64 lower-case hex digits", () => {
    for (const bad of [
      "ab".repeat(32),
      `sha256:${"AB".repeat(32)}`,
      `sha512:${"ab".repeat(64)}`,
      `sha256:${"ab".repeat(31)}a`,
      `SHA256:${"ab".repeat(32)}`,
      ` sha256:${"ab".repeat(32)}`,
    ]) {
      refusedField("imageDigest", bad);
    }
  });

  it("eifSha384: 96 lower-case hex digits when present", () => {
    for (const bad of ["cd".repeat(47), "CD".repeat(48), `${"cd".repeat(47)}zz`, null, 0]) refusedField("eifSha384", bad);
  });

  it("builtAt: an RFC 3339 date-time that exists", () => {
    for (const bad of [
      "2026-11-25 12:00:00Z",
      "2026-11-25t12:00:00z",
      "2026-11-25T12:00:00",
      "2026-11-25T12:00Z",
      "2026-02-30T00:00:00Z",
      "2025-02-29T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-11-25T24:00:00Z",
      "2026-11-25T12:60:00Z",
      "2026-11-25T12:00:60Z",
      "2026-11-25T12:00:00+24:00",
      "2026-11-25T12:00:00.Z",
      "2026-11-25T12:00:00.1234567890Z",
      "1764072000",
      1764072000,
    ]) {
      refusedField("builtAt", bad);
    }
    expect(isRfc3339("2024-02-29T23:59:59-00:30")).toBe(true);
  });
});
