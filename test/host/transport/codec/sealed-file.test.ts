import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_CIPHERTEXT_BYTES,
  MAX_SEALED_FILE_BYTES,
  MAX_SEALED_SECRETS,
  SealedSecretsError,
  parseSealedFile,
  sealedFileSha256,
  type SealedSecretsErrorCode,
  sealedFileRegion,
} from "../../../../host/transport/codec/sealed-file.js";
import { ProvisionError } from "../../../../host/transport/codec/provision-errors.js";

const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const BLOB = Buffer.from("opaque kms ciphertext blob").toString("base64");

function file(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, keyId: ARN, region: "eu-west-1", secrets: { OPENAI_API_KEY: BLOB }, ...overrides };
}
const bytes = (v: unknown): Uint8Array => new Uint8Array(Buffer.from(typeof v === "string" ? v : JSON.stringify(v)));

function outcome(input: Uint8Array): SealedSecretsErrorCode | "ok" {
  try {
    parseSealedFile(input);
    return "ok";
  } catch (err) {
    if (!(err instanceof SealedSecretsError)) throw err;
    return err.code;
  }
}

describe("parseSealedFile", () => {
  it("reads a valid file", () => {
    const parsed = parseSealedFile(bytes(file({ secrets: { OPENAI_API_KEY: BLOB, ANTHROPIC_KEY_2: BLOB } })));
    expect(parsed.keyId).toBe(ARN);
    expect(parsed.region).toBe("eu-west-1");
    expect([...parsed.secrets.keys()]).toEqual(["OPENAI_API_KEY", "ANTHROPIC_KEY_2"]);
    expect(Buffer.from(parsed.secrets.get("OPENAI_API_KEY")!).toString()).toBe("opaque kms ciphertext blob");
  });

  const table: [string, Uint8Array, SealedSecretsErrorCode | "ok"][] = [
    ["alias name", bytes(file({ keyId: "alias/egw-prod" })), "ok"],
    ["alias ARN", bytes(file({ keyId: "arn:aws:kms:eu-west-1:111122223333:alias/egw" })), "ok"],
    ["bare key id", bytes(file({ keyId: "1234abcd-12ab-34cd-56ef-1234567890ab" })), "ok"],
    ["multi-Region key", bytes(file({ keyId: "mrk-1234abcd12ab34cd56ef1234567890ab" })), "ok"],
    ["GovCloud region", bytes(file({ keyId: "alias/x", region: "us-gov-west-1" })), "ok"],
    ["whitespace around", bytes(`\n ${JSON.stringify(file())} \n`), "ok"],
    ["not JSON", bytes("{version:1}"), "ERR_SEALED_FILE_MALFORMED"],
    ["empty", new Uint8Array(0), "ERR_SEALED_FILE_MALFORMED"],
    ["array", bytes([file()]), "ERR_SEALED_FILE_MALFORMED"],
    ["null", bytes("null"), "ERR_SEALED_FILE_MALFORMED"],
    ["invalid UTF-8", Uint8Array.of(0x7b, 0xff, 0x7d), "ERR_SEALED_FILE_MALFORMED"],
    ["byte-order mark", new Uint8Array([0xef, 0xbb, 0xbf, ...bytes(file())]), "ERR_SEALED_FILE_MALFORMED"],
    ["version 2", bytes(file({ version: 2 })), "ERR_SEALED_FILE_VERSION"],
    ["version as string", bytes(file({ version: "1" })), "ERR_SEALED_FILE_VERSION"],
    ["unknown top-level field", bytes(file({ comment: "x" })), "ERR_SEALED_FILE_MALFORMED"],
    ["missing region", bytes({ version: 1, keyId: ARN, secrets: { A: BLOB } }), "ERR_SEALED_FILE_MALFORMED"],
    ["missing secrets", bytes({ version: 1, keyId: ARN, region: "eu-west-1" }), "ERR_SEALED_FILE_MALFORMED"],
    ["keyId not a KMS id", bytes(file({ keyId: "my-key" })), "ERR_SEALED_FILE_MALFORMED"],
    ["keyId of another service", bytes(file({ keyId: "arn:aws:s3:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" })), "ERR_SEALED_FILE_MALFORMED"],
    ["keyId not a string", bytes(file({ keyId: 7 })), "ERR_SEALED_FILE_MALFORMED"],
    ["region not a region", bytes(file({ region: "Europe" })), "ERR_SEALED_FILE_MALFORMED"],
    ["region differs from the ARN", bytes(file({ region: "us-east-1" })), "ERR_SEALED_FILE_MALFORMED"],
    ["secrets an array", bytes(file({ secrets: [BLOB] })), "ERR_SEALED_FILE_MALFORMED"],
    ["no secrets", bytes(file({ secrets: {} })), "ERR_SEALED_FILE_MALFORMED"],
    ["lower-case name", bytes(file({ secrets: { openai: BLOB } })), "ERR_SEALED_FILE_MALFORMED"],
    ["name with a dash", bytes(file({ secrets: { "OPENAI-KEY": BLOB } })), "ERR_SEALED_FILE_MALFORMED"],
    ["name starting with a digit", bytes(file({ secrets: { "1KEY": BLOB } })), "ERR_SEALED_FILE_MALFORMED"],
    ["name of 64 characters", bytes(file({ secrets: { ["K".repeat(64)]: BLOB } })), "ok"],
    ["name of 65 characters", bytes(file({ secrets: { ["K".repeat(65)]: BLOB } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob not a string", bytes(file({ secrets: { A: 5 } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob empty", bytes(file({ secrets: { A: "" } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob base64url", bytes(file({ secrets: { A: "ab-_" } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob unpadded", bytes(file({ secrets: { A: "YWJjZA" } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob non-canonical", bytes(file({ secrets: { A: "YR==" } })), "ERR_SEALED_FILE_MALFORMED"],
    ["blob at the size bound", bytes(file({ secrets: { A: Buffer.alloc(MAX_CIPHERTEXT_BYTES, 1).toString("base64") } })), "ok"],
    ["blob over the size bound", bytes(file({ secrets: { A: Buffer.alloc(MAX_CIPHERTEXT_BYTES + 1, 1).toString("base64") } })), "ERR_SEALED_FILE_TOO_LARGE"],
    ["too many secrets", bytes(file({ secrets: Object.fromEntries(Array.from({ length: MAX_SEALED_SECRETS + 1 }, (_, i) => [`K${i}`, BLOB])) })), "ERR_SEALED_FILE_TOO_LARGE"],
    ["file over the size bound", new Uint8Array(MAX_SEALED_FILE_BYTES + 1).fill(0x20), "ERR_SEALED_FILE_TOO_LARGE"],
    ["escape in a value", bytes(JSON.stringify(file()).replace("eu-west-1", "eu-west\\u002d1")), "ERR_SEALED_FILE_MALFORMED"],
    ["escaped duplicate name", bytes(`{"version":1,"keyId":"alias/x","region":"eu-west-1","secrets":{"A":"${BLOB}","\\u0041":"${BLOB}"}}`), "ERR_SEALED_FILE_MALFORMED"],
    ["duplicate secret name", bytes(`{"version":1,"keyId":"alias/x","region":"eu-west-1","secrets":{"A":"${BLOB}","A":"${BLOB}"}}`), "ERR_SEALED_FILE_MALFORMED"],
    ["duplicate top-level field", bytes(`{"version":1,"keyId":"alias/x","keyId":"alias/y","region":"eu-west-1","secrets":{"A":"${BLOB}"}}`), "ERR_SEALED_FILE_MALFORMED"],
    ["__proto__ as a name", bytes(`{"version":1,"keyId":"alias/x","region":"eu-west-1","secrets":{"__proto__":"${BLOB}"}}`), "ERR_SEALED_FILE_MALFORMED"],
  ];
  it.each(table)("%s", (_name, input, expected) => {
    expect(outcome(input)).toBe(expected);
  });

  it("never echoes an unknown field's name or a bad value", () => {
    for (const input of [file({ "sk-CANARY": 1 }), file({ secrets: { "sk-CANARY": BLOB } }), file({ secrets: { A: "sk-CANARY" } })]) {
      try {
        parseSealedFile(bytes(input));
        expect.unreachable();
      } catch (err) {
        expect(String(err)).not.toContain("CANARY");
      }
    }
  });

  it("throws only SealedSecretsError on junk", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.json().map((s) => bytes(s)),
          fc.jsonValue().map((v) => bytes(JSON.stringify(v))),
        ),
        (input) => {
          const r = outcome(input);
          expect(r === "ok" || r.startsWith("ERR_SEALED_FILE")).toBe(true);
        },
      ),
    );
  });

  it("round-trips any valid set of secrets", () => {
    const name = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,63}$/);
    fc.assert(
      fc.property(fc.dictionary(name, fc.uint8Array({ minLength: 1, maxLength: 64 }), { minKeys: 1, maxKeys: 8 }), (secrets) => {
        const encoded = Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
        const parsed = parseSealedFile(bytes(file({ secrets: encoded })));
        expect(Object.fromEntries([...parsed.secrets].map(([k, v]) => [k, Buffer.from(v).toString("base64")]))).toEqual(encoded);
      }),
    );
  });
});

describe("sealedFileSha256", () => {
  it("hashes the exact bytes, so reformatting changes it", () => {
    const compact = bytes(file());
    const pretty = bytes(JSON.stringify(file(), null, 2));
    expect(Buffer.from(sealedFileSha256(compact)).toString("hex")).toBe(createHash("sha256").update(compact).digest("hex"));
    expect(sealedFileSha256(compact)).toHaveLength(32);
    expect(Buffer.from(sealedFileSha256(pretty)).equals(Buffer.from(sealedFileSha256(compact)))).toBe(false);
  });
});

describe("sealedFileRegion, the host's read", () => {
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

  it("reads the KMS region from a sealed-secrets file, and nothing else", () => {
    expect(sealedFileRegion(body({ version: 1, keyId: "alias/x", region: "eu-central-1", secrets: {} }))).toBe("eu-central-1");
    expect(code(() => sealedFileRegion(body({ region: "Frankfurt" })))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => sealedFileRegion(body("not json")))).toBe("ERR_PROVISION_INPUT");
  });

  it("refuses a file over the cap before decoding it (ERR_PROVISION_TOO_LARGE)", () => {
    expect(code(() => sealedFileRegion(new Uint8Array(MAX_SEALED_FILE_BYTES + 1)))).toBe("ERR_PROVISION_TOO_LARGE");
  });
});
