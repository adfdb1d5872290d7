import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeReceipt, RECEIPT_HEADER, splitStreamReceipt } from "../../attestation/receipt.js";
import { hashToken } from "../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { mockEvents, startMockAnthropic, type MockAnthropic } from "../helpers/mock-anthropic.js";
import { startMockGemini, type MockGemini } from "../helpers/mock-gemini.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * Every surface over every provider kind, with the official SDKs as clients
 * and byte-accurate local mocks as upstreams.
 */
const LIMITED_TOKEN = "egw-limited-token";
let h: Harness;
let mocks: { openai: MockOpenAI; anthropic: MockAnthropic; gemini: MockGemini };
let openai: OpenAI;
let anthropic: Anthropic;

const TOOL = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

beforeAll(async () => {
  mocks = {
    openai: await startMockOpenAI({ scenario: { content: "hello from openai mock" } }),
    anthropic: await startMockAnthropic({ apiKey: "sk-ant-test" }),
    gemini: await startMockGemini({ apiKey: "gem-test" }),
  };
  const hostOf = (u: string) => new URL(u).host;
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mocks.openai.url, secret: "OPENAI_API_KEY" },
        { name: "anthropic", kind: "anthropic", baseUrl: mocks.anthropic.url, secret: "ANTHROPIC_API_KEY" },
        { name: "gemini", kind: "gemini", baseUrl: mocks.gemini.url, secret: "GEMINI_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        "gpt-4o": { provider: "openai", model: "gpt-4o" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
        gemini: { provider: "gemini", model: "gemini-2.5-flash" },
      },
      prefixRouting: true,
      egressAllowlist: [hostOf(mocks.openai.url), hostOf(mocks.anthropic.url), hostOf(mocks.gemini.url)],
      clients: [
        { name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] },
        { name: "limited", tokenSha256: hashToken(LIMITED_TOKEN), models: ["local"], rateLimitPerMinute: 3 },
      ],
    }),
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-test"],
      ["ANTHROPIC_API_KEY", "sk-ant-test"],
      ["GEMINI_API_KEY", "gem-test"],
    ]),
  });
  openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
});
afterAll(async () => {
  await h?.close();
  await Promise.all(Object.values(mocks ?? {}).map((m) => m.close()));
});

const MODELS = ["local", "gpt-4o", "claude", "gemini"] as const;

