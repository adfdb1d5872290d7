import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { UpstreamError, type ChatCompletionChunk } from "../../../../enclave/providers/types.js";
import { AnthropicStreamMapper, streamErrorStatus } from "../../../../enclave/providers/anthropic/map-anthropic-stream.js";
import { mockEvents, type MockContentBlock } from "../../../helpers/mock-anthropic.js";

const NOW = new Date("2025-06-01T00:00:00Z");
const CREATED = NOW.getTime() / 1000;
const CANARY = "CANARY-anthropic-stream-91d2";

function mapper(includeUsage = false) {
  return new AnthropicStreamMapper({ provider: "anthropic", includeUsage, now: () => NOW });
}

function run(events: unknown[], includeUsage = false): ChatCompletionChunk[] {
  const m = mapper(includeUsage);
  const out = events.flatMap((e) => m.push(e));
  m.end();
  return out;
}

/** Events as the real API sends them (the mock's generator), data only. */
function wire(content: MockContentBlock[], extra: Parameters<typeof mockEvents>[0] = {}): unknown[] {
  return mockEvents({ content, ...extra }, "claude-up", "msg_1").map((e) => e.data);
}

function start(usage: Record<string, number> = { input_tokens: 10, output_tokens: 1 }) {
  return { type: "message_start", message: { id: "msg_1", type: "message", role: "assistant", model: "claude-up", content: [], stop_reason: null, stop_sequence: null, usage } };
}

function chunk(delta: object, finish: string | null = null) {
  return { id: "msg_1", object: "chat.completion.chunk", created: CREATED, model: "claude-up", choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
}

function thrown(fn: () => unknown): UpstreamError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error("expected an UpstreamError");
}

