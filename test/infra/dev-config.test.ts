import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { parseTrustPolicy } from "../../attestation/trust-policy.js";
import { bootEnclave, runtimeConfigFor } from "../../enclave/boot.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import { openaiModule } from "../../enclave/providers/openai/index.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { createEgressPolicy, parseAuthority } from "../../host/egress/index.js";
import { bannerText } from "../../infra/cli/dev/banner.js";
import { describeCapabilities, effectiveCapabilities } from "../../infra/cli/dev/capabilities.js";
import { childFailure } from "../../infra/cli/dev/child-process.js";
import { clientSnippets } from "../../infra/cli/dev/client-snippets.js";
import { checkTogether, DEV_CLIENT_NAME, operationsWithDevClient } from "../../infra/cli/dev/config-operations.js";
import { prepareTrustPolicy } from "../../infra/cli/dev/config-trust-policy.js";
import { DEFAULT_MODELS } from "../../infra/cli/dev/default-routes.js";
import { devTrustPolicy } from "../../infra/cli/dev/generated-policy.js";
import { messageWithPointer, pathToPointer } from "../../infra/cli/dev/json-pointer.js";
import { secretsFromEnv } from "../../infra/cli/dev/provider-secrets.js";
import { readDevConfig } from "../../infra/cli/dev/user-config.js";
import { egressRules } from "../../infra/cli/host-common.js";

