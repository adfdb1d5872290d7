import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, loadPolicyFile } from "../../attestation/client/index.js";
import { bootEnclave } from "../../enclave/boot.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { startMockAnthropic, type MockAnthropic } from "../helpers/mock-anthropic.js";
import { startMockGemini, type MockGemini } from "../helpers/mock-gemini.js";
import { MOCK_DEFAULT_CONTENT, startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * `egw dev --config` on a running stack: a user's own trust policy (a
 * first-party openai, anthropic and gemini provider pointed at local mocks
 * by a base-URL override, a key ARN of their own, an alias) and operations (a
 * second token with one model and a rate limit), keys from the environment
 * (one through `secretsEnv`) sealed under the local KMS, real egress
 * through the host relay. The banner's four programs (openai, Anthropic,
 * AI SDK, @google/genai) run as printed. Then the
 * failures a developer meets first: a missing key, a bad file, a port in use.
 */
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const EGW = path.join(ROOT, "dist/infra/cli/egw.js");
const OPENAI_KEY = "sk-CANARYCFGOPENAI51d0";
const CLAUDE_KEY = "sk-ant-CANARYCFGCLAUDE77e2";
const GEMINI_KEY = "AIzaCANARYCFGGEMINI90f3";
const USER_TOKEN = "user-token-CANARYCFG-0123456789abcdef";
const USER_ARN = "arn:aws:kms:eu-west-1:444455556666:key/11112222-3333-4444-5555-666677778888";

let dir: string;
let openaiMock: MockOpenAI;
let anthropicMock: MockAnthropic;
let geminiMock: MockGemini;
let configFile: string;
let dev: ChildProcess;
let ready: Record<string, any>;
let token: string;
const out: string[] = [];
const err: string[] = [];

const baseEnv = () => ({ PATH: process.env.PATH, HOME: process.env.HOME });

