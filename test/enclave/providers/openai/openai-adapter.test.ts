/**
 * The OpenAI(-compatible) adapter against the local mock: what goes on the
 * wire (path, headers, exact body bytes), what comes back (shapes checked,
 * extra fields kept), streaming chunk by chunk, embeddings, images with
 * ModelArk/Seedream fields, capabilities and configuration guards.
 * Failures (status, malformed, cut-off, connect, abort) are in
 * openai-faults.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { createOpenAIAdapter } from "../../../../enclave/providers/openai/openai-adapter.js";
import { UpstreamError, type ChatCompletionChunk, type ChatRequest, type ProviderCallContext } from "../../../../enclave/providers/types.js";
import { MOCK_DEFAULT_CONTENT, startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";

const NOW = new Date("2031-02-03T04:05:06.000Z");

function context(overrides: Partial<ProviderCallContext> = {}): ProviderCallContext {
  return { fetch: globalThis.fetch, signal: new AbortController().signal, upstreamModel: "gpt-upstream", now: () => NOW, ...overrides };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const request: ChatRequest = {
  model: "client-alias",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: [{ type: "text", text: "Hi there" }] },
  ],
  temperature: 0.2,
  // Fields the adapter does not know must reach the provider untouched.
  reasoning_effort: "low",
  provider: { order: ["a", "b"], allow_fallbacks: false },
  metadata: { nested: { deep: [1, 2, { x: null }] } },
  seed: 7,
};

let mock: MockOpenAI;
beforeAll(async () => {
  mock = await startMockOpenAI();
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => mock.reset());

function adapter(extra: Partial<Parameters<typeof createOpenAIAdapter>[0]> = {}) {
  return createOpenAIAdapter({ name: "mockai", baseUrl: mock.url, apiKey: () => "sk-test-key", ...extra });
}

describe("chat", () => {
  it("POSTs {baseUrl}/chat/completions with the body as given, model replaced", async () => {
    const result = await adapter({ extraHeaders: { "X-Title": "egw tests" } }).chat(request, context());
    expect(mock.requests).toHaveLength(1);
    const seen = mock.requests[0]!;
    expect(seen.method).toBe("POST");
    expect(seen.path).toBe("/v1/chat/completions");
    expect(seen.headers.authorization).toBe("Bearer sk-test-key");
    expect(seen.headers["content-type"]).toBe("application/json");
    expect(seen.headers["x-title"]).toBe("egw tests");
    // Byte-exact: the same JSON the client sent, only `model` swapped in place.
    expect(seen.rawBody.toString("utf8")).toBe(JSON.stringify({ ...request, model: "gpt-upstream" }));
    expect(seen.body).toEqual({ ...request, model: "gpt-upstream" });

    expect(result.object).toBe("chat.completion");
    expect(result.model).toBe("gpt-upstream");
    expect(result.choices[0]!.message.content).toBe(MOCK_DEFAULT_CONTENT);
    expect(result.choices[0]!.finish_reason).toBe("stop");
    // Extra upstream fields pass through.
    expect((result as unknown as Record<string, unknown>).service_tier).toBe("default");
    expect(result.system_fingerprint).toBe("fp_mock");
  });

  it("sends no authorization header when no key is configured, and reads the key on every call", async () => {
    await createOpenAIAdapter({ name: "ollama", baseUrl: mock.url }).chat(request, context());
    expect(mock.requests[0]!.headers.authorization).toBeUndefined();

    let n = 0;
    const rotating = adapter({ apiKey: async () => `sk-${++n}` });
    await rotating.chat(request, context());
    await rotating.chat(request, context());
    expect(mock.requests.slice(1).map((r) => r.headers.authorization)).toEqual(["Bearer sk-1", "Bearer sk-2"]);
  });

  it("refuses an unusable key without sending anything or quoting it", async () => {
    for (const key of ["", "sk-bad\r\nx-evil: 1"]) {
      const err = await adapter({ apiKey: () => key })
        .chat(request, context())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe("internal_error");
      expect((err as Error).message).not.toContain("sk-bad");
    }
    expect(mock.requests).toHaveLength(0);
  });

  it("a non-streamed call drops stream and stream_options so JSON comes back", async () => {
    await adapter().chat({ ...request, stream: true, stream_options: { include_usage: true } }, context());
    const body = mock.requests[0]!.body as Record<string, unknown>;
    expect(body.stream).toBeUndefined();
    expect(body.stream_options).toBeUndefined();
    expect(body.reasoning_effort).toBe("low");
  });

  it("returns tool calls", async () => {
    mock.setScenario({ toolCalls: [{ name: "get_weather", arguments: '{"city":"Paris"}', id: "call_1" }] });
    const result = await adapter().chat({ ...request, tools: [{ type: "function", function: { name: "get_weather" } }] }, context());
    expect(result.choices[0]!.finish_reason).toBe("tool_calls");
    expect(result.choices[0]!.message.tool_calls).toEqual([{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }]);
  });

  it("normalizes the base URL and reports it in info", () => {
    const a = createOpenAIAdapter({ name: "openai", kind: "openai", baseUrl: "https://api.openai.com/v1/" });
    expect(a.info).toEqual({ name: "openai", kind: "openai", baseUrl: "https://api.openai.com/v1", requestIdHeader: "x-request-id" });
    expect(createOpenAIAdapter({ name: "x", baseUrl: "https://api.x.ai/v1" }).info.kind).toBe("openai-compatible");
  });

  it("rejects bad configuration", () => {
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "api.openai.com/v1" })).toThrow(/baseUrl/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "ftp://example.com/v1" })).toThrow(/baseUrl/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "https://u:p@example.com/v1" })).toThrow(/credentials/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "https://example.com/v1?key=1" })).toThrow(/query/);
    expect(() => createOpenAIAdapter({ name: "", baseUrl: "https://example.com/v1" })).toThrow(/name/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "https://example.com/v1", extraHeaders: { Authorization: "Bearer y" } })).toThrow(/authorization/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "https://example.com/v1", extraHeaders: { "x-a": "1\r\nx-b: 2" } })).toThrow(/single-line/);
    expect(() => createOpenAIAdapter({ name: "x", baseUrl: "https://example.com/v1", extraHeaders: { "bad name": "1" } })).toThrow(/header name/);
  });
});

describe("chatStream", () => {
  it("sends stream: true with stream_options as given and yields the upstream chunks in order", async () => {
    const chunks = await collect(adapter().chatStream({ ...request, stream_options: { include_usage: true } }, context()));
    const seen = mock.requests[0]!;
    expect(seen.rawBody.toString("utf8")).toBe(JSON.stringify({ ...request, stream_options: { include_usage: true }, model: "gpt-upstream", stream: true }));
    expect(seen.headers.accept).toContain("text/event-stream");

    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(MOCK_DEFAULT_CONTENT);
    const finish = chunks[chunks.length - 2]!;
    expect(finish.choices[0]!.finish_reason).toBe("stop");
    const usage = chunks[chunks.length - 1]!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage?.completion_tokens).toBe(MOCK_DEFAULT_CONTENT.split(" ").length);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it("has no usage chunk without include_usage", async () => {
    const chunks = await collect(adapter().chatStream(request, context()));
    expect(chunks.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("stop");
  });

  it("passes tool-call deltas through as split by the provider", async () => {
    const args = '{"city":"Paris","days":3}';
    mock.setScenario({ toolCalls: [{ name: "get_weather", arguments: args, id: "call_9" }] });
    const chunks = await collect(adapter().chatStream(request, context()));
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas[0]).toEqual({ index: 0, id: "call_9", type: "function", function: { name: "get_weather", arguments: "" } });
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.map((d) => d.function?.arguments ?? "").join("")).toBe(args);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("stops at [DONE] and ignores anything after it", async () => {
    const chunk = (content: string) =>
      JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: { content }, finish_reason: null }] });
    mock.setScenario({ rawEvents: [chunk("one"), "[DONE]", chunk("after"), "not json at all"] });
    const chunks = await collect(adapter().chatStream(request, context()));
    expect(chunks.map((c) => c.choices[0]!.delta.content)).toEqual(["one"]);
  });

  it("keeps extra chunk fields (OpenRouter-style reasoning, native_finish_reason)", async () => {
    const event = {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      provider: "x",
      choices: [{ index: 0, delta: { content: "hi", reasoning: "r" }, finish_reason: null, native_finish_reason: null }],
    };
    mock.setScenario({ rawEvents: [JSON.stringify(event)] });
    const chunks = await collect(adapter().chatStream(request, context()));
    expect(chunks).toEqual([event]);
  });

  it("yields the first chunk while the provider still holds the stream open (no buffering)", async () => {
    mock.setScenario({ stallAfterChunks: 1 });
    const iterator = adapter().chatStream(request, context())[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(first.value.choices[0].delta.role).toBe("assistant");
    // The provider has not sent anything else yet; the rest arrives only once released.
    let settled = false;
    const second = iterator.next().then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    mock.releaseStalled();
    expect((await second).done).toBe(false);
    const rest: ChatCompletionChunk[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value);
    expect(rest[rest.length - 1]!.choices[0]!.finish_reason).toBe("stop");
  });

  it("frees the upstream connection when the consumer stops early", async () => {
    const own = await startMockOpenAI({ scenario: { stallAfterChunks: 1 } });
    try {
      const a = createOpenAIAdapter({ name: "mockai", baseUrl: own.url });
      for await (const chunk of a.chatStream(request, context())) {
        expect(chunk.choices[0]!.delta.role).toBe("assistant");
        expect(own.activeStreams()).toBe(1);
        break;
      }
      for (let i = 0; i < 100 && own.activeStreams() > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(own.activeStreams()).toBe(0);
    } finally {
      await own.close();
    }
  });
});

describe("embeddings", () => {
  it("POSTs {baseUrl}/embeddings with fields passed through and returns the vectors", async () => {
    const body = { model: "alias", input: ["a b", "c"], encoding_format: "base64" as const, dimensions: 4, user: "u-1" };
    const result = await adapter().embeddings!(body, context());
    const seen = mock.requests[0]!;
    expect(seen.path).toBe("/v1/embeddings");
    expect(seen.rawBody.toString("utf8")).toBe(JSON.stringify({ ...body, model: "gpt-upstream" }));
    expect(result.data).toHaveLength(2);
    expect(typeof result.data[0]!.embedding).toBe("string");
    expect(Buffer.from(result.data[0]!.embedding as string, "base64")).toHaveLength(16);
    expect(result.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
  });

  it("rejects a response without vectors", async () => {
    for (const rawBody of [
      { object: "list", data: [{ index: 0, embedding: ["x"] }], model: "m", usage: { prompt_tokens: 1, total_tokens: 1 } },
      { object: "list", model: "m" },
      { data: [], model: "m" },
    ]) {
      mock.setScenario({ rawBody });
      const err = await adapter().embeddings!({ model: "a", input: "x" }, context()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).kind).toBe("malformed");
    }
  });
});

describe("images (ModelArk / Seedream)", () => {
  let ark: MockOpenAI;
  beforeAll(async () => {
    ark = await startMockOpenAI({ basePath: "/api/v3" });
  });
  afterAll(async () => {
    await ark.close();
  });

  // Shape of ModelArk's POST /api/v3/images/generations (Seedream 4.x):
  // OpenAI's fields plus image, seed, watermark, sequential_image_generation …
  const seedream = {
    model: "seedream",
    prompt: "A lighthouse at dawn",
    size: "2K",
    response_format: "b64_json" as const,
    watermark: false,
    seed: 42,
    guidance_scale: 2.5,
    image: ["https://example.com/ref.png"],
    sequential_image_generation: "disabled",
    sequential_image_generation_options: { max_images: 1 },
  };

  it("POSTs {baseUrl}/images/generations with every field untouched", async () => {
    const a = createOpenAIAdapter({ name: "seedream", baseUrl: ark.url, apiKey: () => "ark-key" });
    const result = await a.images!(seedream, context({ upstreamModel: "seedream-4-0-250828" }));
    const seen = ark.requests[0]!;
    expect(seen.path).toBe("/api/v3/images/generations");
    expect(seen.headers.authorization).toBe("Bearer ark-key");
    expect(seen.rawBody.toString("utf8")).toBe(JSON.stringify({ ...seedream, model: "seedream-4-0-250828" }));
    expect(result.data[0]!.b64_json).toMatch(/^iVBORw0KGgo/);
  });

  it("keeps ModelArk's extra response fields", async () => {
    const upstream = {
      model: "seedream-4-0-250828",
      created: 1757469561,
      data: [{ url: "https://ark.example/img.jpeg", size: "2048x2048" }, { error: { code: "OutputImageSensitiveContentDetected", message: "x" } }],
      usage: { generated_images: 1, output_tokens: 16384, total_tokens: 16384 },
    };
    ark.setScenario({ rawBody: upstream });
    const a = createOpenAIAdapter({ name: "seedream", baseUrl: ark.url });
    expect(await a.images!({ model: "s", prompt: "p" }, context())).toEqual(upstream);
    ark.setScenario(undefined);
  });

  it("refuses stream: true before anything goes upstream", async () => {
    const before = ark.requests.length;
    const a = createOpenAIAdapter({ name: "seedream", baseUrl: ark.url });
    const err = await a.images!({ ...seedream, stream: true }, context()).catch((e: unknown) => e);
    expect((err as GatewayError).code).toBe("invalid_request");
    expect(ark.requests.length).toBe(before);
  });

  it("rejects an images response without data", async () => {
    ark.setScenario({ rawBody: { created: 1 } });
    const a = createOpenAIAdapter({ name: "seedream", baseUrl: ark.url });
    const err = await a.images!({ model: "s", prompt: "p" }, context()).catch((e: unknown) => e);
    expect((err as UpstreamError).kind).toBe("malformed");
    ark.setScenario(undefined);
  });
});

describe("capabilities", () => {
  it("a disabled capability throws unsupported_capability and sends nothing", async () => {
    const a = adapter({ capabilities: { chat: false, embeddings: false, images: false } });
    const attempts: Promise<unknown>[] = [
      a.chat(request, context()),
      collect(a.chatStream(request, context())),
      a.embeddings!({ model: "e", input: "x" }, context()),
      a.images!({ model: "i", prompt: "x" }, context()),
    ];
    for (const attempt of attempts) {
      const err = await attempt.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe("unsupported_capability");
      expect((err as GatewayError).status).toBe(400);
    }
    expect(mock.requests).toHaveLength(0);
  });

  it("capabilities default to enabled", async () => {
    const a = adapter({ capabilities: { images: false } });
    await a.embeddings!({ model: "e", input: "x" }, context());
    await expect(a.images!({ model: "i", prompt: "x" }, context())).rejects.toMatchObject({ code: "unsupported_capability" });
  });
});
