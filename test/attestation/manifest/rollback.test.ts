/**
 * Rollback protection of measurements manifests (attestation/manifest/rollback.ts):
 * the `sequence` and `expires` fields, the minimum-sequence pin, and the
 * expiry checked with an injected clock when the manifest is loaded and
 * when a policy is resolved. One mutated field per case; assertions on
 * `{ code }`.
 */
import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkManifestRollback, loadPolicyFile, parseManifest, policyFromManifest, resolvePolicy } from "../../../attestation/client/index.js";
import { MAX_SEQUENCE } from "../../../attestation/manifest/rollback.js";
import { signManifest, spkiOf } from "../../../attestation/manifest/sign.js";
import { spkiSha256 } from "../../../attestation/manifest/signature.js";
import { PCR0_TEST, removeTempDirs, tempDir } from "../client/helpers.js";

afterAll(removeTempDirs);

const EXPIRES = "2026-12-01T00:00:00Z";
const EXPIRY = Date.parse(EXPIRES);
const at = (ms: number) => () => new Date(ms);
const base = (extra: Record<string, unknown> = {}) => ({
  version: 1,
  ...extra,
  measurements: [{ label: "test build", pcrs: { "0": Buffer.from(PCR0_TEST).toString("hex") } }],
  trust: "any",
});
const parse = (value: unknown) => parseManifest(JSON.stringify(value));
const invalidAt = (value: unknown, field: string) =>
  expect(() => parse(value), JSON.stringify(value)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining(`manifest ${field}:`) }));

describe("schema: sequence", () => {
  it("accepts an integer 1..2^53-1", () => {
    for (const sequence of [1, 2, 42, 1_000_000, MAX_SEQUENCE]) expect(parse(base({ sequence })).sequence).toBe(sequence);
    expect(MAX_SEQUENCE).toBe(2 ** 53 - 1);
    expect(parse(base()).sequence).toBeUndefined();
  });

  it("refuses anything else, naming the field", () => {
    for (const sequence of [0, -1, -0, 1.5, 2 ** 53, 1e300, "1", "", null, true, [1], { n: 1 }]) invalidAt(base({ sequence }), "sequence");
    // 2^53 + 1 is not representable: JSON.parse rounds it, and the result is refused.
    expect(() => parseManifest(JSON.stringify(base({ sequence: 1 })).replace('"sequence":1', '"sequence":9007199254740993'))).toThrow(
      expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }),
    );
  });

  it("refuses it twice", () => {
    const text = JSON.stringify(base({ sequence: 9 })).replace('"sequence":9', '"sequence":9,"sequence":1');
    expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining('"sequence" appears twice') }));
  });
});

describe("schema: expires", () => {
  it("accepts YYYY-MM-DDTHH:MM:SSZ naming a real instant, kept as written", () => {
    for (const expires of [EXPIRES, "2028-02-29T23:59:59Z", "2026-12-31T23:59:59Z", "9999-12-31T23:59:59Z"]) expect(parse(base({ expires })).expires).toBe(expires);
    expect(policyFromManifest(parse(base({ expires: EXPIRES }))).expires).toEqual(new Date(EXPIRY));
    expect(policyFromManifest(parse(base())).expires).toBeUndefined();
  });

  it("refuses every other shape, naming the field", () => {
    for (const expires of [
      "2026-12-01T00:00:00.000Z", // fractions
      "2026-12-01T00:00:00+00:00", // offsets, even zero
      "2026-12-01T01:00:00+01:00",
      "2026-12-01t00:00:00z", // lower case
      "2026-12-01 00:00:00Z",
      "2026-12-01T00:00Z",
      "2026-12-01",
      "2026-12-01T00:00:00Z ",
      " 2026-12-01T00:00:00Z",
      "2026-02-29T00:00:00Z", // not a leap year
      "2026-02-30T00:00:00Z", // Date.parse would roll this over to March
      "2026-13-01T00:00:00Z",
      "2026-12-00T00:00:00Z",
      "2026-12-01T24:00:00Z",
      "2026-12-01T23:60:00Z",
      "2026-12-31T23:59:60Z", // leap second
      "+02026-12-01T00:00:00Z",
      "",
      1_764_547_200,
      null,
      true,
    ]) {
      invalidAt(base({ expires }), "expires");
    }
  });

  it("unknown neighbours are still refused", () => {
    invalidAt(base({ expiry: EXPIRES }), "(top level)");
    invalidAt(base({ minSequence: 1 }), "(top level)");
  });
});

