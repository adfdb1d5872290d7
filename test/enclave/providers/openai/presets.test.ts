import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kindEntry } from "../../../../attestation/provider-catalog.js";
import { PROVIDER_KINDS } from "../../../../attestation/trust-policy.js";
import { hashToken } from "../../../../enclave/auth.js";
import { gatewayApp, TOKEN, type GatewayApp } from "../../../helpers/gateway-app.js";
import { startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";

/**
 * Each preset served by the OpenAI adapter: a request reaches a mock that
 * listens at the preset's own base path (its official URL's path, e.g.
 * Groq's /openai/v1, ModelArk's /api/v3) with `authorization: Bearer
 * <the preset's sealed key>`, and a capability the policy switched off
 * is refused before anything goes upstream. The origin is the mock's only
 * because development allows a baseUrl override (the codec test shows it is
 * refused outside development).
 */
const PRESETS = PROVIDER_KINDS.filter((k) => kindEntry(k).preset);
const mocks = new Map<string, MockOpenAI>();
/** The official base URL's path ("" for DeepSeek's bare origin). */
const pathOf = (kind: string) => new URL(kindEntry(kind as never).baseUrl!).pathname.replace(/\/+$/, "");
const CLIENTS = [{ name: "test", tokenSha256: hashToken(TOKEN), models: ["*"] }];

beforeAll(async () => {
  for (const kind of PRESETS) mocks.set(kind, await startMockOpenAI({ basePath: pathOf(kind) }));
});
afterAll(async () => {
  for (const m of mocks.values()) await m.close();
});

async function appFor(kind: string, capabilities?: Record<string, boolean>): Promise<GatewayApp> {
  const mock = mocks.get(kind)!;
  const base = `${new URL(mock.url).origin}${pathOf(kind)}`;
  return gatewayApp({
    config: {
      providers: [{ name: "p", kind, baseUrl: base, secret: "PRESET_KEY", ...(capabilities && { capabilities }) }],
      models: { m: { provider: "p", model: "upstream-model" } },
      clients: CLIENTS,
    },
    secrets: new Map([["PRESET_KEY", `sk-${kind}-0123456789`]]),
    upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
  });
}

function sdk(g: GatewayApp): OpenAI {
  return new OpenAI({ baseURL: "http://gateway.test/v1", apiKey: TOKEN, maxRetries: 0, fetch: (url, init) => Promise.resolve(g.app.request(String(url), init as RequestInit)) });
}

describe.each(PRESETS)("preset %s", (kind) => {
  it("a chat request reaches the preset's base path with its bearer key; streamed too", async () => {
    const g = await appFor(kind);
    const mock = mocks.get(kind)!;
    const out = await sdk(g).chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
    expect(out.choices[0]!.message.content).toBeTypeOf("string");
    const seen = mock.requests.at(-1)!;
    expect(seen.path).toBe(`${pathOf(kind)}/chat/completions`);
    expect(seen.headers.authorization).toBe(`Bearer sk-${kind}-0123456789`);
    expect(seen.body).toMatchObject({ model: "upstream-model" });
    const stream = await sdk(g).chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true });
    let chunks = 0;
    for await (const _ of stream) chunks++;
    expect(chunks).toBeGreaterThan(0);
  });

  it("what the kind does not serve, and what the policy switched off, is refused before anything goes upstream", async () => {
    const g = await appFor(kind, { streaming: false });
    const mock = mocks.get(kind)!;
    const before = mock.requests.length;
    await expect(sdk(g).chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true })).rejects.toMatchObject({
      status: 400,
      code: "unsupported_capability",
    });
    const serves = kindEntry(kind).serves;
    if (!serves.includes("embeddings")) await expect(sdk(g).embeddings.create({ model: "m", input: "x" })).rejects.toMatchObject({ status: 400, code: "unsupported_capability" });
    if (!serves.includes("images")) await expect(sdk(g).images.generate({ model: "m", prompt: "x" })).rejects.toMatchObject({ status: 400, code: "unsupported_capability" });
    expect(mock.requests.length).toBe(before);
  });
});

describe("capability switches on other kinds", () => {
  it("tools switched off on an openai-compatible entry: a request with tools is refused, one without passes", async () => {
    const mock = mocks.get("groq")!;
    const g = await gatewayApp({
      config: {
        providers: [{ name: "c", kind: "openai-compatible", baseUrl: `${new URL(mock.url).origin}/openai/v1`, secret: "C_KEY", capabilities: { tools: false } }],
        models: { m: { provider: "c", model: "x" } },
        clients: CLIENTS,
      },
      secrets: new Map([["C_KEY", "sk-c"]]),
      upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
    });
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    await expect(sdk(g).chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], tools })).rejects.toMatchObject({ code: "unsupported_capability" });
    await expect(sdk(g).chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] })).resolves.toBeDefined();
  });
});
