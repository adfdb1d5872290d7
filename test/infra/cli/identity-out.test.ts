import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseSealedFile } from "../../../host/transport/codec/sealed-file.js";
import { readSealedFile, sealedFileWithIdentity, writeFileAtomic } from "../../../infra/cli/identity-out.js";

/**
 * The file `egw host --generate-identity` writes: the input's keys, byte for
 * byte in meaning, with the enclave's identity; accepted by the enclave's
 * parser; written whole or not at all.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-idout-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const enc = (s: string) => new TextEncoder().encode(s);
const IDENTITY = {
  dataKey: Buffer.alloc(184, 5).toString("base64"),
  iv: Buffer.alloc(12, 6).toString("base64"),
  sealed: Buffer.alloc(300, 7).toString("base64"),
  attestation: Buffer.alloc(90, 8).toString("base64"),
};
const KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

describe("sealedFileWithIdentity", () => {
  it("adds the identity after the secrets, in 2-space JSON, keeping the secrets and their order", () => {
    const input = enc(`{"version":1,"keyId":"${KEY}","region":"eu-west-1","secrets":{"ZED":"AAAA","ALPHA":"AQID"}}`);
    const out = sealedFileWithIdentity(readSealedFile(input), IDENTITY);
    const text = Buffer.from(out).toString();
    expect(text).toBe(
      `{\n  "version": 1,\n  "keyId": "${KEY}",\n  "region": "eu-west-1",\n  "secrets": {\n    "ZED": "AAAA",\n    "ALPHA": "AQID"\n  },\n  "identity": {\n    "dataKey": "${IDENTITY.dataKey}",\n    "iv": "${IDENTITY.iv}",\n    "sealed": "${IDENTITY.sealed}",\n    "attestation": "${IDENTITY.attestation}"\n  }\n}\n`,
    );
    const parsed = parseSealedFile(out);
    expect([...parsed.secrets.keys()]).toEqual(["ZED", "ALPHA"]);
  });

  it("replaces an existing identity, and a file with only an identity stays valid", () => {
    const first = sealedFileWithIdentity(
      readSealedFile(
        enc(`{"version":1,"keyId":"alias/egw","region":"eu-west-1","secrets":{},"identity":${JSON.stringify({ ...IDENTITY, iv: Buffer.alloc(12, 1).toString("base64") })}}`),
      ),
      IDENTITY,
    );
    expect(Buffer.from(parseSealedFile(first).identity!.iv).equals(Buffer.alloc(12, 6))).toBe(true);
    expect(parseSealedFile(first).secrets.size).toBe(0);
  });

  it("refuses an identity the enclave would refuse (ERR_IDENTITY_FILE_CHECK), and an input it would refuse (its own code)", () => {
    const input = readSealedFile(enc(`{"version":1,"keyId":"alias/egw","region":"eu-west-1","secrets":{"A":"AAAA"}}`));
    for (const bad of [
      { ...IDENTITY, iv: Buffer.alloc(11).toString("base64") },
      { ...IDENTITY, sealed: "QR==" },
      { ...IDENTITY, dataKey: "" },
      { ...IDENTITY, sealed: 'AAAA","x":"' },
      { ...IDENTITY, attestation: "" },
    ]) {
      expect(() => sealedFileWithIdentity(input, bad)).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_FILE_CHECK" }));
    }
    expect(() => readSealedFile(enc(`{"version":1,"keyId":"alias/egw","region":"eu-west-1","secrets":{"A":"AAAA"},"extra":1}`))).toThrow(
      expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }),
    );
  });
});

describe("writeFileAtomic", () => {
  it("replaces the file whole and leaves no temporary file", async () => {
    const file = path.join(dir, "sealed.json");
    fs.writeFileSync(file, "old");
    await writeFileAtomic(file, enc("new"));
    expect(fs.readFileSync(file, "utf8")).toBe("new");
    expect(fs.readdirSync(dir)).toEqual(["sealed.json"]);
  });

  it("fails with ERR_IDENTITY_FILE_WRITE, leaving the old file and no temporary file, when the target cannot be replaced", async () => {
    const target = path.join(dir, "a-directory");
    fs.mkdirSync(target);
    await expect(writeFileAtomic(target, enc("x"))).rejects.toMatchObject({ code: "ERR_IDENTITY_FILE_WRITE" });
    expect(fs.statSync(target).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    await expect(writeFileAtomic(path.join(dir, "missing", "x.json"), enc("x"))).rejects.toMatchObject({ code: "ERR_IDENTITY_FILE_WRITE" });
  });
});