/**
 * `egw dev --config`, in process: the file's shape and its errors (file +
 * JSON pointer), what egw dev adds to a user's policy and operations, the
 * secrets it needs, the effective capabilities it states, the banner's
 * programs as TypeScript, and that production refuses what dev allows.
 * The running stack is test/infra/dev-config-stack.test.ts.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-dev-config-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function write(value: unknown, name = `c${n++}.json`): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return file;
}

const TOKEN_SHA = "ab".repeat(32);
const USER_SHA = "cd".repeat(32);
const DEV_KEY = {
  arn: "arn:aws:kms:us-east-1:111122223333:key/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f",
  key: { region: "us-east-1", account: "111122223333", keyId: "0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f" },
};
const USER_ARN = "arn:aws:kms:eu-west-1:444455556666:key/11112222-3333-4444-5555-666677778888";
const trust = (over: Record<string, unknown> = {}) => ({
  version: 1,
  providers: [{ name: "openai", kind: "openai", baseUrl: "http://127.0.0.1:9/v1", secret: "OPENAI_API_KEY" }],
  models: { fast: { provider: "openai", model: "gpt-4o-mini" } },
  secrets: { kmsKeyArn: USER_ARN },
  identity: { mode: "ephemeral" },
  ...over,
});
const ops = (over: Record<string, unknown> = {}) => ({ version: 1, clients: [{ name: "app", tokenSha256: USER_SHA, models: ["fast"], rateLimitPerMinute: 5 }], ...over });

describe("the --config file: one file, two documents, errors with a JSON pointer", () => {
  it("reads both documents inline, or as paths relative to the file used byte for byte", async () => {
    const inline = await readDevConfig(write({ trustPolicy: trust(), operations: ops() }));
    expect(inline.trustPolicy).toMatchObject({ pointer: "/trustPolicy", ownFile: false });
    expect(new TextDecoder().decode(inline.trustPolicy.bytes)).toBe(`${JSON.stringify(trust(), null, 2)}\n`);
    const policyText = `${JSON.stringify(trust())}\n`;
    write(policyText, "prod-trust.json");
    write(ops(), "prod-ops.json");
    const byPath = await readDevConfig(write({ trustPolicy: "prod-trust.json", operations: "./prod-ops.json", secretsEnv: { OPENAI_API_KEY: "MY_KEY" } }));
    expect(byPath.trustPolicy).toMatchObject({ file: path.join(dir, "prod-trust.json"), pointer: "", ownFile: true });
    expect(Buffer.from(byPath.trustPolicy.bytes).toString()).toBe(policyText);
    expect(byPath.secretsEnv).toEqual({ OPENAI_API_KEY: "MY_KEY" });
  });

  const bad: [string, unknown, RegExp][] = [
    ["unknown top-level field", { trustPolicy: trust(), operations: ops(), policy: {} }, /: \/policy: unknown field/],
    ["missing trust policy", { operations: ops() }, /: \/trustPolicy: is required/],
    ["operations not an object", { trustPolicy: trust(), operations: 7 }, /: \/operations: must be a file path or an object/],
    [
      "secretsEnv naming no variable",
      { trustPolicy: trust(), operations: ops(), secretsEnv: { OPENAI_API_KEY: "no spaces" } },
      /: \/secretsEnv\/OPENAI_API_KEY: must name an environment variable/,
    ],
    ["a path that is not there", { trustPolicy: "nope.json", operations: ops() }, /: \/trustPolicy: cannot read the trust policy .*nope\.json \(ENOENT\)/],
  ];
  it.each(bad)("refuses %s, naming the file and the pointer", async (_, value, message) => {
    const file = write(value);
    const err = await readDevConfig(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_DEV_CONFIG" });
    expect((err as Error).message.startsWith(`${file}: `)).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it("refuses a file that is not JSON, holds a duplicate key, or is too large", async () => {
    await expect(readDevConfig(write("{ nope"))).rejects.toMatchObject({ code: "ERR_DEV_CONFIG", message: expect.stringMatching(/\(root\): is not JSON/) });
    await expect(readDevConfig(write('{"trustPolicy": {}, "trustPolicy": {}}'))).rejects.toMatchObject({ message: expect.stringMatching(/"trustPolicy" appears twice/) });
    const big = write(`{"x":"${"a".repeat(2 * 1024 * 1024)}"}`);
    await expect(readDevConfig(big)).rejects.toMatchObject({ code: "ERR_DEV_CONFIG", message: expect.stringMatching(/bytes, at most/) });
    await expect(readDevConfig(path.join(dir, "absent.json"))).rejects.toMatchObject({
      code: "ERR_DEV_CONFIG",
      message: expect.stringMatching(/cannot read the --config file .* \(ENOENT\)/),
    });
  });

  it("turns the parsers' paths into RFC 6901 pointers", () => {
    expect(pathToPointer("providers[0].baseUrl")).toBe("/providers/0/baseUrl");
    expect(pathToPointer('models["a/b~c:d"].provider')).toBe("/models/a~1b~0c:d/provider");
    expect(pathToPointer("(root).foo")).toBe("/foo");
    expect(pathToPointer("identity.generatorPcrs[1].0")).toBe("/identity/generatorPcrs/1/0");
    expect(messageWithPointer('trust policy models["x:y"].provider: names no configured provider "z"', "trust policy", "/trustPolicy")).toBe(
      '/trustPolicy/models/x:y/provider: names no configured provider "z"',
    );
    expect(messageWithPointer("operations (bytes): is not JSON", "operations", "")).toBe("(the file): is not JSON");
    expect(messageWithPointer("something else", "operations", "/operations")).toBe("something else");
  });

  it("a bad trust policy field: the file, the pointer into it, and the parser's code", async () => {
    const inline = await readDevConfig(write({ trustPolicy: trust({ providers: [{ name: "openai", kind: "openia" }] }), operations: ops() }));
    expect(() => prepareTrustPolicy(inline.trustPolicy, DEV_KEY)).toThrow(
      expect.objectContaining({ code: "ERR_DEV_CONFIG", message: expect.stringMatching(/: \/trustPolicy\/providers\/0\/kind: must be one of .*\(ERR_TRUST_POLICY_INVALID\)$/) }),
    );
    write(trust({ prefixRouting: "yes" }), "bad-trust.json");
    const byPath = await readDevConfig(write({ trustPolicy: "bad-trust.json", operations: ops() }));
    expect(() => prepareTrustPolicy(byPath.trustPolicy, DEV_KEY)).toThrow(
      expect.objectContaining({ message: `${path.join(dir, "bad-trust.json")}: /prefixRouting: must be a boolean (ERR_TRUST_POLICY_INVALID)` }),
    );
  });

  it("a bad operations field, and a client allowed a model the policy does not route, before anything starts", async () => {
    const c = await readDevConfig(write({ trustPolicy: trust(), operations: ops({ clients: [{ name: "app", tokenSha256: "nothex", models: ["*"] }] }) }));
    expect(() => operationsWithDevClient(c.operations, TOKEN_SHA)).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/: \/operations\/clients\/0\/tokenSha256: .*invalid format \(ERR_CONFIG\)$/) }),
    );
    const d = await readDevConfig(write({ trustPolicy: trust(), operations: ops({ clients: [{ name: "app", tokenSha256: USER_SHA, models: ["slow"] }] }) }));
    const opsBytes = operationsWithDevClient(d.operations, TOKEN_SHA);
    expect(() => checkTogether(d.trustPolicy.bytes, opsBytes, d.trustPolicy, d.operations)).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/"slow" names no model of the trust policy/) }),
    );
  });
});

describe("what egw dev adds to a user's documents", () => {
  it("nothing when nothing is missing: a policy file keeps its bytes (and hash)", async () => {
    const text = `${JSON.stringify(trust())}\n`;
    write(text, "keep.json");
    const c = await readDevConfig(write({ trustPolicy: "keep.json", operations: ops() }));
    const p = prepareTrustPolicy(c.trustPolicy, DEV_KEY);
    expect(Buffer.from(p.bytes).toString()).toBe(text);
    expect(p.notes).toEqual([]);
    // The local KMS plays the policy's own key.
    expect(p.kmsKey).toEqual({ region: "eu-west-1", account: "444455556666", keyId: "11112222-3333-4444-5555-666677778888" });
  });

  it("default routes for a first-party provider no route names; the user's routes and names stay", async () => {
    const c = await readDevConfig(
      write({
        trustPolicy: trust({
          providers: [
            { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
            { name: "claude", kind: "anthropic", baseUrl: "http://127.0.0.1:9", secret: "ANTHROPIC_API_KEY" },
            { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example/v1" },
          ],
          models: { fast: { provider: "openai", model: "gpt-4o-mini" }, "claude-haiku-4-5": { provider: "openai", model: "gpt-4o" } },
        }),
        operations: ops(),
      }),
    );
    const p = prepareTrustPolicy(c.trustPolicy, DEV_KEY);
    expect(p.policy.models.fast).toEqual({ provider: "openai", model: "gpt-4o-mini" });
    // Taken by the user: left as it is.
    expect(p.policy.models["claude-haiku-4-5"]).toMatchObject({ provider: "openai" });
    expect(p.policy.models["claude-sonnet-4-6"]).toMatchObject({ provider: "claude", model: "claude-sonnet-4-6" });
    // openai has a route of its own, acme is not first-party: no defaults.
    expect(p.policy.models["gpt-4.1"]).toBeUndefined();
    expect(Object.values(p.policy.models).filter((r) => r.provider === "acme")).toEqual([]);
    expect(p.notes).toEqual([expect.stringMatching(/^added default routes for provider claude \(no route named it\): claude-sonnet-4-6, claude-opus-4-6$/)]);
  });

  it("the local KMS key when providers name secrets but no key does; refuses keys the local KMS cannot play and a sealed identity", async () => {
    const noKey = trust();
    delete (noKey as Record<string, unknown>).secrets;
    const p = prepareTrustPolicy((await readDevConfig(write({ trustPolicy: noKey, operations: ops() }))).trustPolicy, DEV_KEY);
    expect(p.policy.secrets).toEqual({ kmsKeyArn: DEV_KEY.arn });
    expect(p.kmsKey).toEqual(DEV_KEY.key);
    expect(p.notes).toEqual([expect.stringContaining("added secrets.kmsKeyArn")]);
    const mrk = trust({ secrets: { kmsKeyArn: `arn:aws:kms:eu-west-1:444455556666:key/mrk-${"a".repeat(32)}` } });
    expect(() => prepareTrustPolicy(readDevConfigSync(mrk).trustPolicy, DEV_KEY)).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/\/trustPolicy\/secrets\/kmsKeyArn: egw dev's local KMS can play only/) }),
    );
    const sealed = trust({ identity: { mode: "sealed", kmsKeyArn: USER_ARN } });
    expect(() => prepareTrustPolicy(readDevConfigSync(sealed).trustPolicy, DEV_KEY)).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/\/trustPolicy\/identity\/mode: egw dev runs an ephemeral identity only/) }),
    );
  });

  it("the egw-dev client beside the user's clients, which keep their tokens, models and rate limits", async () => {
    const c = await readDevConfig(write({ trustPolicy: trust(), operations: ops() }));
    const out = JSON.parse(Buffer.from(operationsWithDevClient(c.operations, TOKEN_SHA)).toString());
    expect(out.clients).toEqual([ops().clients[0], { name: DEV_CLIENT_NAME, tokenSha256: TOKEN_SHA, models: ["*"] }]);
    const taken = await readDevConfig(write({ trustPolicy: trust(), operations: ops({ clients: [{ name: DEV_CLIENT_NAME, tokenSha256: USER_SHA, models: ["*"] }] }) }));
    expect(() => operationsWithDevClient(taken.operations, TOKEN_SHA)).toThrow(
      expect.objectContaining({ code: "ERR_DEV_CONFIG", message: expect.stringMatching(/egw dev's own client/) }),
    );
  });
});

/** readDevConfig for an inline trust policy, without the file round trip's await. */
function readDevConfigSync(trustPolicy: unknown) {
  const bytes = new TextEncoder().encode(`${JSON.stringify(trustPolicy, null, 2)}\n`);
  return { trustPolicy: { bytes, raw: trustPolicy as Record<string, unknown>, file: "dev.json", pointer: "/trustPolicy", ownFile: false } };
}

