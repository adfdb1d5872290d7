import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { createAnthropicAdapter } from "../../../../enclave/providers/anthropic/anthropic-adapter.js";
import type { ChatCompletionChunk, ChatRequest, ProviderCallContext } from "../../../../enclave/providers/types.js";
import { startMockAnthropic, type MockAnthropic } from "../../../helpers/mock-anthropic.js";

const NOW = new Date("2025-03-04T05:06:07Z");
const CREATED = NOW.getTime() / 1000;

let mock: MockAnthropic;

function ctx(signal: AbortSignal = new AbortController().signal): ProviderCallContext {
  return { fetch, signal, upstreamModel: "claude-sonnet-up", now: () => NOW };
}

function adapter(extra: Partial<Parameters<typeof createAnthropicAdapter>[0]> = {}) {
  return createAnthropicAdapter({ name: "anthropic", baseUrl: mock.url, apiKey: async () => "sk-ant-test", ...extra });
}

const REQUEST: ChatRequest = {
  model: "claude-alias",
  messages: [
    { role: "system", content: "Be terse." },
    { role: "user", content: "Weather in Paris?" },
  ],
  tools: [{ type: "function", function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
  tool_choice: "auto",
  max_tokens: 300,
  temperature: 0.5,
};

async function collect(iterable: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const chunk of iterable) out.push(chunk);
  return out;
}

beforeAll(async () => {
  mock = await startMockAnthropic({ apiKey: "sk-ant-test" });
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.requests.length = 0;
  mock.setScenario({});
});

describe("createAnthropicAdapter", () => {
  test("info", () => {
    expect(adapter().info).toEqual({ name: "anthropic", kind: "anthropic", baseUrl: mock.url, requestIdHeader: "request-id" });
  });

  test("rejects a bad defaultMaxTokens at construction", () => {
    expect(() => adapter({ defaultMaxTokens: 0 })).toThrow(TypeError);
  });
});

describe("chat (non-stream)", () => {
  test("sends the exact body and headers to /v1/messages", async () => {
    await adapter().chat(REQUEST, ctx());
    expect(mock.requests).toHaveLength(1);
    const [req] = mock.requests;
    expect(req!.method).toBe("POST");
    expect(req!.path).toBe("/v1/messages");
    expect(req!.headers["x-api-key"]).toBe("sk-ant-test");
    expect(req!.headers["anthropic-version"]).toBe("2023-06-01");
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers.authorization).toBeUndefined();
    expect(req!.body).toEqual({
      model: "claude-sonnet-up",
      system: "Be terse.",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      max_tokens: 300,
      temperature: 0.5,
      tools: [{ name: "weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
      tool_choice: { type: "auto" },
    });
  });

  test("custom anthropic-version, default max_tokens, trailing slash in baseUrl, sync key", async () => {
    const a = createAnthropicAdapter({ name: "a2", baseUrl: `${mock.url}/`, apiKey: () => "sk-ant-test", anthropicVersion: "2099-01-01", defaultMaxTokens: 77 });
    await a.chat({ model: "x", messages: [{ role: "user", content: "hi" }] }, ctx());
    expect(mock.requests[0]!.path).toBe("/v1/messages");
    expect(mock.requests[0]!.headers["anthropic-version"]).toBe("2099-01-01");
    expect(mock.requests[0]!.body.max_tokens).toBe(77);
  });

  test("maps the Message to a ChatCompletion", async () => {
    mock.setScenario({
      id: "msg_abc",
      content: [
        { type: "text", text: "Let me look." },
        { type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Paris" } },
      ],
      usage: { input_tokens: 20, cache_read_input_tokens: 100, output_tokens: 15 },
    });
    const out = await adapter().chat(REQUEST, ctx());
    expect(out).toEqual({
      id: "msg_abc",
      object: "chat.completion",
      created: CREATED,
      model: "claude-sonnet-up",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: "Let me look.",
            refusal: null,
            tool_calls: [{ id: "toolu_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }],
          },
          finish_reason: "tool_calls",
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 120, completion_tokens: 15, total_tokens: 135 },
    });
  });

  test.each([
    ["end_turn", "stop"],
    ["max_tokens", "length"],
    ["stop_sequence", "stop"],
    ["refusal", "content_filter"],
  ])("stop_reason %s → %s", async (stop, finish) => {
    mock.setScenario({ stopReason: stop });
    expect((await adapter().chat(REQUEST, ctx())).choices[0]!.finish_reason).toBe(finish);
  });

  test("a request the translation refuses never reaches the provider", async () => {
    await expect(adapter().chat({ ...REQUEST, n: 3 }, ctx())).rejects.toBeInstanceOf(GatewayError);
    await expect(collect(adapter().chatStream({ ...REQUEST, n: 3 }, ctx()))).rejects.toMatchObject({ code: "invalid_request" });
    expect(mock.requests).toHaveLength(0);
  });
});

describe("chatStream", () => {
  test("sends stream: true and maps a text stream chunk by chunk", async () => {
    mock.setScenario({ id: "msg_s1", content: [{ type: "text", text: "Sunny, 21C." }] });
    const chunks = await collect(adapter().chatStream({ ...REQUEST, stream: true }, ctx()));
    expect(mock.requests[0]!.body.stream).toBe(true);
    expect(mock.requests[0]!.headers.accept).toContain("text/event-stream");
    const base = { id: "msg_s1", object: "chat.completion.chunk", created: CREATED, model: "claude-sonnet-up" };
    expect(chunks).toEqual([
      { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, logprobs: null }] },
      { ...base, choices: [{ index: 0, delta: { content: "Sunn" }, finish_reason: null, logprobs: null }] },
      { ...base, choices: [{ index: 0, delta: { content: "y, 2" }, finish_reason: null, logprobs: null }] },
      { ...base, choices: [{ index: 0, delta: { content: "1C." }, finish_reason: null, logprobs: null }] },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop", logprobs: null }] },
    ]);
  });

  test("tool call arguments assemble across several input_json_delta events", async () => {
    const input = { city: "Paris", days: 3, units: "metric", detail: { hourly: true } };
    mock.setScenario({
      content: [
        { type: "text", text: "Checking." },
        { type: "tool_use", id: "toolu_X", name: "weather", input },
        { type: "tool_use", id: "toolu_Y", name: "now", input: {} },
      ],
      toolJsonPieces: 5,
    });
    const chunks = await collect(adapter().chatStream(REQUEST, ctx()));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls.filter((t) => t.index === 0).length).toBeGreaterThanOrEqual(5);
    const byIndex = new Map<number, { id?: string; name?: string; args: string }>();
    for (const t of calls) {
      const entry = byIndex.get(t.index) ?? { args: "" };
      if (t.id) entry.id = t.id;
      if (t.function?.name) entry.name = t.function.name;
      entry.args += t.function?.arguments ?? "";
      byIndex.set(t.index, entry);
    }
    expect(byIndex.get(0)).toEqual({ id: "toolu_X", name: "weather", args: JSON.stringify(input) });
    expect(byIndex.get(1)).toEqual({ id: "toolu_Y", name: "now", args: "{}" });
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
  });

  test("the usage chunk comes only with stream_options.include_usage", async () => {
    mock.setScenario({ usage: { input_tokens: 9, cache_creation_input_tokens: 1, output_tokens: 4 } });
    const without = await collect(adapter().chatStream(REQUEST, ctx()));
    expect(without.some((c) => c.usage !== undefined || c.choices.length === 0)).toBe(false);
    const withUsage = await collect(adapter().chatStream({ ...REQUEST, stream_options: { include_usage: true } }, ctx()));
    expect(withUsage.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 } });
    expect(withUsage.filter((c) => c.usage)).toHaveLength(1);
  });

  test("no buffering: the first content chunk arrives while the provider holds the rest", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // message_start, content_block_start, ping, first text_delta — then hold.
    mock.setScenario({ content: [{ type: "text", text: "first second third" }], textChunkSize: 6, stall: { afterEvents: 4, until: held } });
    const iterator = adapter().chatStream(REQUEST, ctx())[Symbol.asyncIterator]();
    const within = <T>(p: Promise<T>) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("chunk did not arrive while upstream held the stream")), 2000))]);
    const role = await within(iterator.next());
    expect(role.value?.choices[0]?.delta.role).toBe("assistant");
    const first = await within(iterator.next());
    expect(first.value?.choices[0]?.delta.content).toBe("first ");
    // The provider has still sent only four events and not finished.
    expect(mock.requests[0]!.eventsWritten).toBe(4);
    expect(mock.requests[0]!.closed).toBe(false);
    release();
    const rest: ChatCompletionChunk[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value);
    expect(rest.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("second third");
    expect(rest.at(-1)!.choices[0]!.finish_reason).toBe("stop");
  });

  test("stopping early releases the upstream connection", async () => {
    mock.setScenario({ content: [{ type: "text", text: "a long answer that goes on" }], stall: { afterEvents: 5 } });
    for await (const chunk of adapter().chatStream(REQUEST, ctx())) {
      if (chunk.choices[0]?.delta.content) break;
    }
    await expect.poll(() => mock.requests[0]!.closed, { timeout: 2000 }).toBe(true);
  });

  test("data-less SSE events and comments are skipped", async () => {
    mock.setScenario({
      rawStream: [
        ": keep-alive comment\n\n",
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_r","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}\n\n',
        "event: ping\ndata: \n\n",
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
        'event: content_block_delta\r\ndata: {"type":"content_block_delta","index":0,\r\ndata: "delta":{"type":"text_delta","text":"ok"}}\r\n\r\n',
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":1}}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      ],
    });
    const chunks = await collect(adapter().chatStream(REQUEST, ctx()));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("ok");
  });
});
