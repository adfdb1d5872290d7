import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeBundle, encodeBundle, MAX_BUNDLE_BYTES, MAX_OPERATIONS_BYTES, MAX_TRUST_POLICY_BYTES, MAX_IDENTITY_DAYS } from "../../../../host/transport/codec/bundle.js";
import { ProvisionError } from "../../../../host/transport/codec/provision-errors.js";

/**
 * The bundle is parsed as hostile input (it crosses the host): strict
 * shape, bounded sizes, exact bytes. The host's encoder and the enclave's
 * decoder are one file (host/transport/codec/bundle.ts); the round trips
 * here hold the two halves to one format.
 */
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY1";
const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET, sessionToken: "IQoJb3JpZ2luX2VjEPr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==" };
const utf8 = (s: string) => new TextEncoder().encode(s);
const b64 = (s: string | Uint8Array) => Buffer.from(typeof s === "string" ? utf8(s) : s).toString("base64");
const CONFIG = utf8('{ "version": 1,\n  "providers": [] }\n');
const OPS = utf8('{ "version": 1, "clients": [] }');
const SEALED = utf8('{"version":1,"keyId":"alias/egw","region":"eu-west-1","secrets":{"A":"AAAA"}}');

function expectCode(body: Uint8Array | string, code: string): ProvisionError {
  try {
    decodeBundle(typeof body === "string" ? utf8(body) : body);
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionError);
    expect((err as ProvisionError).code, (err as Error).message).toBe(code);
    return err as ProvisionError;
  }
  throw new Error(`expected ${code}`);
}

describe("boot bundle: host encoder → enclave decoder", () => {
  it("carries the trust policy, the operations and the sealed file byte for byte (whitespace, key order, non-ASCII), with credentials and endpoint", () => {
    const config = utf8('{"version":1, "b":"é",\t"a":[ ]}\r\n');
    const decoded = decodeBundle(
      encodeBundle({ trustPolicy: config, operations: OPS, sealedSecrets: SEALED, awsCredentials: creds, kmsEndpoint: "https://kms.eu-west-1.amazonaws.com" }),
    );
    expect(Buffer.from(decoded.trustPolicyBytes).equals(Buffer.from(config))).toBe(true);
    expect(Buffer.from(decoded.operationsBytes).equals(Buffer.from(OPS))).toBe(true);
    expect(Buffer.from(decoded.sealedSecrets!.file).equals(Buffer.from(SEALED))).toBe(true);
    expect(decoded.sealedSecrets!.credentials).toEqual(creds);
    expect(decoded.sealedSecrets!.endpoint).toBe("https://kms.eu-west-1.amazonaws.com");
  });

  it("a config-only bundle has no sealedSecrets; a session token is optional", () => {
    expect(decodeBundle(encodeBundle({ trustPolicy: CONFIG, operations: OPS }))).toEqual({ trustPolicyBytes: new Uint8Array(CONFIG), operationsBytes: new Uint8Array(OPS) });
    const { sessionToken: _, ...noToken } = creds;
    expect(decodeBundle(encodeBundle({ trustPolicy: CONFIG, operations: OPS, sealedSecrets: SEALED, awsCredentials: noToken })).sealedSecrets).toEqual({
      file: new Uint8Array(SEALED),
      credentials: noToken,
    });
  });

  it("carries an identity request: validity, then overlap and rotateTls only when given", () => {
    const base = { trustPolicy: CONFIG, operations: OPS, sealedSecrets: SEALED, awsCredentials: creds };
    expect(decodeBundle(encodeBundle({ ...base, identity: { generate: { validityDays: 30 } } })).identity).toEqual({ generate: { validityDays: 30 } });
    expect(decodeBundle(encodeBundle({ ...base, identity: { generate: { validityDays: MAX_IDENTITY_DAYS, overlapDays: 0, rotateTls: true } } })).identity).toEqual({
      generate: { validityDays: MAX_IDENTITY_DAYS, overlapDays: 0, rotateTls: true },
    });
    // rotateTls false is the default, so the encoder leaves it out; the decoder keeps an explicit false.
    expect(decodeBundle(encodeBundle({ ...base, identity: { generate: { validityDays: 1, overlapDays: 7, rotateTls: false } } })).identity).toEqual({
      generate: { validityDays: 1, overlapDays: 7 },
    });
    expect(
      decodeBundle(
        utf8(
          JSON.stringify({
            version: 2,
            trustPolicy: b64(CONFIG),
            operations: b64(OPS),
            sealedSecrets: b64(SEALED),
            awsCredentials: creds,
            identity: { generate: { validityDays: 2, rotateTls: false } },
          }),
        ),
      ).identity,
    ).toEqual({
      generate: { validityDays: 2, rotateTls: false },
    });
    expect(decodeBundle(encodeBundle(base)).identity).toBeUndefined();
  });

  it("round-trips arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2048 }), fc.option(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { nil: undefined }), (config, sealed) => {
        const decoded = decodeBundle(encodeBundle({ trustPolicy: config, operations: config, ...(sealed && { sealedSecrets: sealed, awsCredentials: creds }) }));
        expect(Buffer.from(decoded.trustPolicyBytes).equals(Buffer.from(config))).toBe(true);
        expect(Buffer.from(decoded.operationsBytes).equals(Buffer.from(config))).toBe(true);
        if (sealed) expect(Buffer.from(decoded.sealedSecrets!.file).equals(Buffer.from(sealed))).toBe(true);
        else expect(decoded.sealedSecrets).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });
});

