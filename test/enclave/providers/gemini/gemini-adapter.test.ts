import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { createGeminiAdapter, GEMINI_DEFAULT_BASE_URL } from "../../../../enclave/providers/gemini/gemini-adapter.js";
import { float32Base64 } from "../../../../enclave/providers/shared/float32-base64.js";
import type { ChatCompletionChunk, ChatRequest, ProviderAdapter, ProviderCallContext } from "../../../../enclave/providers/types.js";
import { mockEmbedding, startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";

const KEY = "AIzaSy-test-key-0123456789";
const NOW = new Date("2026-01-02T03:04:05Z");
let mock: MockGemini;
let adapter: ProviderAdapter;

function ctx(overrides: Partial<ProviderCallContext> = {}): ProviderCallContext {
  return { fetch: globalThis.fetch, signal: new AbortController().signal, upstreamModel: "gemini-2.5-flash", now: () => NOW, ...overrides };
}
const chatRequest = (extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: "alias", messages: [{ role: "user", content: "Say hello" }], ...extra });
async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const chunk of stream) out.push(chunk);
  return out;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  mock = await startMockGemini({ apiKey: KEY });
  adapter = createGeminiAdapter({ name: "gemini", baseUrl: `${mock.url}/`, apiKey: () => KEY });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.setScenario({});
  mock.requests.length = 0;
});

describe("adapter info", () => {
  it("is kind gemini, default base URL Google's", () => {
    expect(createGeminiAdapter({ name: "g", apiKey: () => "k" }).info).toEqual({
      name: "g",
      kind: "gemini",
      baseUrl: GEMINI_DEFAULT_BASE_URL,
      requestIdHeader: "x-goog-request-id",
    });
    expect(adapter.info).toEqual({ name: "gemini", kind: "gemini", baseUrl: mock.url, requestIdHeader: "x-goog-request-id" });
  });
});