describe("AnthropicStreamMapper", () => {
  test("text stream: role chunk, content deltas, finish; ping ignored; no usage chunk by default", () => {
    expect(run(wire([{ type: "text", text: "Hello world" }]))).toEqual([
      chunk({ role: "assistant", content: "" }),
      chunk({ content: "Hell" }),
      chunk({ content: "o wo" }),
      chunk({ content: "rld" }),
      chunk({}, "stop"),
    ]);
  });

  test("usage chunk only with include_usage, after the finish chunk, with choices []", () => {
    const out = run(wire([{ type: "text", text: "Hi" }], { usage: { input_tokens: 20, cache_read_input_tokens: 5, output_tokens: 9 } }), true);
    expect(out.at(-2)).toEqual(chunk({}, "stop"));
    expect(out.at(-1)).toEqual({
      id: "msg_1",
      object: "chat.completion.chunk",
      created: CREATED,
      model: "claude-up",
      choices: [],
      usage: { prompt_tokens: 25, completion_tokens: 9, total_tokens: 34 },
    });
    expect(out.filter((c) => "usage" in c)).toHaveLength(1);
  });

  test("tool calls: index counts tool blocks only; arguments assemble from input_json_delta", () => {
    const out = run(
      wire([
        { type: "text", text: "Checking." },
        { type: "tool_use", id: "toolu_A", name: "weather", input: { city: "Paris", unit: "C" } },
        { type: "tool_use", id: "toolu_B", name: "weather", input: { city: "Rome" } },
      ]),
    );
    const tools = out.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(tools[0]).toEqual({ index: 0, id: "toolu_A", type: "function", function: { name: "weather", arguments: "" } });
    const firstB = tools.findIndex((t) => t.id === "toolu_B");
    expect(tools[firstB]).toEqual({ index: 1, id: "toolu_B", type: "function", function: { name: "weather", arguments: "" } });
    const args = (i: number) =>
      tools
        .filter((t) => t.index === i)
        .map((t) => t.function?.arguments ?? "")
        .join("");
    expect(JSON.parse(args(0))).toEqual({ city: "Paris", unit: "C" });
    expect(JSON.parse(args(1))).toEqual({ city: "Rome" });
    // several argument deltas per tool, none empty
    expect(tools.filter((t) => t.index === 0 && t.id === undefined).length).toBeGreaterThan(1);
    expect(tools.every((t) => t.id !== undefined || t.function!.arguments !== "")).toBe(true);
    expect(out.at(-1)).toEqual(chunk({}, "tool_calls"));
  });

  test('a tool whose input streamed empty gets "{}"', () => {
    const out = run(wire([{ type: "tool_use", id: "toolu_N", name: "now", input: {} }]));
    const tools = out.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(tools.map((t) => t.function?.arguments).join("")).toBe("{}");
  });

  test.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["pause_turn", "stop"],
  ])("message_delta stop_reason %s → finish_reason %s", (stop, finish) => {
    const out = run(wire([{ type: "text", text: "x" }], { stopReason: stop }));
    expect(out.at(-1)).toEqual(chunk({}, finish));
    expect(out.filter((c) => c.choices[0]?.finish_reason)).toHaveLength(1);
  });

  test("message_stop without a stop_reason still finishes with stop", () => {
    const out = run([start(), { type: "message_delta", delta: { stop_reason: null }, usage: { output_tokens: 1 } }, { type: "message_stop" }]);
    expect(out.at(-1)).toEqual(chunk({}, "stop"));
  });

  test("usage counters are cumulative: message_delta overwrites, including input_tokens when present", () => {
    const m = mapper(true);
    m.push(start({ input_tokens: 10, output_tokens: 1 }));
    m.push({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { input_tokens: 12, cache_creation_input_tokens: 3, output_tokens: 40 } });
    const last = m.push({ type: "message_stop" }).at(-1)!;
    expect(last.usage).toEqual({ prompt_tokens: 15, completion_tokens: 40, total_tokens: 55 });
    expect(m.done).toBe(true);
  });

  test("thinking blocks, citations and unknown events are skipped", () => {
    const out = run([
      start(),
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: CANARY } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "sig" } },
      { type: "content_block_stop", index: 0 },
      { type: "some_future_event", foo: 1 },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 1, delta: { type: "citations_delta", citation: {} } },
      { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "ok" } },
      { type: "content_block_stop", index: 1 },
      { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 3 } },
      { type: "message_stop" },
    ]);
    expect(out).toEqual([chunk({ role: "assistant", content: "" }), chunk({ content: "ok" }), chunk({}, "stop")]);
    expect(JSON.stringify(out)).not.toContain(CANARY);
  });

  test("events after message_stop are ignored", () => {
    const m = mapper();
    for (const e of wire([{ type: "text", text: "x" }])) m.push(e);
    expect(m.push({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "late" } })).toEqual([]);
  });

  test.each([
    ["overloaded_error", 529, true],
    ["rate_limit_error", 429, true],
    ["api_error", 502, true],
    ["invalid_request_error", 502, true],
  ])("error event %s → UpstreamError status %d", (type, status, retryable) => {
    expect(streamErrorStatus(type)).toBe(status);
    const m = mapper();
    m.push(start());
    const err = thrown(() => m.push({ type: "error", error: { type, message: `boom ${CANARY}` } }));
    expect(err.kind).toBe("status");
    expect(err.status).toBe(status);
    expect(err.retryable).toBe(retryable);
    expect(err.message).toContain(type);
    expect(err.message).not.toContain(CANARY);
  });

  test("an error event before message_start is an error too; odd error types are not echoed", () => {
    const err = thrown(() => mapper().push({ type: "error", error: { type: `${CANARY} <script>`, message: "x" } }));
    expect(err.status).toBe(502);
    expect(err.message).not.toContain(CANARY);
    expect(thrown(() => mapper().push({ type: "error" })).status).toBe(502);
  });

  test.each([
    ["not an object", "x"],
    ["no type", { foo: 1 }],
    ["delta before message_start", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "x" } }],
  ])("malformed first event (%s)", (_name, event) => {
    expect(thrown(() => mapper().push(event)).kind).toBe("malformed");
  });

  test.each([
    ["second message_start", start()],
    ["delta for a block never started", { type: "content_block_delta", index: 3, delta: { type: "text_delta", text: "x" } }],
    ["stop for a block never started", { type: "content_block_stop", index: 3 }],
    ["negative index", { type: "content_block_start", index: -1, content_block: { type: "text", text: "" } }],
    ["no content_block", { type: "content_block_start", index: 0 }],
    ["tool without id", { type: "content_block_start", index: 0, content_block: { type: "tool_use", name: "f", input: {} } }],
  ])("malformed event after message_start (%s)", (_name, event) => {
    const m = mapper();
    m.push(start());
    expect(thrown(() => m.push(event)).kind).toBe("malformed");
  });

  test("message_start without an id is malformed", () => {
    expect(thrown(() => mapper().push({ type: "message_start", message: {} })).kind).toBe("malformed");
  });

  test("a stream that ends before message_stop is truncated → malformed", () => {
    const m = mapper();
    for (const e of wire([{ type: "text", text: "partial" }]).slice(0, -1)) m.push(e);
    expect(thrown(() => m.end()).kind).toBe("malformed");
    expect(thrown(() => mapper().end()).kind).toBe("malformed");
  });

  test("property: any text and tool input, cut anywhere, reassembles exactly", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60 }),
        fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean()), { minKeys: 1, maxKeys: 5 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 9 }),
        (text, input, size, pieces) => {
          const out = run(
            wire(
              [
                { type: "text", text },
                { type: "tool_use", id: "toolu_P", name: "f", input },
              ],
              { textChunkSize: size, toolJsonPieces: pieces },
            ),
          );
          expect(out.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(text);
          const args = out
            .flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
            .map((t) => t.function?.arguments ?? "")
            .join("");
          expect(JSON.parse(args)).toEqual(input);
        },
      ),
    );
  });
});