describe("OpenAI surface over every provider", () => {
  for (const model of MODELS) {
    it(`${model}: chat, non-streamed`, async () => {
      const res = await openai.chat.completions.create({
        model,
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "say hello" },
        ],
      });
      expect(res.choices[0]!.message.role).toBe("assistant");
      expect(typeof res.choices[0]!.message.content).toBe("string");
      expect(res.choices[0]!.message.content!.length).toBeGreaterThan(0);
      expect(res.usage?.total_tokens).toBeGreaterThan(0);
    });

    it(`${model}: chat, streamed, with usage`, async () => {
      const stream = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "say hello" }], stream: true, stream_options: { include_usage: true } });
      let text = "";
      let usage = 0;
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage.total_tokens;
      }
      expect(text.length).toBeGreaterThan(0);
      expect(finish).toBe("stop");
      expect(usage).toBeGreaterThan(0);
    });
  }

  it("tools through Anthropic: tool_use becomes tool_calls, and tool results go back", async () => {
    mocks.anthropic.enqueue({ content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] });
    const res = await openai.chat.completions.create({
      model: "claude",
      messages: [{ role: "user", content: "weather?" }],
      tools: [{ type: "function", function: TOOL }],
      tool_choice: "auto",
    });
    const call = res.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(res.choices[0]!.finish_reason).toBe("tool_calls");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
    const sent = mocks.anthropic.requests.at(-1)!.body as { tools: { name: string; input_schema: unknown }[]; tool_choice: unknown };
    expect(sent.tools[0]!.name).toBe("get_weather");
    expect(sent.tool_choice).toEqual({ type: "auto" });
    await openai.chat.completions.create({
      model: "claude",
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function", function: { name: "get_weather", arguments: call.function.arguments } }] },
        { role: "tool", tool_call_id: call.id, content: "sunny" },
      ],
      tools: [{ type: "function", function: TOOL }],
    });
    const second = mocks.anthropic.requests.at(-1)!.body as { messages: { role: string; content: { type: string }[] }[] };
    expect(second.messages.at(-1)!.content[0]!.type).toBe("tool_result");
  });

  it("tools through Gemini: functionDeclarations out, functionCall back", async () => {
    mocks.gemini.setScenario({ functionCalls: [{ name: "get_weather", args: { city: "Oslo" } }] } as never);
    const res = await openai.chat.completions.create({ model: "gemini", messages: [{ role: "user", content: "weather?" }], tools: [{ type: "function", function: TOOL }] });
    const call = res.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Oslo" });
    const sent = mocks.gemini.requests.at(-1)!;
    expect(sent.headers["x-goog-api-key"]).toBe("gem-test");
    expect(JSON.stringify(sent.body)).toContain("functionDeclarations");
    mocks.gemini.setScenario({} as never);
  });

  it("images in messages reach the provider in its own format", async () => {
    const dataUrl = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    await openai.chat.completions.create({
      model: "claude",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what is this" },
            { type: "image_url", image_url: { url: dataUrl } },
          ],
        },
      ],
    });
    expect(JSON.stringify(mocks.anthropic.requests.at(-1)!.body)).toContain('"type":"base64"');
    await openai.chat.completions.create({
      model: "gemini",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what is this" },
            { type: "image_url", image_url: { url: dataUrl } },
          ],
        },
      ],
    });
    expect(JSON.stringify(mocks.gemini.requests.at(-1)!.body)).toContain("inlineData");
  });

  it("embeddings through OpenAI and Gemini", async () => {
    const a = await openai.embeddings.create({ model: "gpt-4o", input: "x" });
    expect(a.data[0]!.embedding.length).toBeGreaterThan(0);
    const b = await openai.embeddings.create({ model: "gemini", input: ["x", "y"] });
    expect(b.data).toHaveLength(2);
  });

  it("images through an OpenAI-compatible endpoint; unsupported on Anthropic is a clear 400", async () => {
    const img = await openai.images.generate({ model: "gpt-4o", prompt: "a cat" });
    expect(img.data?.length).toBeGreaterThan(0);
    await expect(openai.images.generate({ model: "claude", prompt: "a cat" })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe("Anthropic surface over every provider", () => {
  for (const model of MODELS) {
    it(`${model}: messages.create`, async () => {
      const msg = await anthropic.messages.create({ model, max_tokens: 100, system: "be brief", messages: [{ role: "user", content: "say hello" }] });
      expect(msg.type).toBe("message");
      expect(msg.role).toBe("assistant");
      expect(msg.content[0]!.type).toBe("text");
      expect(msg.stop_reason).toBe("end_turn");
    });

    it(`${model}: messages.stream → finalMessage`, async () => {
      const stream = anthropic.messages.stream({ model, max_tokens: 100, messages: [{ role: "user", content: "say hello" }] });
      let deltas = 0;
      stream.on("text", () => deltas++);
      const final = await stream.finalMessage();
      expect(deltas).toBeGreaterThan(0);
      expect(final.content[0]!.type).toBe("text");
      expect(final.usage.output_tokens).toBeGreaterThan(0);
    });
  }

  it("an Anthropic route is a pass-through: Anthropic-only fields reach the provider untouched, events come back as sent", async () => {
    const request = {
      model: "claude",
      max_tokens: 64,
      top_k: 5,
      metadata: { user_id: "u-1" },
      thinking: { type: "enabled", budget_tokens: 1024 },
      messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }] }],
    };
    await anthropic.messages.create(request as never);
    const sent = mocks.anthropic.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ ...request, model: "claude-sonnet-4-5", stream: false });
    const raw = await h.fetch(`${h.baseURL}/messages`, {
      method: "POST",
      headers: { "x-api-key": CLIENT_TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ ...request, stream: true }),
    });
    const text = Buffer.from(splitStreamReceipt(new Uint8Array(await raw.arrayBuffer()))!.signed).toString();
    const upstream = mockEvents({}, "claude-sonnet-4-5", "x"); // ping included: passed through as sent
    const names = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(names).toEqual(upstream.map((e) => e.event));
  });

  it("the streamed receipt is present, signed over the exact bytes, and invisible to the SDK's raw event iteration", async () => {
    const body = JSON.stringify({ model: "claude", max_tokens: 50, stream: true, messages: [{ role: "user", content: "hi" }] });
    const raw = await h.fetch(`${h.baseURL}/messages`, { method: "POST", headers: { "x-api-key": CLIENT_TOKEN, "content-type": "application/json" }, body });
    const bytes = new Uint8Array(await raw.arrayBuffer());
    const split = splitStreamReceipt(bytes)!;
    expect(split).not.toBeNull();
    expect(Buffer.from(split.signed).toString()).toMatch(/event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/);
    expect(decodeReceipt(split.receipt).claims).toMatchObject({ surface: "messages", stream: true, provider: "anthropic", status: 200 });
    const types: string[] = [];
    for await (const event of await anthropic.messages.create({ model: "claude", max_tokens: 50, stream: true, messages: [{ role: "user", content: "hi" }] }))
      types.push(event.type);
    expect(types[0]).toBe("message_start");
    expect(types.at(-1)).toBe("message_stop");
    expect(new Set(types)).toEqual(new Set(["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]));
  });

  it("tools over the Anthropic surface with a non-Anthropic model", async () => {
    const msg = await anthropic.messages.create({
      model: "local",
      max_tokens: 100,
      messages: [{ role: "user", content: "weather in Rome" }],
      tools: [{ name: TOOL.name, description: TOOL.description, input_schema: TOOL.parameters as Anthropic.Tool.InputSchema }],
    });
    expect(msg.stop_reason).toBe("tool_use");
    expect(msg.content.find((b) => b.type === "tool_use")).toBeTruthy();
  });

  it("x-api-key is accepted on the Anthropic surface; the SDK's errors are typed", async () => {
    const bad = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: "wrong", fetch: h.fetch, maxRetries: 0 });
    await expect(bad.messages.create({ model: "local", max_tokens: 10, messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(anthropic.messages.create({ model: "nope", max_tokens: 10, messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    const raw = await h.fetch(`${h.baseURL}/messages`, { method: "POST", headers: { "x-api-key": "wrong", "content-type": "application/json" }, body: "{}" });
    expect(raw.status).toBe(401);
    expect(await raw.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } });
    expect(raw.headers.get(RECEIPT_HEADER)).toBeTruthy();
  });

  it("x-api-key is not accepted on the OpenAI surface", async () => {
    const raw = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "x-api-key": CLIENT_TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }),
    });
    expect(raw.status).toBe(401);
  });

  it("an upstream 429 reaches the Anthropic SDK as RateLimitError", async () => {
    mocks.anthropic.setScenario({ status: 429, retryAfter: "0" });
    await expect(anthropic.messages.create({ model: "claude", max_tokens: 10, messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(Anthropic.RateLimitError);
    mocks.anthropic.setScenario({});
  });
});

describe("per-client model allowlist and rate limit", () => {
  it("a token may only use its models (403), and /v1/models lists only those", async () => {
    const limited = new OpenAI({ baseURL: h.baseURL, apiKey: LIMITED_TOKEN, fetch: h.fetch, maxRetries: 0 });
    const list = await limited.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["local"]);
    await expect(limited.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
  });

  it("the per-client rate limit answers 429 with retry-after", async () => {
    const limited = new OpenAI({ baseURL: h.baseURL, apiKey: LIMITED_TOKEN, fetch: h.fetch, maxRetries: 0 });
    let limitedCount = 0;
    for (let i = 0; i < 6; i++) {
      try {
        await limited.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] });
      } catch (err) {
        expect(err).toBeInstanceOf(OpenAI.RateLimitError);
        expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get("retry-after")).toBeTruthy();
        limitedCount++;
      }
    }
    expect(limitedCount).toBeGreaterThan(0);
    // The unlimited client is unaffected.
    await openai.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] });
  });
});
