import OpenAI from "openai";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../enclave/auth.js";
import { DEFAULT_EGRESS_LIMITS, startEgressProxy } from "../../host/egress/index.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * The enclave's upstream calls go through the host's CONNECT proxy, which
 * enforces its own allowlist; the enclave's allowlist still applies first.
 */
let mock: MockOpenAI;
let h: Harness;
let proxy: Awaited<ReturnType<typeof startEgressProxy>>;
const registry = new Registry();

beforeAll(async () => {
  mock = await startMockOpenAI();
  const host = new URL(mock.url).host;
  const [hostname, port] = host.split(":");
  proxy = await startEgressProxy({
    listen: { host: "127.0.0.1", port: 0 },
    rules: [{ host: hostname!, port: Number(port), allowPrivate: true }],
    limits: DEFAULT_EGRESS_LIMITS,
    registry,
  });
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "openai", kind: "openai", baseUrl: mock.url, secret: "K" },
        { name: "other", kind: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1" },
      ],
      models: { gpt: { provider: "openai", model: "gpt-4o" }, other: { provider: "other", model: "x" } },
      egressAllowlist: [host, "127.0.0.1:9"],
      clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
      limits: { maxRetries: 0 },
    }),
    secrets: new Map([["K", "sk-proxy-test"]]),
    egressProxy: `http://127.0.0.1:${proxy.port}`,
  });
});
afterAll(async () => {
  await h?.close();
  await proxy?.close({ drainMs: 100 });
  await mock?.close();
});

describe("enclave egress through the host CONNECT proxy", () => {
  it("reaches an allowed provider through a tunnel", async () => {
    const openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
    const res = await openai.chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "through the tunnel" }] });
    expect(res.choices[0]!.message.content).toBe("This is a mock reply.");
    expect(mock.requests.at(-1)!.headers.authorization).toBe("Bearer sk-proxy-test");
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/egw_egress_connections_total\{outcome="(tunnel|allowed|closed)[^"]*"\} [1-9]/);
  });

  it("a destination the enclave allows but the host proxy denies fails as unreachable (502)", async () => {
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "other", messages: [{ role: "user", content: "x" }] }),
    });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_unreachable");
    expect(await registry.metrics()).toMatch(/egw_egress_denials_total\{rule="[a-z_]+"\} [1-9]/);
  });
});
