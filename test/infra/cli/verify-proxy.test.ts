/**
 * `egw verify`, `egw proxy` and `egw receipt verify`, run in-process against
 * the real gateway (test harness on 127.0.0.1), an impostor in the middle
 * and a fake gateway that alters answers after signing. Loopback only; the
 * harness issues documents at the real time, so the real clock is used.
 */
import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type VerifiedReceipt } from "../../../attestation/client/index.js";
import { receiptSseBlock, RECEIPT_HEADER } from "../../../attestation/receipt.js";
import { UsageError, type CliContext } from "../../../infra/cli/context.js";
import { proxyCommand, startVerifyingProxy } from "../../../infra/cli/proxy.js";
import { receiptCommand } from "../../../infra/cli/receipt.js";
import { verifyCommand } from "../../../infra/cli/verify.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { manifestJson, PCR0_OTHER, PCR0_TEST, removeTempDirs, startFakeGateway, startImpostor, tempDir, type FakeGateway } from "../../attestation/client/helpers.js";

type Command = (args: string[], ctx: CliContext) => Promise<number>;

let h: Harness;
let dir: string;
let origin: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  origin = new URL(h.baseURL).origin;
  dir = tempDir();
  fs.writeFileSync(file("dev-root.pem"), h.ca.rootPem);
  // The harness's trust policy: the built-in model only, an identity made at boot.
  fs.writeFileSync(
    file("good.json"),
    manifestJson({ label: "test build", configSha256: [h.enclave.configSha256], trust: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" } } }),
  );
  fs.writeFileSync(file("other.json"), manifestJson({ label: "other build", pcr0: PCR0_OTHER }));
  fs.writeFileSync(file("with-root.json"), manifestJson({ label: "test build", devRootPem: "dev-root.pem" }));
  // A relying party that allows only OpenAI: the harness's policy routes to the built-in model.
  fs.writeFileSync(file("openai-only.json"), manifestJson({ label: "test build", devRootPem: "dev-root.pem", trust: { upstreamOrigins: ["https://api.openai.com"] } }));
  fs.writeFileSync(file("any-trust.json"), manifestJson({ label: "test build", devRootPem: "dev-root.pem", trust: "any" }));
  fs.writeFileSync(file("broken.json"), '{"version":1,"measurements":[],"extra":true}');
});
afterAll(async () => {
  await h?.close();
  removeTempDirs();
});

function context(): { ctx: CliContext; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    stdin: Readable.from([]),
    cwd: dir,
    now: () => new Date(),
    env: {},
  };
  return { ctx, out: () => out, err: () => err };
}

/** Runs a command the way main.ts does: a UsageError is exit 2. */
async function egw(command: Command, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { ctx, out, err } = context();
  let code: number;
  try {
    code = await command(args, ctx);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    ctx.stderr.write(e.message);
    code = 2;
  }
  return { code, stdout: out(), stderr: err() };
}