describe("provider secrets from the environment", () => {
  const policy = parseTrustPolicy(
    new TextEncoder().encode(
      JSON.stringify(
        trust({
          providers: [
            { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
            { name: "claude", kind: "anthropic", secret: "ANTHROPIC_API_KEY" },
          ],
          models: {},
        }),
      ),
    ),
    { dev: true },
  );

  it("a secret the environment lacks: refused with the provider's name and the variable, every one at once", () => {
    expect(() => secretsFromEnv(policy, { OPENAI_API_KEY: "" }, { ANTHROPIC_API_KEY: "MY_CLAUDE_KEY" })).toThrow(
      expect.objectContaining({
        code: "ERR_DEV_SECRET_MISSING",
        message: expect.stringMatching(/^provider "openai" needs secret OPENAI_API_KEY: set OPENAI_API_KEY; provider "claude" needs secret ANTHROPIC_API_KEY: set MY_CLAUDE_KEY/),
      }),
    );
  });

  it("reads each from its own variable or the mapped one, with the one origin it is sealed for", () => {
    const found = secretsFromEnv(policy, { OPENAI_API_KEY: "sk-a", MY_CLAUDE_KEY: "sk-b", ANTHROPIC_API_KEY: "ignored" }, { ANTHROPIC_API_KEY: "MY_CLAUDE_KEY" });
    expect(found).toEqual([
      { name: "OPENAI_API_KEY", provider: "openai", origin: "https://api.openai.com", env: "OPENAI_API_KEY", value: "sk-a" },
      { name: "ANTHROPIC_API_KEY", provider: "claude", origin: "https://api.anthropic.com", env: "MY_CLAUDE_KEY", value: "sk-b" },
    ]);
  });
});

describe("base-URL overrides: development only", () => {
  const trustBytes = new TextEncoder().encode(`${JSON.stringify(trust(), null, 2)}\n`);
  const opsBytes = new TextEncoder().encode(JSON.stringify(ops()));

  it("egw dev accepts a first-party kind pointed at a loopback mock; the enclave with the real NSM refuses the same bytes at boot", async () => {
    expect(runtimeConfigFor({ trustPolicyBytes: trustBytes, operationsBytes: opsBytes, attester: { kind: "simulated" } as never }).providers[0]!.baseUrl).toBe(
      "http://127.0.0.1:9/v1",
    );
    const nsm = { kind: "nsm" as const, attest: () => Promise.reject(new Error("not reached")), close: async () => {} } as never;
    await expect(
      bootEnclave({
        trustPolicyBytes: trustBytes,
        operationsBytes: opsBytes,
        attester: nsm,
        secrets: staticSecrets(new Map()),
        log: memoryLogger(),
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      }),
    ).rejects.toMatchObject({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringMatching(/providers\[0\]\.baseUrl: kind openai is fixed to https:\/\/api\.openai\.com/) });
  });

  it("a production host's egress proxy, from the same policy without egw dev's --allow-private, refuses to dial the loopback mock", async () => {
    const policy = parseTrustPolicy(trustBytes, { dev: true });
    const resolver = async () => [{ address: "127.0.0.1", family: 4 as const }];
    const prod = createEgressPolicy({ rules: egressRules(policy, [], []), resolver });
    expect(await prod.decide(parseAuthority("127.0.0.1:9"))).toMatchObject({ allowed: false, rule: "private_address" });
    const dev = createEgressPolicy({ rules: egressRules(policy, [], ["127.0.0.1:9"]), resolver });
    expect(await dev.decide(parseAuthority("127.0.0.1:9"))).toMatchObject({ allowed: true });
  });
});

describe("effective capabilities, stated", () => {
  it("an openai-compatible provider without capabilities serves everything, and the banner says those are defaults", () => {
    expect(effectiveCapabilities({ kind: "openai-compatible" })).toEqual({ on: ["chat", "embeddings", "images"], off: [], defaulted: ["chat", "embeddings", "images"] });
    expect(describeCapabilities({ kind: "openai-compatible", capabilities: { chat: true, images: false } })).toBe(
      "chat, embeddings; off: images (embeddings: not in the policy, on by default)",
    );
    expect(describeCapabilities({ kind: "anthropic" })).toBe("chat; off: embeddings, images");
  });

  it("agrees with the adapter: an absent capability is served, a false one is refused", async () => {
    // Past the capability check the call goes upstream, where this fetch fails: a connect error, not unsupported_capability.
    const reached = new Error("reached upstream");
    const ctx = { fetch: () => Promise.reject(reached), signal: new AbortController().signal, upstreamModel: "m", now: () => new Date() } as never;
    const config = { name: "acme", kind: "openai-compatible" as const, baseUrl: "http://127.0.0.1:9/v1", origin: "http://127.0.0.1:9" };
    const defaulted = openaiModule.create(config as never, staticSecrets(new Map()));
    await expect(defaulted.embeddings!({ model: "m", input: ["x"] } as never, ctx)).rejects.toMatchObject({ code: "ERR_UPSTREAM_CONNECT" });
    await expect(defaulted.images!({ model: "m", prompt: "x" } as never, ctx)).rejects.toMatchObject({ code: "ERR_UPSTREAM_CONNECT" });
    const off = openaiModule.create({ ...config, capabilities: { images: false } } as never, staticSecrets(new Map()));
    await expect(off.images!({ model: "m", prompt: "x" } as never, ctx)).rejects.toMatchObject({ code: "unsupported_capability" });
    expect(effectiveCapabilities({ kind: "openai-compatible", capabilities: { images: false } }).off).toEqual(["images"]);
  });
});

describe("the generated policy (no --config)", () => {
  it("routes default models for each provider whose key is set, so /v1/models lists them", () => {
    const text = devTrustPolicy({ modelPort: 4443, localKey: false, providers: [{ env: "OPENAI_API_KEY", name: "openai", kind: "openai" }], kmsKeyArn: DEV_KEY.arn });
    const policy = parseTrustPolicy(new TextEncoder().encode(text), { dev: false });
    expect(Object.keys(policy.models)).toEqual(["local", ...DEFAULT_MODELS.openai!]);
    expect(policy.models["gpt-4o-mini"]).toMatchObject({ provider: "openai", model: "gpt-4o-mini" });
    // Deterministic: the same input, the same bytes (the manifest pins the hash).
    expect(devTrustPolicy({ modelPort: 4443, localKey: false, providers: [{ env: "OPENAI_API_KEY", name: "openai", kind: "openai" }], kmsKeyArn: DEV_KEY.arn })).toBe(text);
  });
});

describe("the banner", () => {
  const policy = parseTrustPolicy(
    new TextEncoder().encode(
      JSON.stringify(
        trust({
          providers: [
            { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
            { name: "claude", kind: "anthropic", secret: "ANTHROPIC_API_KEY" },
            { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example/v1", capabilities: { images: false } },
          ],
          models: { fast: { provider: "openai", model: "gpt-4o-mini" }, haiku: { provider: "claude", model: "claude-haiku-4-5" } },
        }),
      ),
    ),
    { dev: true },
  );
  const text = bannerText({
    origin: "https://127.0.0.1:8443",
    policy,
    source: "--config dev.json",
    notes: ["added secrets.kmsKeyArn x"],
    measurements: { 0: "00" },
    trustFile: "/s/trust-policy.json",
    policySha256: "aa",
    configSha256: "bb",
    tlsSpkiSha256: "cc",
    manifestFile: "/s/manifest.json",
    tokenFile: "/s/client-token",
    logDir: "/s/logs",
    sealedSecrets: ["OPENAI_API_KEY"],
  });

  it("states each provider's origin and effective capabilities, defaults named, and what egw dev added", () => {
    expect(text).toContain("openai (openai) → https://api.openai.com, key OPENAI_API_KEY (sealed under the local KMS): chat, embeddings, images");
    expect(text).toContain("claude (anthropic) → https://api.anthropic.com, key ANTHROPIC_API_KEY: chat; off: embeddings, images");
    expect(text).toContain("acme (openai-compatible) → https://llm.acme.example: chat, embeddings; off: images (chat, embeddings: not in the policy, on by default)");
    expect(text).toContain("models (/v1/models): fast, haiku");
    expect(text).toContain('no route names acme: call them as "<provider>/<model id>"');
    expect(text).toContain("egw dev added secrets.kmsKeyArn x");
  });

  it("prints a program per client, each valid TypeScript as printed, with the manifest, the token file and a fitting model", () => {
    const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)\n```$/gm)].map((m) => m[1]!);
    expect(blocks).toEqual(clientSnippets({ origin: "https://127.0.0.1:8443", manifestFile: "/s/manifest.json", tokenFile: "/s/client-token", policy }).map((s) => s.code));
    expect(blocks).toHaveLength(4);
    for (const code of blocks) {
      const out = ts.transpileModule(code, { reportDiagnostics: true, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
      expect(out.diagnostics ?? []).toEqual([]);
      expect(code).toContain('loadPolicyFile("/s/manifest.json"');
      expect(code).toContain('readFileSync("/s/client-token"');
      expect(code).toContain("createVerifiedFetch");
    }
    expect(blocks[0]).toContain('model: "fast"');
    expect(blocks[1]).toContain('new Anthropic({ baseURL: "https://127.0.0.1:8443"');
    expect(blocks[1]).toContain('model: "haiku"');
    expect(blocks[2]).toContain('httpOptions: { baseUrl: "https://127.0.0.1:8443", fetch: verifiedFetch }');
    expect(blocks[3]).toContain('createOpenAI({ baseURL: "https://127.0.0.1:8443/v1", apiKey: token, fetch: verifiedFetch })');
  });

  it("a transpile check that can fail: a broken program is reported", () => {
    const out = ts.transpileModule("const x = ;", { reportDiagnostics: true, compilerOptions: { module: ts.ModuleKind.ESNext } });
    expect((out.diagnostics ?? []).length).toBeGreaterThan(0);
  });
});

describe("a child's own error on the terminal", () => {
  it("takes the line egw prints for a failed command, else the last error event with its code", () => {
    expect(childFailure(['{"level":"info","event":"x"}', "egw host: ERR_LISTEN_FAILED: listen tcp://127.0.0.1:8443 failed (EADDRINUSE)"])).toBe(
      "egw host: ERR_LISTEN_FAILED: listen tcp://127.0.0.1:8443 failed (EADDRINUSE)",
    );
    expect(childFailure(['{"level":"error","event":"enclave.boot_failed","code":"ERR_SECRET_MISSING"}', '{"level":"info","event":"y"}'])).toBe(
      "enclave.boot_failed: ERR_SECRET_MISSING",
    );
    expect(childFailure(['{"level":"info","event":"y"}'])).toBeUndefined();
  });
});

describe("the examples under infra/dev/examples", () => {
  const examples = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../infra/dev/examples");

  it("dev-config.json loads as documented: defaults added where no route names a provider, the Groq key from MY_GROQ_KEY, capabilities stated", async () => {
    const c = await readDevConfig(path.join(examples, "dev-config.json"));
    const p = prepareTrustPolicy(c.trustPolicy, DEV_KEY);
    checkTogether(p.bytes, operationsWithDevClient(c.operations, TOKEN_SHA), c.trustPolicy, c.operations);
    expect(p.notes).toEqual([expect.stringMatching(/^added default routes for provider anthropic/), expect.stringMatching(/^added secrets\.kmsKeyArn/)]);
    const secrets = secretsFromEnv(p.policy, { OPENAI_API_KEY: "a", ANTHROPIC_API_KEY: "b", MY_GROQ_KEY: "c" }, c.secretsEnv);
    expect(secrets.map((s) => [s.provider, s.env])).toEqual([
      ["openai", "OPENAI_API_KEY"],
      ["anthropic", "ANTHROPIC_API_KEY"],
      ["groq", "MY_GROQ_KEY"],
    ]);
    expect(describeCapabilities(p.policy.providers.find((x) => x.name === "groq")!)).toBe("chat; off: embeddings, images");
  });

  it("dev-config-mock.json: accepted by egw dev, refused by the enclave with the real NSM", async () => {
    const c = await readDevConfig(path.join(examples, "dev-config-mock.json"));
    const p = prepareTrustPolicy(c.trustPolicy, DEV_KEY);
    expect(p.policy.providers.map((x) => x.origin)).toEqual(["http://127.0.0.1:4010", "http://127.0.0.1:4011"]);
    const opsBytes = operationsWithDevClient(c.operations, TOKEN_SHA);
    expect(() => runtimeConfigFor({ trustPolicyBytes: p.bytes, operationsBytes: opsBytes, attester: { kind: "nsm" } as never })).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID" }),
    );
  });
});
