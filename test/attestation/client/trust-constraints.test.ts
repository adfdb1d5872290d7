/**
 * The trust section of a manifest and of a ClientPolicy: "any" on purpose,
 * or an object constraining at least one thing; every malformed shape is
 * refused with the field named, never skipped.
 */
import { describe, expect, it } from "vitest";
import { parseManifest, parseMeasurementsManifest, resolvePolicy } from "../../../attestation/client/policy.js";
import { describeTrustConstraints, readTrustSetting, trustJson, unconstrainedTrust } from "../../../attestation/client/trust-constraints.js";
import { ClientError } from "../../../attestation/client/errors.js";

const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_ARN = "arn:aws:kms:us-east-1:444455556666:key/mrk-0123456789abcdef0123456789abcdef";
const HASH = "ab".repeat(32);
const manifest = (trust: unknown, omit = false) => JSON.stringify({ version: 1, measurements: [{ label: "a", pcrs: { "0": "11".repeat(48) } }], ...(!omit && { trust }) });
const parse = (trust: unknown) => parseManifest(manifest(trust)).trust;
const invalidAt = (trust: unknown, where: string) =>
  expect(() => parse(trust), JSON.stringify(trust)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining(`manifest ${where}:`) }));
const set = { label: "a", pcrs: new Map([[0, new Uint8Array(48).fill(0x11)]]) };

describe("manifest trust section", () => {
  it('"any" is accepted on purpose, and says so when described', () => {
    expect(parse("any")).toBe("any");
    expect(unconstrainedTrust("any")).toEqual(["trust policy (trust: any)"]);
    expect(describeTrustConstraints("any").join("\n")).toContain("NOT constrained");
  });

  it("reads every field of the documented shape", () => {
    const trust = parse({
      upstreamOrigins: ["https://api.openai.com", "local", "http://127.0.0.1:9999"],
      identity: { mode: "sealed", kmsKeyArn: ARN },
      secretsKmsKeyArn: OTHER_ARN,
      policySha256: [HASH.toUpperCase()],
    });
    expect(trust).toEqual({
      upstreamOrigins: ["https://api.openai.com", "local", "http://127.0.0.1:9999"],
      identity: { mode: "sealed", kmsKeyArn: ARN },
      secretsKmsKeyArn: OTHER_ARN,
      policySha256: [new Uint8Array(Buffer.from(HASH, "hex"))],
    });
    expect(parse({ identity: { mode: "ephemeral" } })).toEqual({ identity: { mode: "ephemeral" } });
    // Round trip through the writers' form.
    expect(parse(trustJson(trust))).toEqual(trust);
    expect(unconstrainedTrust({ upstreamOrigins: ["local"] })).toEqual(["identity", "secrets KMS key"]);
    expect(unconstrainedTrust({ policySha256: [new Uint8Array(32)] })).toEqual([]);
  });

  it('a manifest without trust, or with an object that constrains nothing, is refused and told to write "any"', () => {
    for (const text of [manifest(undefined, true), manifest({})]) {
      expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID", message: expect.stringContaining('"any" on purpose') }));
    }
  });

  const junk: [unknown, string][] = [
    [null, "trust"],
    [[], "trust"],
    [5, "trust"],
    ["none", "trust"],
    ["ANY", "trust"],
    [{ origins: ["local"] }, "trust"],
    [{ upstreamOrigins: [] }, "trust.upstreamOrigins"],
    [{ upstreamOrigins: "local" }, "trust.upstreamOrigins"],
    [{ upstreamOrigins: Array.from({ length: 65 }, (_, i) => `https://h${i}.example`) }, "trust.upstreamOrigins"],
    [{ upstreamOrigins: [5] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: [""] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["api.openai.com"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["https://API.openai.com"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["https://api.openai.com/"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["https://api.openai.com/v1"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["https://api.openai.com:443"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["https://u:p@api.openai.com"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["ftp://files.example"] }, "trust.upstreamOrigins[0]"],
    [{ upstreamOrigins: ["local", "local"] }, "trust.upstreamOrigins[1]"],
    [{ identity: "ephemeral" }, "trust.identity"],
    [{ identity: {} }, "trust.identity.mode"],
    [{ identity: { mode: "shared" } }, "trust.identity.mode"],
    [{ identity: { mode: "ephemeral", kmsKeyArn: ARN } }, "trust.identity"],
    [{ identity: { mode: "sealed" } }, "trust.identity.kmsKeyArn"],
    [{ identity: { mode: "sealed", kmsKeyArn: "alias/identity" } }, "trust.identity.kmsKeyArn"],
    [{ identity: { mode: "sealed", kmsKeyArn: ARN, generatorPcrs: [] } }, "trust.identity"],
    [{ secretsKmsKeyArn: "1234abcd-12ab-34cd-56ef-1234567890ab" }, "trust.secretsKmsKeyArn"],
    [{ secretsKmsKeyArn: "arn:aws:kms:eu-west-1:111122223333:alias/secrets" }, "trust.secretsKmsKeyArn"],
    [{ secretsKmsKeyArn: 5 }, "trust.secretsKmsKeyArn"],
    [{ secretsKmsKeyArn: null }, "trust.secretsKmsKeyArn"],
    [{ policySha256: [] }, "trust.policySha256"],
    [{ policySha256: HASH }, "trust.policySha256"],
    [{ policySha256: ["ab"] }, "trust.policySha256[0]"],
    [{ policySha256: [`${HASH.slice(1)}g`] }, "trust.policySha256[0]"],
    [{ policySha256: [HASH, HASH.toUpperCase()] }, "trust.policySha256[1]"],
  ];
  for (const [trust, where] of junk) {
    it(`refuses ${JSON.stringify(trust).slice(0, 80)} at ${where}`, () => invalidAt(trust, where));
  }

  it("refuses a repeated key inside the trust section", () => {
    const text = manifest({ identity: { mode: "ephemeral" } })
      .replace('"trust":{', '"trust":{"secretsKmsKeyArn":"x",')
      .replace('"identity"', '"secretsKmsKeyArn"');
    expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining("appears twice") }));
  });
});

describe("parseMeasurementsManifest (egw measure: PCRs only)", () => {
  it("allows a missing trust section, still refuses a malformed one, and parseManifest still requires it", () => {
    expect(parseMeasurementsManifest(manifest(undefined, true)).trust).toBeUndefined();
    expect(parseMeasurementsManifest(manifest("any")).trust).toBe("any");
    expect(() => parseMeasurementsManifest(manifest({}))).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => parseMeasurementsManifest(manifest({ upstreamOrigins: [] }))).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }));
    expect(() => parseManifest(manifest(undefined, true))).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
  });
});