describe("egw verify", () => {
  it("accepts the gateway with the manifest and dev root, step by step", async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "good.json", "--dev-root", "dev-root.pem"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const step of ["tls", "chain", "signature", "debug-mode", "nonce", "freshness", "measurements", "tls-binding", "config", "receipt-key", "trust-policy", "trust"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ok   ${step} `, "m"));
    }
    expect(r.stdout).toContain('match manifest entry "test build"');
    expect(r.stdout).toMatch(/^ACCEPTED attested enclave dev-/m);
    expect(r.stdout).not.toContain("UNCONSTRAINED");
    expect(r.stdout).toContain('measurement "test build"');
    // The attested trust policy, and what the manifest required of it.
    expect(r.stdout).toMatch(/^ {2}trust policy sha256 [0-9a-f]{64}$/m);
    expect(r.stdout).toContain("    upstream origins: local");
    expect(r.stdout).toContain("    identity: ephemeral");
    expect(r.stdout).toContain("secrets KMS key: none");
    expect(r.stdout).toContain("    upstream origins allowed: local");
    expect(r.stdout).toContain("    identity required: ephemeral");
    expect(r.stdout).toContain("DEVELOPMENT root");
    expect(r.stdout).toMatch(/document \d+ ms old/);
  });

  it("--json gives the same as data", async () => {
    const r = await egw(verifyCommand, [`${origin}/v1`, "--policy", "good.json", "--dev-root", "dev-root.pem", "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ accepted: true, measurementsChecked: true, measurement: "test build", root: { production: false } });
    expect(j.tlsSpkiSha256).toBe(Buffer.from(h.enclave.identity.tls.spkiSha256).toString("hex"));
    expect(j).toMatchObject({ trustConstrained: true, unconstrained: [], trustPolicy: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" }, secretsKmsKeyArn: null } });
    expect(j.policySha256).toBe(j.trustPolicy.sha256);
    expect(j.steps.every((s: { status: string }) => s.status !== "failed")).toBe(true);
  });

  it("without --policy says the measurements were not checked, and exits 0 if all else passed", async () => {
    const r = await egw(verifyCommand, [origin, "--dev-root", "dev-root.pem"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("policy: no manifest: measurements and trust policy are NOT checked");
    expect(r.stdout).toContain("ACCEPTED (UNCONSTRAINED: measurements, trust policy (trust: any))");
    expect(r.stdout).toMatch(/^ {2}-- {3}measurements {2}not checked against any manifest/m);
    expect(r.stdout).toContain("measurements NOT checked against any manifest");
  });

  it("a trust policy outside the manifest's constraints: REJECTED with the code and the constraint, text and JSON", async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "openai-only.json"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {2}ok {3}trust-policy /m);
    expect(r.stdout).toMatch(/^ {2}FAIL trust +ERR_TRUST_NOT_ALLOWED: upstreamOrigins: provider "local" sends to local/m);
    expect(r.stdout).toMatch(/^REJECTED ERR_TRUST_NOT_ALLOWED$/m);
    const j = JSON.parse((await egw(verifyCommand, [origin, "--policy", "openai-only.json", "--json"])).stdout);
    expect(j).toMatchObject({ accepted: false, code: "ERR_TRUST_NOT_ALLOWED", action: "reject" });
  });

  it('trust "any" in a manifest: accepted, and the verdict says the trust policy was not constrained', async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "any-trust.json"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ACCEPTED (UNCONSTRAINED: trust policy (trust: any)) attested enclave dev-");
    expect(r.stdout).toContain('    trust: "any" — the trust policy is NOT constrained');
    expect(r.stdout).toMatch(/^ {2}-- {3}trust +NOT constrained/m);
    const j = JSON.parse((await egw(verifyCommand, [origin, "--policy", "any-trust.json", "--json"])).stdout);
    expect(j).toMatchObject({ accepted: true, trustConstrained: false, unconstrained: ["trust policy (trust: any)"], trustPolicy: { upstreamOrigins: ["local"] } });
  });

  it("a manifest without a trust section is a usage problem naming it", async () => {
    const { trust: _dropped, ...noTrust } = JSON.parse(fs.readFileSync(file("good.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file("no-trust.json"), JSON.stringify(noTrust));
    const r = await egw(verifyCommand, [origin, "--policy", "no-trust.json", "--dev-root", "dev-root.pem"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ERR_POLICY_INVALID: manifest trust: no trust section: .*"any" on purpose/);
  });

  it("a manifest naming its development root needs no --dev-root", async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "with-root.json"]);
    expect(r.code).toBe(0);
  });

  it("refuses a development document without the development root", async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "good.json"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {2}FAIL chain +ERR_ROOT_UNTRUSTED/m);
    expect(r.stdout).toMatch(/^REJECTED ERR_ROOT_UNTRUSTED$/m);
  });

  it("refuses PCRs outside the manifest", async () => {
    const r = await egw(verifyCommand, [origin, "--policy", "other.json", "--dev-root", "dev-root.pem", "--json"]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ accepted: false, code: "ERR_MEASUREMENTS_NOT_ALLOWED", action: "reject" });
    expect(j.steps.at(-1)).toMatchObject({ step: "measurements", status: "failed" });
    expect(j.steps.find((s: { step: string }) => s.step === "chain").status).toBe("passed");
  });

  it("refuses a man in the middle (its TLS key is not the attested one)", async () => {
    const impostor = await startImpostor({ host: "127.0.0.1", port: Number(new URL(origin).port) });
    try {
      const r = await egw(verifyCommand, [impostor.origin, "--policy", "good.json", "--dev-root", "dev-root.pem"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^ {2}FAIL tls-binding +ERR_TLS_BINDING/m);
      expect(impostor.received().toString("latin1")).toMatch(/^GET \/v1\/attestation\?nonce=[0-9a-f]{64} HTTP\/1\.1\r\n/);
    } finally {
      await impostor.close();
    }
  });

  it("a closed port is a refusal (exit 1), usage problems exit 2", async () => {
    const closed = await egw(verifyCommand, ["https://127.0.0.1:1", "--dev-root", "dev-root.pem"]);
    expect(closed.code).toBe(1);
    expect(closed.stdout).toContain("REJECTED ERR_CONNECT");
    expect((await egw(verifyCommand, ["http://127.0.0.1:1"])).code).toBe(2);
    expect((await egw(verifyCommand, [])).code).toBe(2);
    const broken = await egw(verifyCommand, [origin, "--policy", "broken.json"]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain("ERR_MANIFEST_INVALID");
    expect((await egw(verifyCommand, [origin, "--policy", "missing.json"])).code).toBe(2);
  });
});

// ─── egw proxy ───────────────────────────────────────────────────────────

interface RunningCommand {
  url: string;
  stop(): Promise<number>;
  stderr(): string;
}

async function startProxy(args: string[]): Promise<RunningCommand> {
  const { ctx, out, err } = context();
  const abort = new AbortController();
  const done = proxyCommand(args, ctx, { signal: abort.signal });
  const url = await new Promise<string>((resolve, reject) => {
    const poll = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(out());
      if (m) {
        clearInterval(poll);
        resolve(m[1]!);
      }
    }, 5);
    done.then(
      (code) => {
        clearInterval(poll);
        reject(new Error(`proxy exited ${code}: ${out()} ${err()}`));
      },
      (e: unknown) => {
        clearInterval(poll);
        reject(e as Error);
      },
    );
  });
  return {
    url,
    stderr: err,
    stop: async () => {
      abort.abort();
      return done;
    },
  };
}

const chatBody = (content: string, stream = false) => JSON.stringify({ model: "local", ...(stream && { stream: true }), messages: [{ role: "user", content }] });
const authHeaders = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };

/** Reads a body until it ends or fails; returns the text and whether it failed. */
async function readAll(res: Response): Promise<{ text: string; failed: boolean }> {
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text: Buffer.concat(chunks).toString("utf8"), failed: false };
      chunks.push(value);
    }
  } catch {
    return { text: Buffer.concat(chunks).toString("utf8"), failed: true };
  }
}

const curl = (() => {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const runCurl = (args: string[]) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile("curl", args, { timeout: 20_000 }, (error, stdout) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout }));
  });

describe("egw proxy refuses a trust policy outside the manifest", () => {
  it("exits 1 before listening, with the code", async () => {
    const { ctx, out } = context();
    const code = await proxyCommand(["--upstream", origin, "--policy", "openai-only.json", "--listen", "127.0.0.1:0"], ctx);
    expect(code).toBe(1);
    expect(out()).toMatch(/^REJECTED ERR_TRUST_NOT_ALLOWED$/m);
    expect(out()).not.toContain("listening");
  });

  it("without a manifest it says, on start and in every answer, that trust is unconstrained", async () => {
    const p = await startProxy(["--upstream", origin, "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"]);
    try {
      expect(p.stderr()).toContain("UNCONSTRAINED: measurements, trust policy (trust: any)");
      expect(p.stderr()).toMatch(/trust policy sha256 [0-9a-f]{64}, upstream origins local, identity ephemeral/);
      const res = await fetch(`${p.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("unconstrained") });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=UNCONSTRAINED");
      expect(res.headers.get("x-egw-upstream")).toBe("local");
      await res.arrayBuffer();
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});

describe("egw proxy", () => {
  let proxy: RunningCommand;
  beforeAll(async () => {
    proxy = await startProxy(["--upstream", origin, "--policy", "good.json", "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"]);
  });
  afterAll(async () => {
    expect(await proxy?.stop()).toBe(0);
  });

  it("plain fetch, non-streamed: the verified answer with headers saying what was verified", async () => {
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("via the proxy") });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=constrained");
    expect(res.headers.get("x-egw-upstream")).toBe("local");
    expect(res.headers.get("x-egw-policy-sha256")).toMatch(/^[0-9a-f]{64}$/);
    expect(res.headers.get("x-egw-measurement")).toBe("test build");
    expect(res.headers.get("x-egw-root")).toBe("development");
    expect(res.headers.get("x-egw-receipt-id")).toBe(res.headers.get("x-request-id"));
    expect(res.headers.get("x-egw-tls-spki-sha256")).toBe(Buffer.from(h.enclave.identity.tls.spkiSha256).toString("hex"));
    expect(res.headers.get(RECEIPT_HEADER)).toBeTruthy();
    const json = (await res.json()) as { choices: { message: { content: string } }[] };
    expect(json.choices[0]!.message.content).toContain("via the proxy");
  });

  it("the openai SDK's Responses API through the proxy, streamed and not; response.completed arrives after the receipt verified", async () => {
    const { default: OpenAI } = await import("openai");
    const sdk = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: CLIENT_TOKEN, maxRetries: 0 });
    const r = await sdk.responses.create({ model: "local", input: "responses via the proxy" });
    expect(r.output_text).toContain("responses via the proxy");
    const final = await sdk.responses.stream({ model: "local", input: "stream responses via the proxy" }).finalResponse();
    expect(final.status).toBe("completed");
    expect(final.output_text).toContain("stream responses via the proxy");
    const res = await fetch(`${proxy.url}/v1/responses`, { method: "POST", headers: authHeaders, body: JSON.stringify({ model: "local", input: "x", stream: true }) });
    const { text, failed } = await readAll(res);
    expect(failed).toBe(false);
    expect(text).toMatch(/event: response\.completed\ndata: [^\n]*\n\n: egw-receipt /);
  });

  it("plain fetch, streamed: events pass through, then the verified receipt block", async () => {
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("stream via the proxy", true) });
    expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt-at-end-of-stream; trust=constrained");
    const { text, failed } = await readAll(res);
    expect(failed).toBe(false);
    expect(text).toContain("data: [DONE]\n\n: egw-receipt ");
    expect(text).toContain("proxy");
  });

  it("answers without a receipt (here /metrics) become the local 406 refusal, never the gateway's bytes", async () => {
    const res = await fetch(`${proxy.url}/metrics`);
    expect(res.status).toBe(406);
    expect(res.headers.get("x-egw-verified")).toBe("failed");
    expect(res.headers.get("x-egw-client-error")).toBe("ERR_RECEIPT_MISSING");
    expect(res.headers.get("x-should-retry")).toBe("false");
    const text = await res.text();
    expect(text).not.toContain("# HELP"); // no Prometheus line of the gateway's got through
    expect(JSON.parse(text)).toMatchObject({ error: { type: "egw_verification_failed", code: "ERR_RECEIPT_MISSING", message: expect.stringMatching(/^ERR_RECEIPT_MISSING: /) } });
  });

  it("GET /healthz passes through over an attested connection, marked as unsigned", async () => {
    const res = await fetch(`${proxy.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(res.headers.get("x-egw-verified")).toBe("attestation; no receipt (the gateway signs none for /healthz); trust=constrained");
    expect(res.headers.get("x-egw-tls-spki-sha256")).toBe(Buffer.from(h.enclave.identity.tls.spkiSha256).toString("hex"));
    expect(res.headers.get("x-egw-client-error")).toBeNull();
    // Only GET, only that path: anything else takes the signed path (here the gateway's signed 404).
    for (const res of [await fetch(`${proxy.url}/healthz`, { method: "POST", body: "{}" }), await fetch(`${proxy.url}/healthzx`)]) {
      expect(res.status).toBe(404);
      expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=constrained");
    }
  });

  it("refuses requests addressed to a non-loopback Host (DNS rebinding)", async () => {
    const port = new URL(proxy.url).port;
    const res = await new Promise<{ status: number }>((resolve, reject) => {
      import("node:http").then(({ request }) => {
        const req = request({ host: "127.0.0.1", port, path: "/v1/models", headers: { host: "evil.example:80" } }, (r) => {
          r.resume();
          resolve({ status: r.statusCode ?? 0 });
        });
        req.on("error", reject);
        req.end();
      }, reject);
    });
    expect(res.status).toBe(403);
  });

  it.skipIf(!curl)("works with curl, streamed and not", async () => {
    const plain = await runCurl([
      "-sS",
      "-i",
      `${proxy.url}/v1/chat/completions`,
      "-H",
      `authorization: Bearer ${CLIENT_TOKEN}`,
      "-H",
      "content-type: application/json",
      "-d",
      chatBody("hello from curl"),
    ]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(plain.stdout).toMatch(/^x-egw-verified: attestation\+receipt; trust=constrained\r$/m);
    expect(plain.stdout).toMatch(/^x-egw-measurement: test build\r$/m);
    expect(plain.stdout).toContain("hello from curl");
    const streamed = await runCurl([
      "-sS",
      "-N",
      `${proxy.url}/v1/chat/completions`,
      "-H",
      `authorization: Bearer ${CLIENT_TOKEN}`,
      "-H",
      "content-type: application/json",
      "-d",
      chatBody("curl streams", true),
    ]);
    expect(streamed.code).toBe(0);
    expect(streamed.stdout).toContain("data: [DONE]");
    expect(streamed.stdout).toContain(": egw-receipt ");
  });

  it("refuses to start when the gateway fails attestation (no dev root): exit 1", async () => {
    const { ctx, out } = context();
    const code = await proxyCommand(["--upstream", origin, "--listen", "127.0.0.1:0"], ctx);
    expect(code).toBe(1);
    expect(out()).toContain("REJECTED ERR_ROOT_UNTRUSTED");
  });

  it("usage: loopback only, --upstream required and https", async () => {
    expect((await egw(proxyCommand, ["--upstream", origin, "--listen", "0.0.0.0:8787"])).code).toBe(2);
    expect((await egw(proxyCommand, ["--listen", "127.0.0.1:0"])).code).toBe(2);
    expect((await egw(proxyCommand, ["--upstream", "http://127.0.0.1:1"])).code).toBe(2);
  });
});

describe("egw proxy in front of a gateway path that alters answers", () => {
  let fake: FakeGateway;
  let proxy: RunningCommand;
  beforeAll(async () => {
    fake = await startFakeGateway();
    fs.writeFileSync(file("fake-root.pem"), fake.ca.rootPem);
    fs.writeFileSync(file("fake.json"), manifestJson({ label: "fake build", configSha256: [fake.configSha256] }));
    proxy = await startProxy(["--upstream", fake.origin, "--policy", "fake.json", "--dev-root", "fake-root.pem", "--listen", "127.0.0.1:0"]);
  });
  afterAll(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  it("/healthz: an answer over 64 KiB is refused (ERR_RESPONSE_TOO_LARGE), not passed on", async () => {
    fake.healthzBody = `{"status":"${"x".repeat(70 * 1024)}"}`;
    try {
      const res = await fetch(`${proxy.url}/healthz`);
      expect(res.status).toBe(406);
      expect(res.headers.get("x-egw-client-error")).toBe("ERR_RESPONSE_TOO_LARGE");
      expect(await res.text()).not.toContain("xxxx");
      fake.healthzBody = '{"status":"ok"}';
      expect(await (await fetch(`${proxy.url}/healthz`)).json()).toEqual({ status: "ok" });
    } finally {
      fake.healthzBody = undefined;
    }
  });

  it("/healthz through a man in the middle: 406 ERR_TLS_BINDING, and the impostor never gets the request", async () => {
    const impostor = await startImpostor({ host: "127.0.0.1", port: Number(new URL(fake.origin).port) });
    const policy = { measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any" as const, trustedRoots: [fake.anchor] };
    const p = await startVerifyingProxy({ upstream: impostor.origin, policy, host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`${p.url}/healthz`);
      expect(res.status).toBe(406);
      expect(res.headers.get("x-egw-client-error")).toBe("ERR_TLS_BINDING");
      expect(impostor.connections()).toBe(1); // control: it was dialled
      expect(impostor.received().toString("latin1")).not.toContain("/healthz");
    } finally {
      await p.close();
      await impostor.close();
    }
  });

  it("non-streamed: 406, the altered body is never passed on", async () => {
    fake.tamper = "flip-body";
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("x") });
    expect(res.status).toBe(406);
    const text = await res.text();
    expect(text).not.toContain("fake");
    expect(JSON.parse(text)).toMatchObject({ error: { code: "ERR_RECEIPT_RESPONSE_MISMATCH" } });
  });

  it("streamed: an in-stream error event, then the connection is cut", async () => {
    fake.tamper = "flip-body";
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("x", true) });
    expect(res.status).toBe(200);
    const { text, failed } = await readAll(res);
    expect(failed).toBe(true);
    expect(text).toContain('"code":"ERR_RECEIPT_RESPONSE_MISMATCH"');
    expect(text).not.toContain("egw-receipt");
    // The terminal event was held until the receipt check, and never sent.
    expect(text).not.toContain("[DONE]");
  });

  it("streamed, through the official openai SDK: the tampered stream ends in an SDK error, never in success", async () => {
    fake.tamper = "flip-body";
    const { default: OpenAI } = await import("openai");
    const sdk = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "unused", maxRetries: 0 });
    let _text = "";
    const error = await (async () => {
      const stream = await sdk.chat.completions.create({ model: "fake", stream: true, messages: [{ role: "user", content: "x" }] });
      for await (const chunk of stream) _text += chunk.choices[0]?.delta?.content ?? "";
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as { code?: unknown }).code).toBe("ERR_RECEIPT_RESPONSE_MISMATCH");
  });

  it.skipIf(!curl)("curl sees the cut (exit 18: transfer closed with outstanding data)", async () => {
    fake.tamper = "flip-body";
    const r = await runCurl(["-sS", "-N", `${proxy.url}/v1/chat/completions`, "-H", "content-type: application/json", "-d", chatBody("x", true)]);
    expect(r.code).toBe(18);
    expect(r.stdout).toContain("ERR_RECEIPT_RESPONSE_MISMATCH");
  });

  it("honest again: passes", async () => {
    fake.tamper = "none";
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("x", true) });
    const { text, failed } = await readAll(res);
    expect(failed).toBe(false);
    expect(text).toContain(": egw-receipt ");
  });
});

// ─── egw receipt verify ──────────────────────────────────────────────────

describe("egw receipt verify", () => {
  let plain: VerifiedReceipt;
  let streamed: VerifiedReceipt;

  beforeAll(async () => {
    const f = createVerifiedFetch({
      baseURL: h.baseURL,
      policy: { measurements: "any", trust: "any", trustedRoots: [h.anchor] },
      retainStreamBodies: true,
    });
    try {
      await (await f(`${h.baseURL}/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("save me for the audit") })).text();
      await (await f(`${h.baseURL}/chat/completions`, { method: "POST", headers: authHeaders, body: chatBody("save my stream", true) })).text();
      await new Promise((r) => setImmediate(r));
      [plain, streamed] = f.getReceipts() as [VerifiedReceipt, VerifiedReceipt];
    } finally {
      await f.close();
    }
    const save = (prefix: string, r: VerifiedReceipt) => {
      fs.writeFileSync(file(`${prefix}.receipt`), r.receipt);
      fs.writeFileSync(file(`${prefix}.request`), r.request.body);
      fs.writeFileSync(file(`${prefix}.response`), r.response.body!);
      fs.writeFileSync(file(`${prefix}.attestation`), r.peer.document);
      fs.writeFileSync(file(`${prefix}.trust-policy`), r.peer.trust!.bytes);
    };
    save("plain", plain);
    save("stream", streamed);
    fs.writeFileSync(file("plain.receipt.txt"), `${Buffer.from(plain.receipt).toString("base64url")}\n`);
    fs.writeFileSync(file("stream.receipt.sse"), receiptSseBlock(streamed.receipt));
    fs.writeFileSync(file("plain.attestation.b64"), Buffer.from(plain.peer.document).toString("base64"));
  });

  const args = (prefix: string, overrides: Record<string, string> = {}) => {
    const files = { receipt: `${prefix}.receipt`, request: `${prefix}.request`, response: `${prefix}.response`, attestation: `${prefix}.attestation`, ...overrides };
    return ["verify", ...Object.entries(files).flatMap(([k, v]) => [`--${k}`, v])];
  };
  const flipped = (name: string, at: (len: number) => number) => {
    const bytes = fs.readFileSync(file(name));
    bytes[at(bytes.length)]! ^= 0x01;
    const out = `${name}.flipped`;
    fs.writeFileSync(file(out), bytes);
    return out;
  };

  it("passes on the saved files", async () => {
    const r = await egw(receiptCommand, [...args("plain"), "--dev-root", "dev-root.pem"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`VERIFIED receipt ${plain.claims.id}: POST /v1/chat/completions status 200 from local`);
    expect(r.stdout).toContain("  upstream: local");
    expect(r.stdout).toContain("  request body: read and hashed");
    expect(r.stdout).toMatch(/^ {2}ok {3}response-hash /m);
    expect(r.stdout).toContain("measurements NOT checked");
  });

  it("passes for a stream, with the receipt as its SSE block, and with the header text and a base64 document", async () => {
    expect((await egw(receiptCommand, [...args("stream", { receipt: "stream.receipt.sse" }), "--dev-root", "dev-root.pem"])).code).toBe(0);
    expect((await egw(receiptCommand, [...args("plain", { receipt: "plain.receipt.txt", attestation: "plain.attestation.b64" }), "--dev-root", "dev-root.pem"])).code).toBe(0);
  });

  it("judges an expiring manifest as of --at for an audit, and as of now otherwise", async () => {
    const t = plain.claims.time;
    const expires = new Date(Math.ceil(t / 1000) * 1000 + 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const good = JSON.parse(fs.readFileSync(file("good.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file("expiring.json"), JSON.stringify({ ...good, expires }));
    const later = new Date(Date.parse(expires) + 3600_000);
    const run = async (extra: string[]) => {
      const { ctx, out } = context();
      const code = await receiptCommand([...args("plain"), "--policy", "expiring.json", "--trust-policy", "plain.trust-policy", "--dev-root", "dev-root.pem", ...extra], {
        ...ctx,
        now: () => later,
      });
      return { code, stdout: out() };
    };
    const refused = await run([]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("REJECTED ERR_MANIFEST_EXPIRED");
    const audited = await run(["--at", new Date(t + 1000).toISOString()]);
    expect(audited.stdout).toContain(`VERIFIED receipt ${plain.claims.id}`);
    expect(audited.code).toBe(0);
  });

  it("checks measurements with --policy, and reports JSON", async () => {
    const ok = await egw(receiptCommand, [...args("plain"), "--policy", "good.json", "--trust-policy", "plain.trust-policy", "--dev-root", "dev-root.pem", "--json"]);
    expect(ok.code).toBe(0);
    // A manifest constraining trust needs the policy's bytes, and only the attested ones.
    const without = await egw(receiptCommand, [...args("plain"), "--policy", "good.json", "--dev-root", "dev-root.pem"]);
    expect(without.code).toBe(1);
    expect(without.stdout).toContain("REFUSED ERR_TRUST_POLICY_MISMATCH");
    fs.writeFileSync(file("other.trust-policy"), `${fs.readFileSync(file("plain.trust-policy"), "utf8")} `);
    const otherPolicy = await egw(receiptCommand, [...args("plain"), "--policy", "good.json", "--trust-policy", "other.trust-policy", "--dev-root", "dev-root.pem"]);
    expect(otherPolicy.stdout).toContain("REFUSED ERR_TRUST_POLICY_MISMATCH");
    expect(JSON.parse(ok.stdout)).toMatchObject({ verified: true, receipt: { id: plain.claims.id, status: 200 }, attestation: { measurement: "test build" } });
    const other = await egw(receiptCommand, [...args("plain"), "--policy", "other.json", "--dev-root", "dev-root.pem"]);
    expect(other.code).toBe(1);
    expect(other.stdout).toContain("REFUSED ERR_MEASUREMENTS_NOT_ALLOWED");
  });

  it("fails on a flipped byte anywhere", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ response: flipped("plain.response", (n) => n >> 1) }, /FAIL response-hash +ERR_RECEIPT_RESPONSE_MISMATCH/],
      [{ request: flipped("plain.request", (n) => n >> 1) }, /FAIL request-hash +ERR_RECEIPT_REQUEST_MISMATCH/],
      [{ receipt: flipped("plain.receipt", (n) => n - 1) }, /FAIL receipt-signature +ERR_SIGNATURE_INVALID/],
      [{ attestation: flipped("plain.attestation", (n) => n - 1) }, /FAIL \S+ +ERR_/],
      [
        { response: flipped("stream.response", (n) => n >> 1), receipt: "stream.receipt", request: "stream.request", attestation: "stream.attestation" },
        /ERR_RECEIPT_RESPONSE_MISMATCH/,
      ],
    ];
    for (const [overrides, expected] of cases) {
      const r = await egw(receiptCommand, [...args("plain", overrides), "--dev-root", "dev-root.pem"]);
      expect(r.code, JSON.stringify(overrides)).toBe(1);
      expect(r.stdout).toMatch(expected);
    }
  });

  it("refuses without the development root, and after the document's certificates expired", async () => {
    const noRoot = await egw(receiptCommand, args("plain"));
    expect(noRoot.code).toBe(1);
    expect(noRoot.stdout).toContain("REFUSED ERR_ROOT_UNTRUSTED");
    const later = new Date(Date.now() + 30 * 24 * 3600_000).toISOString();
    const expired = await egw(receiptCommand, [...args("plain"), "--dev-root", "dev-root.pem", "--at", later]);
    expect(expired.code).toBe(1);
    expect(expired.stdout).toMatch(/ERR_CERT_EXPIRED/);
  });

  it("usage errors exit 2", async () => {
    expect((await egw(receiptCommand, ["verify", "--receipt", "plain.receipt"])).code).toBe(2);
    expect((await egw(receiptCommand, ["check"])).code).toBe(2);
    expect((await egw(receiptCommand, [...args("plain", { response: "missing" })])).code).toBe(2);
    expect((await egw(receiptCommand, [...args("plain"), "--at", "yesterday"])).code).toBe(2);
  });
});
