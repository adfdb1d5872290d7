import Anthropic from "@anthropic-ai/sdk";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { UpstreamError, type ChatCompletionChunk, type Usage } from "../../../../enclave/providers/types.js";
import { OpenAIToAnthropicStreamMapper, anthropicErrorEvent, formatAnthropicSse, type AnthropicSseEvent } from "../../../../enclave/providers/anthropic/encode-anthropic-stream.js";
import { frameEvent, startMockAnthropic, type MockAnthropic } from "../../../helpers/mock-anthropic.js";

type Delta = ChatCompletionChunk["choices"][number]["delta"];

function c(delta: Delta, finish: ChatCompletionChunk["choices"][number]["finish_reason"] = null): ChatCompletionChunk {
  return { id: "chatcmpl-xyz", object: "chat.completion.chunk", created: 1, model: "gpt-x", choices: [{ index: 0, delta, finish_reason: finish }] };
}

function usageChunk(usage: Usage): ChatCompletionChunk {
  return { id: "chatcmpl-xyz", object: "chat.completion.chunk", created: 1, model: "gpt-x", choices: [], usage };
}

function translate(chunks: ChatCompletionChunk[], model?: string): AnthropicSseEvent[] {
  const m = new OpenAIToAnthropicStreamMapper(model === undefined ? { provider: "openai" } : { provider: "openai", model });
  return [...chunks.flatMap((chunk) => m.push(chunk)), ...m.finish()];
}

const TEXT_CHUNKS = [
  c({ role: "assistant", content: "" }),
  c({ content: "Hello" }),
  c({ content: ", world" }),
  c({}, "stop"),
  usageChunk({ prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 }),
];

const TOOL_CHUNKS = [
  c({ role: "assistant", content: null }),
  c({ content: "Checking both." }),
  c({ tool_calls: [{ index: 0, id: "call_A", type: "function", function: { name: "weather", arguments: "" } }] }),
  c({ tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }),
  c({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] }),
  c({ tool_calls: [{ index: 1, id: "call_B", type: "function", function: { name: "weather", arguments: '{"city":' } }] }),
  c({ tool_calls: [{ index: 1, function: { arguments: '"Rome"}' } }] }),
  c({}, "tool_calls"),
  usageChunk({ prompt_tokens: 50, completion_tokens: 20, total_tokens: 70 }),
];

describe("OpenAIToAnthropicStreamMapper", () => {
  test("text: the exact event sequence", () => {
    expect(translate(TEXT_CHUNKS)).toEqual([
      {
        event: "message_start",
        data: {
          type: "message_start",
          message: {
            id: "msg_xyz",
            type: "message",
            role: "assistant",
            model: "gpt-x",
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: 0, output_tokens: 0 },
          },
        },
      },
      { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
      { event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hello" } } },
      { event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: ", world" } } },
      { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
      {
        event: "message_delta",
        data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 3, input_tokens: 11, cache_read_input_tokens: 0 } },
      },
      { event: "message_stop", data: { type: "message_stop" } },
    ]);
  });

  test("message_start goes out with the first chunk, before any content", () => {
    const m = new OpenAIToAnthropicStreamMapper({ provider: "openai", model: "alias" });
    const first = m.push(c({ role: "assistant", content: "" }));
    expect(first.map((e) => e.event)).toEqual(["message_start"]);
    expect((first[0]!.data.message as { model: string }).model).toBe("alias");
    expect(m.push(c({ content: "x" })).map((e) => e.event)).toEqual(["content_block_start", "content_block_delta"]);
  });

  test("text then two tool calls: blocks in order, input_json_delta carries the arguments", () => {
    const events = translate(TOOL_CHUNKS);
    expect(events.map((e) => `${e.event}${"index" in e.data ? `#${e.data.index}` : ""}`)).toEqual([
      "message_start",
      "content_block_start#0",
      "content_block_delta#0",
      "content_block_stop#0",
      "content_block_start#1",
      "content_block_delta#1",
      "content_block_delta#1",
      "content_block_stop#1",
      "content_block_start#2",
      "content_block_delta#2",
      "content_block_delta#2",
      "content_block_stop#2",
      "message_delta",
      "message_stop",
    ]);
    expect(events[4]!.data.content_block).toEqual({ type: "tool_use", id: "call_A", name: "weather", input: {} });
    expect(events[5]!.data.delta).toEqual({ type: "input_json_delta", partial_json: '{"ci' });
    expect(events.at(-2)!.data.delta).toEqual({ stop_reason: "tool_use", stop_sequence: null });
  });

  test.each([
    ["stop", "end_turn"],
    ["length", "max_tokens"],
    ["tool_calls", "tool_use"],
    ["content_filter", "refusal"],
  ] as const)("finish_reason %s → stop_reason %s", (finish, stop) => {
    const events = translate([c({ content: "x" }), c({}, finish)]);
    expect(events.at(-2)!.data.delta).toEqual({ stop_reason: stop, stop_sequence: null });
  });

  test("no usage chunk: output_tokens 0, no input_tokens", () => {
    const events = translate([c({ content: "x" }), c({}, "stop")]);
    expect(events.at(-2)!.data.usage).toEqual({ output_tokens: 0 });
  });

  test("an empty upstream stream still yields a well-formed message with one empty text block", () => {
    expect(translate([]).map((e) => e.event)).toEqual(["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
  });

  test("refusal deltas become text; other choices are ignored; pushes after finish are ignored", () => {
    const m = new OpenAIToAnthropicStreamMapper({ provider: "openai" });
    const events = [
      ...m.push(c({ refusal: "I can't." })),
      ...m.push({ ...c({ content: "other choice" }), choices: [{ index: 1, delta: { content: "other choice" }, finish_reason: null }] }),
      ...m.push(c({}, "content_filter")),
      ...m.finish(),
    ];
    const texts = events.filter((e) => e.event === "content_block_delta").map((e) => (e.data.delta as { text: string }).text);
    expect(texts).toEqual(["I can't."]);
    expect(m.push(c({ content: "late" }))).toEqual([]);
    expect(m.finish()).toEqual([]);
  });

  test("a tool call resuming after another block started is malformed", () => {
    const m = new OpenAIToAnthropicStreamMapper({ provider: "openai" });
    m.push(c({ tool_calls: [{ index: 0, id: "a", function: { name: "f", arguments: "{" } }] }));
    m.push(c({ tool_calls: [{ index: 1, id: "b", function: { name: "g", arguments: "{}" } }] }));
    expect(() => m.push(c({ tool_calls: [{ index: 0, function: { arguments: "}" } }] }))).toThrow(UpstreamError);
  });

  test("SSE framing matches Anthropic's (and the mock's) byte for byte", () => {
    for (const event of translate(TOOL_CHUNKS)) expect(formatAnthropicSse(event)).toBe(frameEvent(event));
    expect(formatAnthropicSse(anthropicErrorEvent("overloaded_error", "Overloaded"))).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    );
  });
});