describe("expiry, with an injected clock", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  beforeAll(() => {
    dir = tempDir();
    fs.writeFileSync(file("expiring.json"), JSON.stringify(base({ sequence: 5, expires: EXPIRES })));
    fs.writeFileSync(file("plain.json"), JSON.stringify(base()));
  });

  it("loadPolicyFile: one second before, usable; at and one second after, ERR_MANIFEST_EXPIRED (fix-policy)", async () => {
    const loaded = await loadPolicyFile(file("expiring.json"), { now: at(EXPIRY - 1000) });
    expect(loaded.manifest.expires).toBe(EXPIRES);
    expect(loaded.policy.expires).toEqual(new Date(EXPIRY));
    for (const ms of [EXPIRY, EXPIRY + 1000]) {
      await expect(loadPolicyFile(file("expiring.json"), { now: at(ms) })).rejects.toMatchObject({
        code: "ERR_MANIFEST_EXPIRED",
        action: "fix-policy",
        message: expect.stringContaining(`expiring.json: the manifest expired at ${EXPIRES}`),
      });
    }
    // A manifest without `expires` never expires.
    await expect(loadPolicyFile(file("plain.json"), { now: at(Date.parse("9999-12-31T23:59:59Z")) })).resolves.toBeTruthy();
  });

  it("resolvePolicy: the expiry is checked at the caller's `now`, and cannot be resolved without one", () => {
    const policy = policyFromManifest(parseManifest(fs.readFileSync(file("expiring.json"), "utf8")));
    expect(resolvePolicy(policy, new Date(EXPIRY - 1000)).expires).toEqual(new Date(EXPIRY));
    expect(() => resolvePolicy(policy, new Date(EXPIRY + 1000))).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_EXPIRED", action: "fix-policy" }));
    expect(() => resolvePolicy(policy)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID", message: expect.stringContaining("needs the current time") }));
    // A policy that does not expire needs no clock, as before.
    expect(resolvePolicy({ measurements: "any", trust: "any" }).expires).toBeUndefined();
  });

  it("checkManifestRollback (for manifests loaded some other way) applies the same rules", () => {
    const m = parse(base({ sequence: 5, expires: EXPIRES }));
    expect(() => checkManifestRollback(m, { now: new Date(EXPIRY - 1000), minSequence: 5 })).not.toThrow();
    expect(() => checkManifestRollback(m, { now: new Date(EXPIRY + 1000) })).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_EXPIRED" }));
    expect(() => checkManifestRollback(m, { now: new Date(EXPIRY - 1000), minSequence: 6 })).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_ROLLBACK" }));
    expect(() => checkManifestRollback(m, {} as never)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
  });

  it("present but unusable: a missing or broken clock, an invalid expires in a policy", async () => {
    for (const options of [undefined, {}, { now: undefined }, { now: new Date() }, { now: () => new Date(NaN) }, { now: () => "2026-01-01T00:00:00Z" }]) {
      await expect(loadPolicyFile(file("expiring.json"), options as never), JSON.stringify(options)).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    }
    const set = { label: "a", pcrs: new Map([[0, PCR0_TEST]]) };
    for (const expires of [undefined, new Date(NaN), EXPIRES, EXPIRY]) {
      expect(() => resolvePolicy({ measurements: [set], trust: "any", expires } as never, new Date(0)), String(expires)).toThrow(
        expect.objectContaining({ code: "ERR_POLICY_INVALID" }),
      );
    }
    expect(() => resolvePolicy({ measurements: [set], trust: "any" }, new Date(NaN))).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
  });
});

describe("rollback: a pinned minimum sequence", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  const now = () => new Date(EXPIRY - 86_400_000);
  beforeAll(() => {
    dir = tempDir();
    fs.writeFileSync(file("seq5.json"), JSON.stringify(base({ sequence: 5 })));
    fs.writeFileSync(file("noseq.json"), JSON.stringify(base()));
  });

  it("accepts the pinned sequence and later ones", async () => {
    for (const minSequence of [1, 4, 5]) {
      expect((await loadPolicyFile(file("seq5.json"), { now, minSequence })).manifest.sequence).toBe(5);
    }
  });

  it("refuses a lower sequence, and a manifest without one, with ERR_MANIFEST_ROLLBACK (reject)", async () => {
    await expect(loadPolicyFile(file("seq5.json"), { now, minSequence: 6 })).rejects.toMatchObject({
      code: "ERR_MANIFEST_ROLLBACK",
      action: "reject",
      message: expect.stringContaining("sequence 5, older than the pinned minimum 6"),
    });
    await expect(loadPolicyFile(file("seq5.json"), { now, minSequence: MAX_SEQUENCE })).rejects.toMatchObject({ code: "ERR_MANIFEST_ROLLBACK" });
    await expect(loadPolicyFile(file("noseq.json"), { now, minSequence: 1 })).rejects.toMatchObject({
      code: "ERR_MANIFEST_ROLLBACK",
      message: expect.stringContaining("carries no sequence"),
    });
    // Without a pin, any sequence or none loads, as before.
    await expect(loadPolicyFile(file("noseq.json"), { now })).resolves.toBeTruthy();
  });

  it("a minSequence that is present but unusable is refused, not skipped", async () => {
    for (const minSequence of [undefined, 0, -1, 1.5, NaN, Infinity, 2 ** 53, "5", null]) {
      await expect(loadPolicyFile(file("seq5.json"), { now, minSequence } as never), String(minSequence)).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    }
  });

  it("an older manifest with a valid signature by the pinned key is still refused: the signature proves who, not when", async () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    const pin = spkiSha256(spkiOf(key));
    const older = new TextEncoder().encode(JSON.stringify(base({ sequence: 3, expires: EXPIRES })));
    fs.writeFileSync(file("older.json"), older);
    fs.writeFileSync(file("older.json.sig"), (await signManifest(older, key)).signature);
    const loaded = await loadPolicyFile(file("older.json"), { now, signedBy: { spkiSha256: pin }, minSequence: 3 });
    expect(loaded.signature?.keyId).toBe(Buffer.from(pin).toString("hex"));
    await expect(loadPolicyFile(file("older.json"), { now, signedBy: { spkiSha256: pin }, minSequence: 4 })).rejects.toMatchObject({ code: "ERR_MANIFEST_ROLLBACK" });
    await expect(loadPolicyFile(file("older.json"), { now: at(EXPIRY + 1000), signedBy: { spkiSha256: pin } })).rejects.toMatchObject({ code: "ERR_MANIFEST_EXPIRED" });
    // The fields are signed: raising the sequence in the file breaks the signature.
    fs.writeFileSync(file("older.json"), Buffer.from(older).toString("utf8").replace('"sequence":3', '"sequence":4'));
    await expect(loadPolicyFile(file("older.json"), { now, signedBy: { spkiSha256: pin }, minSequence: 4 })).rejects.toMatchObject({ code: "ERR_MANIFEST_SIGNATURE" });
  });
});
