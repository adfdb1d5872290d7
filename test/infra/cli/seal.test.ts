import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDevCa } from "../../../attestation/dev/dev-ca.js";
import { trustAnchorFromPem } from "../../../attestation/roots.js";
import { hashToken } from "../../../enclave/auth.js";
import { run } from "../../../infra/cli/main.js";
import { CLIENT_TOKEN, startHarness } from "../../helpers/enclave-harness.js";
import { startMockKms, type MockKms } from "../../../infra/dev/local-kms.js";
import { startMockOpenAI } from "../../helpers/mock-openai.js";

const SECRET = "sk-CANARYSEALCLI77";
const now = () => new Date();
let kms: MockKms;
let dir: string;
let ca: Awaited<ReturnType<typeof createDevCa>>;
const saved = { ...process.env };

beforeAll(async () => {
  ca = await createDevCa({ now });
  kms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: new Uint8Array(48).fill(0x11) } }, now });
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

describe("egw seal", () => {
  it("seals a key read from stdin into a file the enclave opens with its attestation", async () => {
    const args = ["seal", "--key-id", kms.keyArn, "--region", kms.region, "--kms-endpoint", kms.endpoint, "--out", "sealed.json"];
    const first = await egw([...args, "--name", "OPENAI_API_KEY"], `${SECRET}\n`);
    expect(first.code, first.stderr).toBe(0);
    expect((await egw([...args, "--name", "OTHER_KEY"], "other")).code).toBe(0);
    const text = fs.readFileSync(path.join(dir, "sealed.json"), "utf8");
    expect(Object.keys(JSON.parse(text).secrets)).toEqual(["OPENAI_API_KEY", "OTHER_KEY"]);
    expect(text).not.toContain("CANARYSEALCLI");
    expect(first.stdout + first.stderr).not.toContain("CANARYSEALCLI");

    const upstream = await startMockOpenAI();
    try {
      const h = await startHarness({
        ca,
        config: JSON.stringify({
          version: 1,
          providers: [{ name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" }],
          models: { gpt: { provider: "openai", model: "gpt-4o" } },
          egressAllowlist: [new URL(upstream.url).host, new URL(kms.endpoint).host],
          clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
        }),
        sealedSecrets: { file: new Uint8Array(Buffer.from(text)), credentials: kms.credentials, endpoint: kms.endpoint },
      });
      try {
        const res = await h.fetch(`${h.baseURL}/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "hi" }] }),
        });
        expect(res.status).toBe(200);
        expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
      } finally {
        await h.close();
      }
    } finally {
      await upstream.close();
    }
  });

  it("refuses an empty secret, a bad name, and a file sealed under another key", async () => {
    const base = ["seal", "--key-id", kms.keyArn, "--region", kms.region, "--kms-endpoint", kms.endpoint];
    expect((await egw([...base, "--name", "X", "--out", "a.json"], "")).code).toBe(2);
    expect((await egw([...base, "--name", "lower", "--out", "a.json"], "v")).code).toBe(2);
    expect((await egw([...base, "--name", "X", "--out", "sealed.json"].map((a) => (a === kms.keyArn ? kms.alias : a)), "v")).code).toBe(2);
    expect((await egw(["seal", "--name", "X"], "v")).code).toBe(2);
  });
});