function runDev(args: string[], env: NodeJS.ProcessEnv, stdout: string[] = [], stderr: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [EGW, "dev", ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  child.stdout!.on("data", (d: Buffer) => stdout.push(d.toString()));
  child.stderr!.on("data", (d: Buffer) => stderr.push(d.toString()));
  return child;
}

/** Runs egw dev to its end (a refusal): exit code, stdout and stderr. */
async function devFails(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const child = runDev(args, env, stdout, stderr);
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  clearTimeout(timer);
  return { code, stdout: stdout.join(""), stderr: stderr.join("") };
}

/** The fenced programs the banner printed, by title prefix. */
function printedSnippet(title: string): string {
  const text = out.join("");
  const at = text.indexOf(`\n${title}`);
  expect(at, `no "${title}" snippet in the banner`).toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)\n```/.exec(text.slice(at));
  return m![1]!;
}

/**
 * Transpiles a printed program (TypeScript) and runs it with node inside the
 * package, so "enclave-gateway/client" resolves to dist/. Asynchronously:
 * the mock providers live in this process.
 */
async function runSnippet(name: string, code: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const js = ts.transpileModule(code, { reportDiagnostics: true, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  expect(js.diagnostics ?? []).toEqual([]);
  const file = path.join(ROOT, "dist", `.dev-snippet-${process.pid}-${name}.mjs`);
  fs.writeFileSync(file, js.outputText);
  try {
    const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"], env: baseEnv() });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const status = await new Promise<number | null>((r) => child.once("exit", r));
    clearTimeout(timer);
    return { status, stdout, stderr };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function trustPolicy() {
  return {
    version: 1,
    providers: [
      { name: "openai", kind: "openai", baseUrl: openaiMock.url, secret: "OPENAI_API_KEY" },
      { name: "claude", kind: "anthropic", baseUrl: anthropicMock.url, secret: "ANTHROPIC_API_KEY" },
      { name: "gemini", kind: "gemini", baseUrl: geminiMock.url, secret: "GEMINI_API_KEY" },
    ],
    models: { fast: { provider: "openai", model: "gpt-4o-mini", description: "the user's alias" } },
    prefixRouting: true,
    secrets: { kmsKeyArn: USER_ARN },
    identity: { mode: "ephemeral" },
  };
}

beforeAll(async () => {
  if (!fs.existsSync(EGW)) throw new Error(`${EGW} is missing: run "npm run build" first`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-dev-config-stack-"));
  openaiMock = await startMockOpenAI();
  anthropicMock = await startMockAnthropic({ apiKey: CLAUDE_KEY });
  geminiMock = await startMockGemini({ apiKey: GEMINI_KEY });
  // Operations as a file of its own, beside the config, as production keeps it.
  const operations = {
    version: 1,
    clients: [{ name: "app", tokenSha256: createHash("sha256").update(USER_TOKEN).digest("hex"), models: ["fast"], rateLimitPerMinute: 3 }],
  };
  fs.writeFileSync(path.join(dir, "operations.json"), JSON.stringify(operations, null, 2));
  configFile = path.join(dir, "dev.json");
  fs.writeFileSync(configFile, JSON.stringify({ trustPolicy: trustPolicy(), operations: "operations.json", secretsEnv: { ANTHROPIC_API_KEY: "MY_CLAUDE_KEY" } }, null, 2));
  dev = runDev(
    ["--config", configFile, "--port", "0", "--state-dir", path.join(dir, "state"), "--capture-dir", path.join(dir, "capture")],
    {
      ...baseEnv(),
      OPENAI_API_KEY: OPENAI_KEY,
      MY_CLAUDE_KEY: CLAUDE_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
    },
    out,
    err,
  );
  ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`egw dev not ready: ${err.join("")}`)), 60_000);
    const poll = setInterval(() => {
      const text = out.join("");
      const nl = text.indexOf("\n");
      if (nl < 0 || !text.includes("Ctrl-C")) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve(JSON.parse(text.slice(0, nl)));
    }, 50);
    dev.once("exit", (code) => reject(new Error(`egw dev exited ${code}: ${err.join("")}`)));
  });
  token = fs.readFileSync(ready.tokenFile, "utf8").trim();
}, 90_000);

afterAll(async () => {
  if (dev && dev.exitCode === null) {
    dev.kill("SIGINT");
    await new Promise((r) => dev.once("exit", r));
  }
  await openaiMock?.close();
  await anthropicMock?.close();
  await geminiMock?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function sdk(apiKey: string) {
  const { policy } = await loadPolicyFile(ready.manifest, { now: () => new Date() });
  const verified = createVerifiedFetch({ baseURL: ready.url.replace(/\/v1$/, ""), policy });
  return { openai: new OpenAI({ baseURL: ready.url, apiKey, fetch: verified, maxRetries: 0 }), verified };
}

describe("egw dev --config: the user's providers, through the host relay", () => {
  it("boots the user's documents: the policy's own key played by the local KMS, both keys sealed, no key in any process's environment", () => {
    expect(Object.keys(ready.pids).sort()).toEqual(["enclave", "host"]);
    expect(ready.config).toBe(configFile);
    expect(ready.providers).toEqual(["openai", "claude", "gemini"]);
    expect(ready.sealedSecrets.sort()).toEqual(["ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"]);
    const sealed = JSON.parse(fs.readFileSync(path.join(ready.stateDir, "sealed-secrets.json"), "utf8"));
    expect(sealed.keyId).toBe(USER_ARN);
    const written = JSON.parse(fs.readFileSync(ready.trustPolicy, "utf8"));
    expect(written.secrets).toEqual({ kmsKeyArn: USER_ARN });
    expect(written.providers).toEqual(trustPolicy().providers);
    for (const [name, pid] of Object.entries(ready.pids as Record<string, number>)) {
      const environ = fs.readFileSync(`/proc/${pid}/environ`, "latin1");
      for (const key of [OPENAI_KEY, CLAUDE_KEY, GEMINI_KEY]) expect(environ.includes(key), `${name}'s environment holds a key`).toBe(false);
    }
    // The banner says where the policy came from, what dev added and what each provider serves.
    const text = out.join("");
    expect(text).toContain(`trust policy: --config ${configFile}`);
    expect(text).toContain("egw dev added default routes for provider claude (no route named it): claude-sonnet-4-6, claude-haiku-4-5, claude-opus-4-6");
    expect(text).toContain(
      `openai (openai) → ${new URL(openaiMock.url).origin}, key OPENAI_API_KEY (sealed under the local KMS): chat, streaming, tools, embeddings, images, responses`,
    );
  });

  it("/v1/models lists the user's alias and the default routes of the provider that had none", async () => {
    const { openai, verified } = await sdk(token);
    try {
      const ids: Record<string, string> = {};
      for await (const m of openai.models.list()) ids[m.id] = m.owned_by;
      expect(ids).toEqual({
        fast: "openai",
        "claude-sonnet-4-6": "claude",
        "claude-haiku-4-5": "claude",
        "claude-opus-4-6": "claude",
        "gemini-2.5-flash": "gemini",
        "gemini-2.5-pro": "gemini",
        "gemini-2.5-flash-lite": "gemini",
        "gemini-embedding-001": "gemini",
      });
    } finally {
      await verified.close();
    }
  });

  it("the banner's openai program, as printed, reaches the OpenAI mock through the egress proxy with the sealed key", async () => {
    const before = openaiMock.requests.length;
    const r = await runSnippet("openai", printedSnippet("openai SDK"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(MOCK_DEFAULT_CONTENT);
    const req = openaiMock.requests[before]!;
    expect(req.path).toBe("/v1/chat/completions");
    expect(req.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect((req.body as { model: string }).model).toBe("gpt-4o-mini");
    // Through the host's egress proxy, as a CONNECT tunnel.
    const egress = fs.readFileSync(path.join(dir, "capture", "host-egress.bin"), "latin1");
    expect(egress).toContain(`CONNECT ${new URL(openaiMock.url).host} HTTP/1.1`);
  });

  it("the banner's Anthropic program, as printed, reaches the Anthropic mock natively with the key from the mapped variable", async () => {
    const before = anthropicMock.requests.length;
    const r = await runSnippet("anthropic", printedSnippet("@anthropic-ai/sdk"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("Hello from the mock.");
    expect(anthropicMock.requests.length).toBe(before + 1);
    expect(anthropicMock.requests[before]!.headers["x-api-key"]).toBe(CLAUDE_KEY);
  });

  it("the banner's AI SDK program, as printed, works too", async () => {
    const r = await runSnippet("ai-sdk", printedSnippet("Vercel AI SDK"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(MOCK_DEFAULT_CONTENT);
  });

  it("the banner's @google/genai program, as printed, reaches the Gemini mock natively on a default route, with the sealed key", async () => {
    expect(printedSnippet("@google/genai")).toContain('model: "gemini-2.5-flash"');
    const before = geminiMock.requests.length;
    const r = await runSnippet("google-genai", printedSnippet("@google/genai"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("Hello from mock Gemini.");
    expect(geminiMock.requests.length).toBe(before + 1);
    expect(geminiMock.requests[before]!.headers["x-goog-api-key"]).toBe(GEMINI_KEY);
  });

  it("the user's second token: only its model, at its rate limit", async () => {
    const { openai, verified } = await sdk(USER_TOKEN);
    try {
      const ok = await openai.chat.completions.create({ model: "fast", messages: [{ role: "user", content: "hi" }] });
      expect(ok.choices[0]!.message.content).toBe(MOCK_DEFAULT_CONTENT);
      await expect(openai.chat.completions.create({ model: "claude-haiku-4-5", messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
        status: 403,
        code: "model_not_allowed",
      });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push(
          await openai.chat.completions.create({ model: "fast", messages: [{ role: "user", content: "hi" }] }).then(
            () => 200,
            (e: { status: number }) => e.status,
          ),
        );
      }
      expect(statuses).toContain(429);
    } finally {
      await verified.close();
    }
  });

  it("the host relay saw no key, prompt or token", async () => {
    await new Promise((r) => setTimeout(r, 300));
    const captured = Buffer.concat([fs.readFileSync(path.join(dir, "capture", "host-ingress.bin")), fs.readFileSync(path.join(dir, "capture", "host-egress.bin"))]).toString(
      "latin1",
    );
    expect(captured.length).toBeGreaterThan(2000);
    for (const canary of [OPENAI_KEY, CLAUDE_KEY, GEMINI_KEY, USER_TOKEN, token]) {
      for (const form of [canary, Buffer.from(canary).toString("base64"), Buffer.from(canary).toString("hex")]) expect(captured.includes(form)).toBe(false);
    }
  });

  it("the enclave with the real NSM refuses the trust policy egw dev booted (first-party kinds pointed at mocks)", async () => {
    const nsm = { kind: "nsm" as const, attest: () => Promise.reject(new Error("not reached")), close: async () => {} } as never;
    await expect(
      bootEnclave({
        trustPolicyBytes: new Uint8Array(fs.readFileSync(ready.trustPolicy)),
        operationsBytes: new Uint8Array(fs.readFileSync(ready.operations)),
        attester: nsm,
        secrets: staticSecrets(new Map()),
        log: memoryLogger(),
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      }),
    ).rejects.toMatchObject({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringMatching(/kind openai is fixed to https:\/\/api\.openai\.com/) });
  });

  it("Ctrl-C stops it", async () => {
    dev.kill("SIGINT");
    expect(await new Promise((r) => dev.once("exit", r))).toBe(0);
  });
});

describe("what a developer meets first, on the terminal", () => {
  it("Ctrl-C the moment the ready line is out: exit 0, and no process of the stack is left", async () => {
    const stdout: string[] = [];
    const child = runDev(
      ["--config", configFile, "--port", "0", "--state-dir", path.join(dir, "state-quick")],
      { ...baseEnv(), OPENAI_API_KEY: OPENAI_KEY, MY_CLAUDE_KEY: CLAUDE_KEY, GEMINI_API_KEY: GEMINI_KEY },
      stdout,
    );
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (code, signal) => r([code, signal])));
    const pids = await new Promise<Record<string, number>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no ready line")), 60_000);
      child.stdout!.on("data", () => {
        const text = stdout.join("");
        if (!text.includes("\n")) return;
        clearTimeout(timer);
        child.kill("SIGINT");
        resolve(JSON.parse(text.slice(0, text.indexOf("\n"))).pids);
      });
    });
    expect(await exited).toEqual([0, null]);
    for (const pid of Object.values(pids)) expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);

  it("a secret the policy names but the environment lacks: exit 2 before anything starts, naming the provider and the variable", async () => {
    const state = path.join(dir, "state-missing");
    const r = await devFails(["--config", configFile, "--port", "0", "--state-dir", state], { ...baseEnv(), OPENAI_API_KEY: OPENAI_KEY });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^egw dev: ERR_DEV_SECRET_MISSING: provider "claude" needs secret ANTHROPIC_API_KEY: set MY_CLAUDE_KEY/);
    expect(r.stdout).toBe("");
    expect(fs.readdirSync(path.join(state, "logs"))).toEqual([]);
  });

  it("a bad --config file: exit 2 with the file and the JSON pointer", async () => {
    const bad = path.join(dir, "bad.json");
    const policy = trustPolicy();
    policy.providers[0]!.kind = "openia";
    fs.writeFileSync(bad, JSON.stringify({ trustPolicy: policy, operations: "operations.json" }));
    const r = await devFails(["--config", bad, "--port", "0", "--state-dir", path.join(dir, "state-bad")], baseEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`egw dev: ERR_DEV_CONFIG: ${bad}: /trustPolicy/providers/0/kind: must be one of`);
  });

  it("the enclave failing at boot: exit 1 with the enclave's own error, and the host it started is stopped", async () => {
    const r = await devFails(["--config", configFile, "--port", "0", "--state-dir", path.join(dir, "state-enclave")], {
      ...baseEnv(),
      OPENAI_API_KEY: OPENAI_KEY,
      MY_CLAUDE_KEY: CLAUDE_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      EGW_LOG_LEVEL: "loud",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /egw dev: ERR_DEV_BOOT: enclave exited with code 2 before it was ready: egw enclave: EGW_LOG_LEVEL must be one of debug, info, warn, error \(log: .*enclave\.log\)/,
    );
    expect(r.stdout).toBe("");
    // The host had started (its log exists); no process is left that names this state dir.
    const state = path.join(dir, "state-enclave");
    expect(fs.existsSync(path.join(state, "logs", "host.log"))).toBe(true);
    const left = fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, "latin1").includes(state);
        } catch {
          return false;
        }
      });
    expect(left).toEqual([]);
  }, 60_000);

  it("a port in use: exit 1 with the host's own error (code and message), not a pointer to a log file", async () => {
    const held = net.createServer();
    await new Promise<void>((r) => held.listen(0, "127.0.0.1", r));
    const port = (held.address() as net.AddressInfo).port;
    try {
      const r = await devFails(["--port", String(port), "--state-dir", path.join(dir, "state-port")], baseEnv());
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `egw dev: ERR_DEV_BOOT: host exited with code 2 before it was ready: egw host: ERR_LISTEN_FAILED: listen tcp://127.0.0.1:${port} failed (EADDRINUSE)`,
      );
    } finally {
      await new Promise((r) => held.close(r));
    }
  }, 60_000);
});
