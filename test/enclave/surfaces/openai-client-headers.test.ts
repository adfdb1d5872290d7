/**
 * OpenAI's own request headers (OpenAI-Beta, -Organization, -Project) on the
 * OpenAI surfaces other than Responses (responses-native.test.ts has those):
 * forwarded as sent to kind openai, under the gateway's key (a client cannot
 * override authorization), never to another provider (an openai-compatible
 * endpoint included), bounded before anything goes upstream, never logged.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { gatewayApp, post, TOKEN, type GatewayApp } from "../../helpers/gateway-app.js";
import { startMockOpenAI, type MockOpenAI } from "../../helpers/mock-openai.js";

const SENT = { "openai-beta": "assistants=v2", "openai-organization": "org-canary-7e1", "openai-project": "proj_canary_9f2" };
let g: GatewayApp;
let openaiMock: MockOpenAI;
let compatMock: MockOpenAI;

beforeAll(async () => {
  openaiMock = await startMockOpenAI();
  compatMock = await startMockOpenAI();
  g = await gatewayApp({
    config: {
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: openaiMock.url, secret: "OPENAI_API_KEY" },
        { name: "compat", kind: "openai-compatible", baseUrl: compatMock.url, secret: "COMPAT_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        gpt: { provider: "openai", model: "gpt-4.1" },
        compat: { provider: "compat", model: "llama" },
      },
    },
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-upstream"],
      ["COMPAT_KEY", "sk-compat-upstream"],
    ]),
    upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
  });
});
afterAll(async () => {
  await openaiMock?.close();
  await compatMock?.close();
});
beforeEach(() => {
  openaiMock.reset();
  compatMock.reset();
});

const forwarded = (m: MockOpenAI) => {
  const h = m.requests.at(-1)!.headers;
  return { beta: h["openai-beta"], org: h["openai-organization"], project: h["openai-project"], authorization: h.authorization };
};

describe("OpenAI's headers on the OpenAI surfaces", () => {
  const sdk = () =>
    new OpenAI({ apiKey: TOKEN, baseURL: "http://gateway.test/v1", fetch: (url, init) => Promise.resolve(g.app.request(String(url), init)), maxRetries: 0, defaultHeaders: SENT });

  it.each([
    ["chat, non-streamed", () => sdk().chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "hi" }] })],
    [
      "chat, streamed",
      async () => {
        for await (const _ of await sdk().chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "hi" }], stream: true }));
      },
    ],
    ["embeddings", () => sdk().embeddings.create({ model: "gpt", input: "x" })],
    ["images", () => sdk().images.generate({ model: "gpt", prompt: "a cat" })],
  ])("%s: reach kind openai as sent, the gateway's key over any client authorization", async (_name, call) => {
    await call();
    expect(forwarded(openaiMock)).toEqual({
      beta: SENT["openai-beta"],
      org: SENT["openai-organization"],
      project: SENT["openai-project"],
      authorization: "Bearer sk-openai-upstream",
    });
  });

  it("moderations: forwarded to kind openai too", async () => {
    openaiMock.setScenario({ rawBody: JSON.stringify({ id: "modr-1", model: "omni-moderation-latest", results: [{ flagged: false, categories: {}, category_scores: {} }] }) });
    const res = await post(g, "/v1/moderations", { model: "gpt", input: "x" }, SENT);
    expect(res.status).toBe(200);
    expect(forwarded(openaiMock)).toMatchObject({ org: SENT["openai-organization"], project: SENT["openai-project"] });
  });

  it("never to an openai-compatible endpoint: an organization id is OpenAI's to read", async () => {
    const res = await post(g, "/v1/chat/completions", { model: "compat", messages: [{ role: "user", content: "hi" }] }, SENT);
    expect(res.status).toBe(200);
    expect(forwarded(compatMock)).toEqual({ beta: undefined, org: undefined, project: undefined, authorization: "Bearer sk-compat-upstream" });
  });

  it("a header over the bound, or with a byte no header may carry, is a 400 naming it, before anything goes upstream", async () => {
    const long = await post(g, "/v1/chat/completions", { model: "gpt", messages: [{ role: "user", content: "hi" }] }, { "openai-organization": "o".repeat(513) });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { param: string } }).error.param).toBe("openai-organization");
    const nonAscii = await post(g, "/v1/embeddings", { model: "gpt", input: "x" }, { "openai-project": "proj_é" });
    expect(nonAscii.status).toBe(400);
    expect(openaiMock.requests).toHaveLength(0);
  });

  it("their values are never logged", () => {
    expect(g.logs.join("\n")).not.toMatch(/org-canary-7e1|proj_canary_9f2|assistants=v2/);
  });
});