describe("boot bundle: refusals", () => {
  const good = { version: 2, trustPolicy: b64(CONFIG), operations: b64(OPS), sealedSecrets: b64(SEALED), awsCredentials: creds, kmsEndpoint: "https://kms.example.com" };
  const json = (v: unknown) => JSON.stringify(v);
  const without = (key: string) => json(Object.fromEntries(Object.entries(good).filter(([k]) => k !== key)));

  it.each<[string, string | Uint8Array]>([
    ["not UTF-8", new Uint8Array([0x7b, 0xff, 0x7d])],
    ["a byte-order mark", `\ufeff${json(good)}`],
    ["not JSON", "{"],
    ["an array", "[]"],
    ["null", "null"],
    ["a number", "1"],
    ["a JSON escape", json({ ...good, kmsEndpoint: "https://kms.example.com/" }).replace("kms.example", "kms\\u002eexample")],
    ["a duplicate top-level field", `{"version":2,"trustPolicy":"${b64(CONFIG)}","operations":"${b64(OPS)}","trustPolicy":"${b64("{}")}"}`],
    ["a duplicate credential field", json(good).replace('"accessKeyId"', `"accessKeyId":"AKIAIOSFODNN7EXAMPLF","accessKeyId"`)],
    ["an unknown top-level field", json({ ...good, debug: true })],
    ["an unknown credential field", json({ ...good, awsCredentials: { ...creds, expiration: "2030-01-01" } })],
    ["a missing version", without("version")],
    ["version 3", json({ ...good, version: 3 })],
    ['version "1"', json({ ...good, version: "1" })],
    ["a missing trust policy", without("trustPolicy")],
    ["a missing operations file", without("operations")],
    ["version 1 (a single runtime config, no trust policy)", json({ version: 1, config: b64(CONFIG) })],
    ["a trust policy that is not a string", json({ ...good, trustPolicy: [1] })],
    ["an empty trust policy", json({ ...good, trustPolicy: "" })],
    ["an empty operations file", json({ ...good, operations: "" })],
    ["a trust policy in base64url", json({ ...good, trustPolicy: "_-8=" })],
    ["non-canonical base64 (trailing bits)", json({ ...good, trustPolicy: "QR==" })],
    ["base64 without padding", json({ ...good, operations: "QQ" })],
    ["credentials without a sealed file", without("sealedSecrets")],
    ["a KMS endpoint without a sealed file", json({ version: 2, trustPolicy: b64(CONFIG), operations: b64(OPS), kmsEndpoint: "https://kms.example.com" })],
    ["a sealed file without credentials", without("awsCredentials")],
    ["credentials that are not an object", json({ ...good, awsCredentials: "AKIA:secret" })],
    ["a missing secret key", json({ ...good, awsCredentials: { accessKeyId: creds.accessKeyId } })],
    ["a short access key id", json({ ...good, awsCredentials: { ...creds, accessKeyId: "AKIA" } })],
    ["an access key id with a space", json({ ...good, awsCredentials: { ...creds, accessKeyId: "AKIA IOSFODNN7EXAMPLE" } })],
    ["a secret key with a space", json({ ...good, awsCredentials: { ...creds, secretAccessKey: "a b" } })],
    ["an empty secret key", json({ ...good, awsCredentials: { ...creds, secretAccessKey: "" } })],
    ["a session token that is a number", json({ ...good, awsCredentials: { ...creds, sessionToken: 7 } })],
    ["a KMS endpoint with a path", json({ ...good, kmsEndpoint: "https://kms.example.com/x" })],
    ["a KMS endpoint that is not http(s)", json({ ...good, kmsEndpoint: "file:///etc/passwd" })],
    ...identityRefusals(),
  ])("refuses %s (ERR_PROVISION_MALFORMED)", (_what, body) => {
    expectCode(body, "ERR_PROVISION_MALFORMED");
  });

  /** One mutated field per case, on top of a valid identity request. */
  function identityRefusals(): [string, string][] {
    const withIdentity = (identity: unknown) => json({ ...good, identity });
    const generate = (g: Record<string, unknown>) => withIdentity({ generate: { validityDays: 30, ...g } });
    return [
      ["an identity request without a sealed file", json({ version: 2, trustPolicy: b64(CONFIG), operations: b64(OPS), identity: { generate: { validityDays: 30 } } })],
      ["an identity request that is null", withIdentity(null)],
      ["an identity request that is an array", withIdentity([{ generate: { validityDays: 30 } }])],
      ["an identity request without a verb", withIdentity({})],
      ["an identity request with an unknown verb", withIdentity({ generate: { validityDays: 30 }, open: true })],
      ["an identity request whose generate is not an object", withIdentity({ generate: 30 })],
      ["an identity request without validityDays", withIdentity({ generate: { overlapDays: 1 } })],
      ["an identity request with an unknown generate field", generate({ validityMs: 1000 })],
      ["validityDays 0", generate({ validityDays: 0 })],
      [`validityDays ${MAX_IDENTITY_DAYS + 1}`, generate({ validityDays: MAX_IDENTITY_DAYS + 1 })],
      ["validityDays 1.5", generate({ validityDays: 1.5 })],
      ['validityDays "30"', generate({ validityDays: "30" })],
      ["validityDays null", generate({ validityDays: null })],
      ["overlapDays -1", generate({ overlapDays: -1 })],
      [`overlapDays ${MAX_IDENTITY_DAYS + 1}`, generate({ overlapDays: MAX_IDENTITY_DAYS + 1 })],
      ["overlapDays 0.5", generate({ overlapDays: 0.5 })],
      ["overlapDays null", generate({ overlapDays: null })],
      ['rotateTls "yes"', generate({ rotateTls: "yes" })],
      ["rotateTls 1", generate({ rotateTls: 1 })],
      ["a duplicate generate field", withIdentity({ generate: { validityDays: 30 } }).replace('"validityDays":30', '"validityDays":30,"validityDays":31')],
    ];
  }

  it("refuses a trust policy over 256 KiB, operations over 1 MiB and a body over the frame cap (ERR_PROVISION_TOO_LARGE)", () => {
    expectCode(json({ version: 2, trustPolicy: Buffer.alloc(MAX_TRUST_POLICY_BYTES + 3).toString("base64"), operations: b64(OPS) }), "ERR_PROVISION_TOO_LARGE");
    expectCode(json({ version: 2, trustPolicy: b64(CONFIG), operations: Buffer.alloc(MAX_OPERATIONS_BYTES + 3).toString("base64") }), "ERR_PROVISION_TOO_LARGE");
    expectCode(new Uint8Array(MAX_BUNDLE_BYTES + 1), "ERR_PROVISION_TOO_LARGE");
  });

  it("never puts a credential in an error message", () => {
    for (const bad of [
      { ...creds, accessKeyId: `${SECRET} ` },
      { ...creds, secretAccessKey: `${SECRET} x` },
      { ...creds, extra: SECRET },
    ]) {
      const err = expectCode(json({ ...good, awsCredentials: bad }), "ERR_PROVISION_MALFORMED");
      expect(err.message).not.toContain("CANARY");
    }
    expect(expectCode(json({ ...good, [SECRET]: 1 }), "ERR_PROVISION_MALFORMED").message).not.toContain("CANARY");
  });

  it("rejects a deeply nested body in bounded time", () => {
    const deep = `{"version":2,"trustPolicy":"${b64(CONFIG)}","operations":"${b64(OPS)}","x":${"[".repeat(200_000)}${"]".repeat(200_000)}}`;
    const started = performance.now();
    expectCode(deep, "ERR_PROVISION_MALFORMED");
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("bundle inputs on the host", () => {
  const body = (s: string | object) => new TextEncoder().encode(typeof s === "string" ? s : JSON.stringify(s));
  function code(f: () => unknown): string {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(ProvisionError);
      return (err as ProvisionError).code;
    }
    throw new Error("expected a throw");
  }
  const files = { trustPolicy: body("{}"), operations: body("{}") };
  const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret" };

  it("refuses what the enclave would refuse, before dialling", () => {
    expect(code(() => encodeBundle({ ...files, trustPolicy: new Uint8Array() }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ ...files, operations: new Uint8Array() }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ ...files, awsCredentials: creds }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ ...files, kmsEndpoint: "https://kms.example.com" }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ ...files, sealedSecrets: body("{}") }))).toBe("ERR_PROVISION_CREDENTIALS");
    expect(code(() => encodeBundle({ ...files, trustPolicy: new Uint8Array(256 * 1024 + 1) }))).toBe("ERR_PROVISION_TOO_LARGE");
    expect(code(() => encodeBundle({ ...files, operations: new Uint8Array(1024 * 1024 + 1) }))).toBe("ERR_PROVISION_TOO_LARGE");
    // Control: the same files, well formed, encode (version 2, both as base64 of the exact bytes).
    const wire = JSON.parse(new TextDecoder().decode(encodeBundle(files))) as Record<string, unknown>;
    expect(wire).toEqual({ version: 2, trustPolicy: Buffer.from("{}").toString("base64"), operations: Buffer.from("{}").toString("base64") });
  });

  it("refuses an identity request the enclave would refuse, before dialling", () => {
    const sealed = body({ version: 1, keyId: "alias/x", region: "eu-central-1", secrets: {} });
    const with_ = (generate: { validityDays: number; overlapDays?: number }) => () =>
      encodeBundle({ ...files, sealedSecrets: sealed, awsCredentials: creds, identity: { generate } });
    expect(code(() => encodeBundle({ ...files, identity: { generate: { validityDays: 30 } } }))).toBe("ERR_PROVISION_INPUT");
    for (const bad of [
      { validityDays: 0 },
      { validityDays: 1826 },
      { validityDays: 1.5 },
      { validityDays: 30, overlapDays: -1 },
      { validityDays: 30, overlapDays: 1826 },
      { validityDays: Number.NaN },
    ]) {
      expect(code(with_(bad))).toBe("ERR_PROVISION_INPUT");
    }
  });
});