describe("chat", () => {
  it("POSTs the translated body to :generateContent with the key in x-goog-api-key only", async () => {
    mock.setScenario({ text: "Hello there", responseId: "rid42" });
    const out = await adapter.chat(
      chatRequest({
        temperature: 0.3,
        messages: [
          { role: "system", content: "Be kind" },
          { role: "user", content: "Say hello" },
        ],
      }),
      ctx(),
    );
    expect(out).toEqual({
      id: "chatcmpl-rid42",
      object: "chat.completion",
      created: Math.floor(NOW.getTime() / 1000),
      model: "gemini-2.5-flash",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello there" }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
    });
    expect(mock.requests).toHaveLength(1);
    const [r] = mock.requests;
    expect(r!.method).toBe("POST");
    expect(r!.path).toBe("/v1beta/models/gemini-2.5-flash:generateContent");
    expect(r!.query).toEqual({});
    expect(r!.headers["x-goog-api-key"]).toBe(KEY);
    expect(r!.headers["content-type"]).toBe("application/json");
    expect(r!.headers.authorization).toBeUndefined();
    expect(r!.body).toEqual({
      contents: [{ role: "user", parts: [{ text: "Say hello" }] }],
      systemInstruction: { parts: [{ text: "Be kind" }] },
      generationConfig: { temperature: 0.3 },
    });
  });

  it("maps a function-call answer to tool_calls", async () => {
    mock.setScenario({ text: "", functionCalls: [{ name: "weather", args: { city: "Paris" } }] });
    const out = await adapter.chat(
      chatRequest({ tools: [{ type: "function", function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }] }),
      ctx(),
    );
    expect(out.choices[0]).toMatchObject({
      message: { content: null, tool_calls: [{ id: "call_0", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }] },
      finish_reason: "tool_calls",
    });
    expect(mock.requests[0]!.body).toMatchObject({ tools: [{ functionDeclarations: [{ name: "weather", parameters: { type: "OBJECT" } }] }] });
  });

  it("a blocked prompt is an empty content_filter answer, not an error", async () => {
    mock.setScenario({ blockReason: "SAFETY" });
    const out = await adapter.chat(chatRequest(), ctx());
    expect(out.choices).toEqual([{ index: 0, message: { role: "assistant", content: "" }, finish_reason: "content_filter", logprobs: null }]);
  });

  it("n → candidateCount → n choices", async () => {
    const out = await adapter.chat(chatRequest({ n: 3 }), ctx());
    expect(out.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(mock.requests[0]!.body).toMatchObject({ generationConfig: { candidateCount: 3 } });
  });

  it("reads the key on every call (rotation)", async () => {
    let calls = 0;
    const rotating = createGeminiAdapter({ name: "gemini", baseUrl: mock.url, apiKey: async () => (++calls, KEY) });
    await rotating.chat(chatRequest(), ctx());
    await rotating.chat(chatRequest(), ctx());
    expect(calls).toBe(2);
  });

  it("uses ctx.upstreamModel, accepting Google's models/ prefix", async () => {
    await adapter.chat(chatRequest(), ctx({ upstreamModel: "models/gemini-2.0-flash-001" }));
    expect(mock.requests[0]!.path).toBe("/v1beta/models/gemini-2.0-flash-001:generateContent");
  });
});

describe("chatStream", () => {
  it("POSTs to :streamGenerateContent?alt=sse and yields role, deltas, finish; no usage chunk by default", async () => {
    mock.setScenario({ text: ["Hel", "lo", " world"] });
    const chunks = await collect(adapter.chatStream(chatRequest({ stream: true }), ctx()));
    const r = mock.requests[0]!;
    expect(r.path).toBe("/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    expect(r.query).toEqual({ alt: "sse" });
    expect(r.headers["x-goog-api-key"]).toBe(KEY);
    expect(JSON.stringify(r.query)).not.toContain(KEY);
    expect(chunks.map((c) => [c.choices[0]?.delta, c.choices[0]?.finish_reason])).toEqual([
      [{ role: "assistant", content: "Hel" }, null],
      [{ content: "lo" }, null],
      [{ content: " world" }, null],
      [{}, "stop"],
    ]);
    expect(chunks.every((c) => c.usage === undefined)).toBe(true);
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set([chunks[0]!.id]));
    expect(chunks[0]!.id).toMatch(/^chatcmpl-mockResp\d+$/);
  });

  it("with stream_options.include_usage ends with {choices: [], usage} from the final usageMetadata", async () => {
    mock.setScenario({ text: ["a", " b"], usage: { promptTokenCount: 11, candidatesTokenCount: 2, thoughtsTokenCount: 5 } });
    const chunks = await collect(adapter.chatStream(chatRequest({ stream: true, stream_options: { include_usage: true } }), ctx()));
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });
    expect(chunks.filter((c) => c.usage !== undefined)).toHaveLength(1);
  });

  it("streams function calls as tool_calls deltas", async () => {
    mock.setScenario({ text: ["Checking"], functionCalls: [{ name: "a", args: { x: 1 } }, { name: "b" }] });
    const chunks = await collect(adapter.chatStream(chatRequest(), ctx()));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([
      { index: 0, id: "call_0", type: "function", function: { name: "a", arguments: '{"x":1}' } },
      { index: 1, id: "call_1", type: "function", function: { name: "b", arguments: "{}" } },
    ]);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("yields the first chunk while the upstream still holds the stream open (no buffering)", async () => {
    mock.setScenario({ text: ["first", " second"], stallAfterEvents: 1 });
    const iterator = adapter.chatStream(chatRequest(), ctx())[Symbol.asyncIterator]();
    const first = await Promise.race([iterator.next(), sleep(3000).then(() => "timed out" as const)]);
    expect(first).not.toBe("timed out");
    expect((first as IteratorResult<ChatCompletionChunk>).value.choices[0].delta).toEqual({ role: "assistant", content: "first" });
    await mock.waitForStall(); // the upstream has sent exactly one event and is holding
    const pending = iterator.next();
    expect(await Promise.race([pending, sleep(100).then(() => "still open" as const)])).toBe("still open");
    mock.release();
    expect((await pending).value.choices[0].delta).toEqual({ content: " second" });
    expect((await iterator.next()).value.choices[0].finish_reason).toBe("stop");
    expect((await iterator.next()).done).toBe(true);
  });

  it("a consumer that stops early releases the upstream instead of draining it", async () => {
    mock.setScenario({ text: ["first", " second"], stallAfterEvents: 1 });
    const iterator = adapter.chatStream(chatRequest(), ctx())[Symbol.asyncIterator]();
    await iterator.next();
    const returned = await Promise.race([iterator.return!(undefined), sleep(2000).then(() => "hung" as const)]);
    expect(returned).toEqual({ done: true, value: undefined });
    mock.release();
  });

  it("also parses LF-framed events", async () => {
    mock.setScenario({ text: ["x", "y"], lineEnding: "\n" });
    const chunks = await collect(adapter.chatStream(chatRequest(), ctx()));
    expect(
      chunks
        .map((c) => c.choices[0]?.delta.content)
        .filter(Boolean)
        .join(""),
    ).toBe("xy");
  });

  it("a blocked prompt streams one content_filter chunk", async () => {
    mock.setScenario({ blockReason: "SAFETY" });
    const chunks = await collect(adapter.chatStream(chatRequest(), ctx()));
    expect(chunks.map((c) => c.choices[0]?.finish_reason)).toEqual(["content_filter"]);
  });

  it("translation errors are thrown before anything goes upstream", async () => {
    const bad = chatRequest({
      messages: [
        { role: "user", content: "x" },
        { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{" } }] },
      ],
    });
    await expect(collect(adapter.chatStream(bad, ctx()))).rejects.toBeInstanceOf(GatewayError);
    await expect(adapter.chat(bad, ctx())).rejects.toMatchObject({ code: "invalid_request" });
    expect(mock.requests).toHaveLength(0);
  });
});

describe("embeddings", () => {
  it("one string → batchEmbedContents with models/{model} per request → OpenAI list", async () => {
    const out = await adapter.embeddings!({ model: "alias", input: "hello world" }, ctx({ upstreamModel: "gemini-embedding-001" }));
    const r = mock.requests[0]!;
    expect(r.path).toBe("/v1beta/models/gemini-embedding-001:batchEmbedContents");
    expect(r.headers["x-goog-api-key"]).toBe(KEY);
    expect(r.body).toEqual({ requests: [{ model: "models/gemini-embedding-001", content: { parts: [{ text: "hello world" }] } }] });
    expect(out).toEqual({
      object: "list",
      data: [{ object: "embedding", index: 0, embedding: mockEmbedding("hello world", 8) }],
      model: "gemini-embedding-001",
      usage: { prompt_tokens: 0, total_tokens: 0 },
    });
  });

  it("dimensions → outputDimensionality; base64 is float32 little-endian", async () => {
    const out = await adapter.embeddings!({ model: "e", input: ["a", "b"], dimensions: 4, encoding_format: "base64" }, ctx({ upstreamModel: "e" }));
    expect(mock.requests[0]!.body).toMatchObject({ requests: [{ outputDimensionality: 4 }, { outputDimensionality: 4 }] });
    const decoded = out.data.map((d) => Array.from(new Float32Array(new Uint8Array(Buffer.from(d.embedding as string, "base64")).buffer)));
    expect(decoded).toEqual([mockEmbedding("a", 4), mockEmbedding("b", 4)]);
    expect(float32Base64([1])).toBe(Buffer.from([0, 0, 0x80, 0x3f]).toString("base64"));
  });

  it("more than 100 inputs are split into ordered batches of at most 100", async () => {
    const input = Array.from({ length: 250 }, (_, i) => `text ${i}`);
    const out = await adapter.embeddings!({ model: "e", input }, ctx({ upstreamModel: "e" }));
    expect(mock.requests.map((r) => (r.body as { requests: unknown[] }).requests.length)).toEqual([100, 100, 50]);
    expect(out.data.map((d) => d.index)).toEqual(input.map((_, i) => i));
    expect(out.data[237]!.embedding).toEqual(mockEmbedding("text 237", 8));
  });

  it.each([
    ["token ids", [1, 2, 3], "unsupported_capability"],
    ["arrays of token ids", [[1, 2]], "unsupported_capability"],
    ["an empty array", [], "invalid_request"],
  ])("refuses %s", async (_, input, code) => {
    await expect(adapter.embeddings!({ model: "e", input: input as unknown as string[] }, ctx())).rejects.toMatchObject({ code });
    expect(mock.requests).toHaveLength(0);
  });

  it("an answer with the wrong number of vectors is malformed", async () => {
    mock.setScenario({ body: { embeddings: [] } });
    await expect(adapter.embeddings!({ model: "e", input: ["a"] }, ctx())).rejects.toMatchObject({ name: "UpstreamError", kind: "malformed" });
  });
});