describe("the official @anthropic-ai/sdk accepts the sequence", () => {
  let mock: MockAnthropic;
  let client: Anthropic;
  beforeAll(async () => {
    mock = await startMockAnthropic();
    client = new Anthropic({ baseURL: mock.url, apiKey: "test-key", maxRetries: 0 });
  });
  afterAll(() => mock.close());

  async function replay(chunks: ChatCompletionChunk[]) {
    mock.enqueue({ rawStream: translate(chunks).map(formatAnthropicSse) });
    const stream = client.messages.stream({ model: "gpt-x", max_tokens: 100, messages: [{ role: "user", content: "hi" }] });
    const texts: string[] = [];
    stream.on("text", (delta) => texts.push(delta));
    const message = await stream.finalMessage();
    return { message, texts };
  }

  test("text: finalMessage and text events", async () => {
    const { message, texts } = await replay(TEXT_CHUNKS);
    expect(texts).toEqual(["Hello", ", world"]);
    expect(message).toMatchObject({
      id: "msg_xyz",
      type: "message",
      role: "assistant",
      model: "gpt-x",
      content: [{ type: "text", text: "Hello, world" }],
      stop_reason: "end_turn",
      usage: { input_tokens: 11, output_tokens: 3 },
    });
  });

  test("tool calls: the SDK assembles input from input_json_delta", async () => {
    const { message } = await replay(TOOL_CHUNKS);
    expect(message.content).toEqual([
      { type: "text", text: "Checking both." },
      { type: "tool_use", id: "call_A", name: "weather", input: { city: "Paris" } },
      { type: "tool_use", id: "call_B", name: "weather", input: { city: "Rome" } },
    ]);
    expect(message.stop_reason).toBe("tool_use");
    expect(message.usage).toMatchObject({ input_tokens: 50, output_tokens: 20 });
  });

  test("an error event mid-stream surfaces as the SDK's APIError of that type", async () => {
    const events = translate(TEXT_CHUNKS).slice(0, 3);
    mock.enqueue({ rawStream: [...events, anthropicErrorEvent("overloaded_error", "Overloaded")].map(formatAnthropicSse) });
    const stream = client.messages.stream({ model: "gpt-x", max_tokens: 100, messages: [{ role: "user", content: "hi" }] });
    await expect(stream.finalMessage()).rejects.toMatchObject({ type: "overloaded_error" });
  });

  test("property: any split of text and tool arguments survives the SDK", async () => {
    const split = (s: string, cuts: number[]) => {
      const points = [...new Set(cuts.map((x) => x % (s.length + 1)))].sort((a, b) => a - b);
      const out: string[] = [];
      let last = 0;
      for (const p of [...points, s.length]) {
        out.push(s.slice(last, p));
        last = p;
      }
      return out;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 40 }),
        fc.array(
          fc.record({ name: fc.stringMatching(/^[a-z_]{1,10}$/), input: fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.oneof(fc.string(), fc.integer(), fc.boolean())) }),
          { maxLength: 3 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (text, tools, cuts) => {
          const chunks: ChatCompletionChunk[] = [c({ role: "assistant", content: "" })];
          for (const piece of split(text, cuts)) chunks.push(c({ content: piece }));
          tools.forEach((tool, index) => {
            const [first = "", ...rest] = split(JSON.stringify(tool.input), cuts);
            chunks.push(c({ tool_calls: [{ index, id: `call_${index}`, type: "function", function: { name: tool.name, arguments: first } }] }));
            for (const piece of rest) chunks.push(c({ tool_calls: [{ index, function: { arguments: piece } }] }));
          });
          chunks.push(c({}, tools.length > 0 ? "tool_calls" : "stop"));
          const { message } = await replay(chunks);
          const expected = [
            ...(text !== "" || tools.length === 0 ? [{ type: "text", text }] : []),
            ...tools.map((tool, index) => ({ type: "tool_use", id: `call_${index}`, name: tool.name, input: tool.input })),
          ];
          expect(message.content).toEqual(expected);
        },
      ),
      { numRuns: 30 },
    );
  });
});
