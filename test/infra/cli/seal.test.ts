import { DecryptCommand, KMSClient } from "@aws-sdk/client-kms";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDevCa } from "../../../attestation/dev/dev-ca.js";
import { trustAnchorFromPem } from "../../../attestation/roots.js";
import { providerSecretContext } from "../../../enclave/secrets/secret-context.js";
import { parseSealedFile } from "../../../host/transport/codec/sealed-file.js";
import { run } from "../../../infra/cli/main.js";
import { startMockKms, type MockKms } from "../../../infra/dev/local-kms.js";

/*
 * `egw seal` against the local KMS (infra/dev/local-kms.ts), which binds the
 * encryption context into the ciphertext as KMS does. What the enclave will
 * send to Decrypt is providerSecretContext(name, trust-policy origin); these
 * tests call Decrypt with that context (and with every relabelling a hostile
 * host could try) directly, without a Recipient: the mock's Deny of
 * recipient-less Decrypt is switched off for that, and only that.
 */

const SECRET = "sk-CANARYSEALCLI77";
const OPENAI = "https://api.openai.com";
const now = () => new Date();
let kms: MockKms;
let dir: string;
const saved = { ...process.env };

beforeAll(async () => {
  const ca = await createDevCa({ now });
  kms = await startMockKms({
    trustedRoot: trustAnchorFromPem(ca.rootPem, "development"),
    policy: { allowedPcrs: { 0: new Uint8Array(48).fill(0x11) }, denyWithoutRecipient: false },
    now,
  });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-seal-"));
  // The operator's AWS SDK reads its default credential chain.
  process.env.AWS_ACCESS_KEY_ID = kms.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = kms.credentials.secretAccessKey;
});
afterAll(async () => {
  process.env = saved;
  await kms?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function egw(argv: string[], stdin = "") {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (d: Buffer) => out.push(d));
  stderr.on("data", (d: Buffer) => err.push(d));
  const code = await run(argv, { stdout, stderr, stdin: Readable.from([Buffer.from(stdin)]), cwd: dir, now, env: {} });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

async function decrypt(blobB64: string, context: Record<string, string> | undefined): Promise<string> {
  const client = new KMSClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  try {
    const out = await client.send(new DecryptCommand({ KeyId: kms.keyArn, CiphertextBlob: Buffer.from(blobB64, "base64"), ...(context && { EncryptionContext: context }) }));
    return Buffer.from(out.Plaintext!).toString("utf8");
  } catch (err) {
    return `error:${(err as { name?: string }).name}`;
  } finally {
    client.destroy();
  }
}

const base = () => ["seal", "--key-id", kms.keyArn, "--kms-endpoint", kms.endpoint];

describe("egw seal", () => {
  it("seals a key read from stdin under the provider-secret context; it decrypts only with that same context", async () => {
    const first = await egw([...base(), "--region", kms.region, "--name", "OPENAI_API_KEY", "--origin", `${OPENAI}/`, "--out", "sealed.json"], `${SECRET}\n`);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(`for ${OPENAI} into sealed.json`);
    // --region is derived from the ARN when omitted.
    const second = await egw([...base(), "--name", "ANTHROPIC_API_KEY", "--origin", "https://api.anthropic.com", "--out", "sealed.json"], "sk-other");
    expect(second.code, second.stderr).toBe(0);

    const text = fs.readFileSync(path.join(dir, "sealed.json"), "utf8");
    const file = parseSealedFile(new TextEncoder().encode(text));
    expect(file.keyId).toBe(kms.keyArn);
    expect(file.region).toBe(kms.region);
    const secrets = JSON.parse(text).secrets as Record<string, string>;
    expect(Object.keys(secrets)).toEqual(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]);
    expect(text).not.toContain("CANARYSEALCLI");
    expect(first.stdout + first.stderr).not.toContain("CANARYSEALCLI");

    // What KMS saw: exactly the shared context, with the origin serialised.
    const encrypts = kms.requests.filter((r) => r.target === "TrentService.Encrypt");
    expect(encrypts.at(-2)!.body.EncryptionContext).toEqual({ "egw:purpose": "provider-secret", "egw:secret": "OPENAI_API_KEY", "egw:origin": OPENAI });
    expect(encrypts.at(-2)!.body.KeyId).toBe(kms.keyArn);

    const openai = secrets.OPENAI_API_KEY!;
    expect(await decrypt(openai, { ...providerSecretContext("OPENAI_API_KEY", OPENAI) })).toBe(SECRET);
    expect(await decrypt(secrets.ANTHROPIC_API_KEY!, { ...providerSecretContext("ANTHROPIC_API_KEY", "https://api.anthropic.com") })).toBe("sk-other");
    // A hostile host relabels the blob or points the provider elsewhere: KMS refuses.
    for (const context of [
      providerSecretContext("OPENAI_API_KEY", "https://attacker.example"),
      providerSecretContext("OPENAI_API_KEY", "https://api.openai.com:8443"),
      providerSecretContext("ANTHROPIC_API_KEY", OPENAI),
      providerSecretContext("ANTHROPIC_API_KEY", "https://api.anthropic.com"),
      { "egw:purpose": "enclave-identity" },
      { "egw:purpose": "provider-secret", "egw:secret": "OPENAI_API_KEY" },
      { ...providerSecretContext("OPENAI_API_KEY", OPENAI), extra: "x" },
    ]) {
      expect(await decrypt(openai, { ...context }), JSON.stringify(context)).toBe("error:InvalidCiphertextException");
    }
    expect(await decrypt(openai, undefined)).toBe("error:InvalidCiphertextException");
    // The other secret's blob under this secret's context (a swap inside the file) fails too.
    expect(await decrypt(secrets.ANTHROPIC_API_KEY!, { ...providerSecretContext("OPENAI_API_KEY", OPENAI) })).toBe("error:InvalidCiphertextException");
  });

  it("admits an http: origin only with --allow-http", async () => {
    const args = [...base(), "--name", "LOCAL_KEY", "--origin", "http://127.0.0.1:8080", "--out", "dev.json"];
    const refused = await egw(args, "v");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--origin: origin must be https:/);
    const ok = await egw([...args, "--allow-http"], "v");
    expect(ok.code, ok.stderr).toBe(0);
    const blob = (JSON.parse(fs.readFileSync(path.join(dir, "dev.json"), "utf8")).secrets as Record<string, string>).LOCAL_KEY!;
    expect(await decrypt(blob, { ...providerSecretContext("LOCAL_KEY", "http://127.0.0.1:8080", { dev: true }) })).toBe("v");
  });

  it.each([
    ["an empty secret", ["--name", "X", "--origin", OPENAI], "", /no secret on standard input/],
    ["a bad name", ["--name", "lower", "--origin", OPENAI], "v", /--name: secret name must look like/],
    ["a missing --origin", ["--name", "X"], "v", /--origin <https origin>/],
    ["an origin with a path", ["--name", "X", "--origin", `${OPENAI}/v1`], "v", /no path, query or fragment/],
    ["an origin with credentials", ["--name", "X", "--origin", "https://u:p@api.openai.com"], "v", /credentials/],
    ["a region other than the ARN's", ["--name", "X", "--origin", OPENAI, "--region", "eu-west-3"], "v", /not the key ARN's region/],
  ])("refuses %s before calling KMS", async (_what, extra, stdin, message) => {
    const before = kms.requests.length;
    const r = await egw([...base(), ...extra, "--out", "a.json"], stdin);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(kms.requests.length).toBe(before);
    expect(fs.existsSync(path.join(dir, "a.json"))).toBe(false);
  });

  it("refuses aliases and bare key ids, and a file sealed under another key, before calling KMS", async () => {
    const before = kms.requests.length;
    const bareId = kms.keyArn.slice(kms.keyArn.indexOf("/") + 1);
    const aliasArn = kms.keyArn.replace(/key\/.*$/, kms.alias);
    for (const keyId of [kms.alias, aliasArn, bareId]) {
      const r = await egw(["seal", "--key-id", keyId, "--region", kms.region, "--kms-endpoint", kms.endpoint, "--name", "X", "--origin", OPENAI, "--out", "b.json"], "v");
      expect(r.code, keyId).toBe(2);
      expect(r.stderr).toMatch(/--key-id: a KMS key ARN/);
    }
    const other = kms.keyArn.replace(/key\/.*$/, "key/00000000-0000-4000-8000-000000000000");
    fs.writeFileSync(path.join(dir, "sealed-other.json"), JSON.stringify({ version: 1, keyId: other, region: kms.region, secrets: { Y: Buffer.alloc(64, 1).toString("base64") } }));
    const r = await egw([...base(), "--name", "X", "--origin", OPENAI, "--out", "sealed-other.json"], "v");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/another key or region/);
    expect(kms.requests.length).toBe(before);
    expect((await egw(["seal", "--name", "X"], "v")).code).toBe(2);
  });
});