describe("ClientPolicy.trust (programmatic)", () => {
  it('is required, and "any" must be said on purpose', () => {
    expect(() => resolvePolicy({ measurements: [set] } as never)).toThrow(
      expect.objectContaining({ code: "ERR_POLICY_INVALID", message: expect.stringContaining('"any" on purpose') }),
    );
    expect(() => resolvePolicy({ measurements: [set], trust: {} })).toThrow(
      expect.objectContaining({ code: "ERR_POLICY_INVALID", message: expect.stringContaining('"any" on purpose') }),
    );
    expect(resolvePolicy({ measurements: [set], trust: "any" }).trust).toBe("any");
  });

  it("takes hashes as bytes, and refuses present-but-unusable fields", () => {
    const pin = new Uint8Array(32).fill(7);
    expect(resolvePolicy({ measurements: [set], trust: { policySha256: [pin] } }).trust).toEqual({ policySha256: [pin] });
    const bad: unknown[] = [
      { policySha256: [HASH] },
      { policySha256: [new Uint8Array(31)] },
      { upstreamOrigins: undefined },
      { upstreamOrigins: ["local"], identity: undefined },
      { secretsKmsKeyArn: undefined, upstreamOrigins: ["local"] },
      { upstreamOrigins: ["https://api.openai.com/"] },
    ];
    for (const trust of bad) {
      expect(() => resolvePolicy({ measurements: [set], trust: trust as never }), JSON.stringify(trust)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    }
  });

  it("copies what it keeps: a caller mutating its pin afterwards changes nothing", () => {
    const pin = new Uint8Array(32).fill(7);
    const resolved = resolvePolicy({ measurements: [set], trust: { policySha256: [pin] } });
    pin[0] = 0;
    expect((resolved.trust as { policySha256: Uint8Array[] }).policySha256[0]![0]).toBe(7);
  });

  it("readTrustSetting's malformed-field errors are the caller's", () => {
    const fail = (where: string, message: string) => new ClientError("ERR_MANIFEST_INVALID", `${where}: ${message}`);
    expect(() => readTrustSetting({ identity: 1 }, "json", fail)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }));
  });
});
