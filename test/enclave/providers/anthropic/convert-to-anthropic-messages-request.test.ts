import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { UpstreamError, type ChatMessage, type ChatRequest } from "../../../../enclave/providers/types.js";
import type { AnthropicMessagesRequest } from "../../../../enclave/providers/anthropic/anthropic-api-types.js";
import { fromAnthropicMessage } from "../../../../enclave/providers/anthropic/convert-from-anthropic-message.js";
import { JSON_OBJECT_INSTRUCTION, jsonSchemaInstruction, toAnthropicRequest } from "../../../../enclave/providers/anthropic/convert-to-anthropic-messages-request.js";
import { toOpenAIFinishReason } from "../../../../enclave/providers/anthropic/map-anthropic-stop-reason.js";
import { toOpenAIUsage } from "../../../../enclave/providers/anthropic/map-anthropic-usage.js";

const OPTS = { model: "claude-up", defaultMaxTokens: 4096, stream: false };
const CANARY = "CANARY-7f3a9c-do-not-leak";
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

function translate(request: Partial<ChatRequest>, opts = OPTS): AnthropicMessagesRequest {
  return toAnthropicRequest({ model: "alias", messages: [{ role: "user", content: "hi" }], ...request } as ChatRequest, opts);
}

function gatewayError(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error("expected a GatewayError");
}

describe("toAnthropicRequest: messages", () => {
  test("a plain user message; model is the upstream model, max_tokens defaults", () => {
    expect(translate({})).toEqual({ model: "claude-up", messages: [{ role: "user", content: "hi" }], max_tokens: 4096 });
  });

  test("stream: true only when asked", () => {
    expect(translate({}, { ...OPTS, stream: true }).stream).toBe(true);
    expect("stream" in translate({ stream: true })).toBe(false);
  });

  test("one system message becomes a string system", () => {
    const out = translate({
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "hi" },
      ],
    });
    expect(out.system).toBe("Be brief.");
    expect(out.messages).toEqual([{ role: "user", content: "hi" }]);
  });

  test("system and developer messages anywhere are hoisted, in order, as text blocks", () => {
    const out = translate({
      messages: [
        { role: "system", content: "A" },
        { role: "user", content: "hi" },
        {
          role: "developer",
          content: [
            { type: "text", text: "B" },
            { type: "text", text: "C" },
          ],
        },
        { role: "assistant", content: "hello" },
        { role: "user", content: "again" },
      ],
    });
    expect(out.system).toEqual([
      { type: "text", text: "A" },
      { type: "text", text: "B" },
      { type: "text", text: "C" },
    ]);
    expect(out.messages).toEqual([
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
      { role: "user", content: "again" },
    ]);
  });

  test("system content must be text", () => {
    const err = gatewayError(() => translate({ messages: [{ role: "system", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }] }));
    expect(err.code).toBe("invalid_request");
  });

  test("text parts and images: base64 data URL and https URL", () => {
    const out = translate({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is in these?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}`, detail: "high" } },
            { type: "image_url", image_url: { url: "https://example.com/cat.jpg" } },
          ],
        },
      ],
    });
    expect(out.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "What is in these?" },
          { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
          { type: "image", source: { type: "url", url: "https://example.com/cat.jpg" } },
        ],
      },
    ]);
  });

  test.each([
    ["data:image/jpeg;base64,/9j/4AAQ", "image/jpeg"],
    ["data:image/gif;base64,R0lGODlh", "image/gif"],
    ["data:IMAGE/WEBP;base64,UklGRg==", "image/webp"],
  ])("data URL %s → media_type %s", (url, mediaType) => {
    const out = translate({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] });
    const block = (out.messages[0]!.content as any[])[0];
    expect(block.source.type).toBe("base64");
    expect(block.source.media_type).toBe(mediaType);
  });

  test.each([
    ["data:image/bmp;base64,Qk0=", "unsupported_capability"],
    ["data:image/png,rawbytes", "invalid_request"],
    ["data:image/png;base64,not base64!", "invalid_request"],
    ["data:image/png;base64", "invalid_request"],
    ["ftp://example.com/a.png", "invalid_request"],
    ["file:///etc/passwd", "invalid_request"],
  ])("image URL %s is refused (%s)", (url, code) => {
    expect(gatewayError(() => translate({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] })).code).toBe(code);
  });

  test("unsupported part types are refused without echoing content", () => {
    const err = gatewayError(() => translate({ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: CANARY, format: "wav" } }] }] }));
    expect(err.code).toBe("unsupported_capability");
    expect(err.message).not.toContain(CANARY);
  });

  test("consecutive same-role messages merge; empty text and empty messages are dropped", () => {
    const out = translate({
      messages: [
        { role: "user", content: "one" },
        {
          role: "user",
          content: [
            { type: "text", text: "two" },
            { type: "text", text: "" },
          ],
        },
        { role: "assistant", content: "" },
        { role: "assistant", content: "three" },
        { role: "assistant", content: "four" },
      ],
    });
    expect(out.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "one" },
          { type: "text", text: "two" },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "text", text: "three" },
          { type: "text", text: "four" },
        ],
      },
    ]);
  });

  test("assistant tool_calls → tool_use blocks with parsed input; tool results merge into one user turn", () => {
    const out = translate({
      messages: [
        { role: "user", content: "Weather in Paris and Rome?" },
        {
          role: "assistant",
          content: "Let me check.",
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
            { id: "call_2", type: "function", function: { name: "weather", arguments: '{"city":"Rome"}' } },
            { id: "call_3", type: "function", function: { name: "now", arguments: "" } },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "18C" },
        { role: "tool", tool_call_id: "call_2", content: [{ type: "text", text: "24C" }] },
        { role: "tool", tool_call_id: "call_3", content: "" },
        { role: "user", content: "Thanks, and?" },
      ],
    });
    expect(out.messages).toEqual([
      { role: "user", content: "Weather in Paris and Rome?" },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "call_1", name: "weather", input: { city: "Paris" } },
          { type: "tool_use", id: "call_2", name: "weather", input: { city: "Rome" } },
          { type: "tool_use", id: "call_3", name: "now", input: {} },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "call_1", content: "18C" },
          { type: "tool_result", tool_use_id: "call_2", content: [{ type: "text", text: "24C" }] },
          { type: "tool_result", tool_use_id: "call_3" },
          { type: "text", text: "Thanks, and?" },
        ],
      },
    ]);
  });

  test("assistant with null content and tool calls only", () => {
    const out = translate({
      messages: [
        { role: "user", content: "x" },
        { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] },
      ],
    });
    expect(out.messages[1]).toEqual({ role: "assistant", content: [{ type: "tool_use", id: "c", name: "f", input: {} }] });
  });

  test("tool results keep images", () => {
    const out = translate({
      messages: [{ role: "tool", tool_call_id: "c", content: [{ type: "image_url", image_url: { url: "https://x.test/a.png" } }] }],
    });
    expect(out.messages[0]).toEqual({
      role: "user",
      content: [{ type: "tool_result", tool_use_id: "c", content: [{ type: "image", source: { type: "url", url: "https://x.test/a.png" } }] }],
    });
  });

  test.each([
    ["not json", "invalid_request"],
    [`{"q": "${CANARY}"`, "invalid_request"],
    ["[1,2]", "invalid_request"],
    ["42", "invalid_request"],
    ["null", "invalid_request"],
  ])("tool call arguments %j are refused, without echo", (args, code) => {
    const err = gatewayError(() => translate({ messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: args } }] }] }));
    expect(err.code).toBe(code);
    expect(err.message).not.toContain(CANARY);
    expect(err.message).toContain("messages[0].tool_calls[0]");
  });

  test("a tool message without tool_call_id is refused", () => {
    expect(gatewayError(() => translate({ messages: [{ role: "tool", content: "x" } as unknown as ChatMessage] })).code).toBe("invalid_request");
  });

  test("unknown roles are refused", () => {
    expect(gatewayError(() => translate({ messages: [{ role: "function", content: "x" } as unknown as ChatMessage] })).code).toBe("invalid_request");
  });
});

describe("toAnthropicRequest: parameters", () => {
  test("tools → name/description/input_schema; missing parameters → empty object schema; strict not forwarded", () => {
    const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
    const out = translate({
      tools: [
        { type: "function", function: { name: "weather", description: "Weather now", parameters: schema, strict: true } },
        { type: "function", function: { name: "now" } },
      ],
    });
    expect(out.tools).toEqual([
      { name: "weather", description: "Weather now", input_schema: schema },
      { name: "now", input_schema: { type: "object", properties: {} } },
    ]);
  });

  test("non-function tools are refused", () => {
    expect(gatewayError(() => translate({ tools: [{ type: "web_search" } as any] })).code).toBe("unsupported_capability");
  });

  const TOOLS = [{ type: "function" as const, function: { name: "f" } }];
  test.each([
    ["none", undefined, { type: "none" }],
    ["auto", undefined, { type: "auto" }],
    ["required", undefined, { type: "any" }],
    [{ type: "function", function: { name: "f" } }, undefined, { type: "tool", name: "f" }],
    ["auto", false, { type: "auto", disable_parallel_tool_use: true }],
    ["required", false, { type: "any", disable_parallel_tool_use: true }],
    [{ type: "function", function: { name: "f" } }, false, { type: "tool", name: "f", disable_parallel_tool_use: true }],
    ["none", false, { type: "none" }],
    [undefined, false, { type: "auto", disable_parallel_tool_use: true }],
    [undefined, true, undefined],
    [undefined, undefined, undefined],
  ])("tool_choice %j with parallel_tool_calls %j → %j", (choice, parallel, expected) => {
    const out = translate({ tools: TOOLS, tool_choice: choice as any, parallel_tool_calls: parallel });
    expect(out.tool_choice).toEqual(expected);
  });

  test("tool_choice without tools is not forwarded (Anthropic refuses it)", () => {
    expect("tool_choice" in translate({ tool_choice: "auto" })).toBe(false);
  });

  test("invalid tool_choice is refused", () => {
    expect(gatewayError(() => translate({ tools: TOOLS, tool_choice: { type: "function", function: {} } as any })).code).toBe("invalid_request");
  });

  test.each([
    [{}, 4096],
    [{ max_tokens: 100 }, 100],
    [{ max_completion_tokens: 200 }, 200],
    [{ max_tokens: 100, max_completion_tokens: 200 }, 200],
  ])("max tokens %j → %d", (fields, expected) => {
    expect(translate(fields).max_tokens).toBe(expected);
  });

  test("the configured default applies", () => {
    expect(translate({}, { ...OPTS, defaultMaxTokens: 1024 }).max_tokens).toBe(1024);
  });

  test.each([0, -1, 1.5, "10"])("max_tokens %j is refused", (value) => {
    expect(gatewayError(() => translate({ max_tokens: value as number })).code).toBe("invalid_request");
  });

  test("temperature is clamped to 0..1; top_p passes", () => {
    expect(translate({ temperature: 1.7, top_p: 0.9 })).toMatchObject({ temperature: 1, top_p: 0.9 });
    expect(translate({ temperature: 0.3 }).temperature).toBe(0.3);
    expect(translate({ temperature: -1 }).temperature).toBe(0);
  });

  test("stop string or array → stop_sequences", () => {
    expect(translate({ stop: "END" }).stop_sequences).toEqual(["END"]);
    expect(translate({ stop: ["a", "b"] }).stop_sequences).toEqual(["a", "b"]);
    expect("stop_sequences" in translate({ stop: [] })).toBe(false);
    expect(gatewayError(() => translate({ stop: [1] as any })).code).toBe("invalid_request");
  });

  test("response_format json_object adds a system instruction", () => {
    expect(translate({ response_format: { type: "json_object" } }).system).toBe(JSON_OBJECT_INSTRUCTION);
    expect(
      translate({
        messages: [
          { role: "system", content: "S" },
          { role: "user", content: "u" },
        ],
        response_format: { type: "json_object" },
      }).system,
    ).toEqual([
      { type: "text", text: "S" },
      { type: "text", text: JSON_OBJECT_INSTRUCTION },
    ]);
  });

  test("response_format json_schema adds the schema as an instruction; text adds nothing", () => {
    const schema = { type: "object", properties: { a: { type: "number" } } };
    const out = translate({ response_format: { type: "json_schema", json_schema: { name: "x", schema, strict: true } } });
    expect(out.system).toBe(jsonSchemaInstruction(schema));
    expect(out.system).toContain(JSON.stringify(schema));
    expect("system" in translate({ response_format: { type: "text" } })).toBe(false);
  });

  test("n > 1 is refused; n = 1 is fine", () => {
    expect(gatewayError(() => translate({ n: 2 })).code).toBe("invalid_request");
    expect(translate({ n: 1 }).messages).toHaveLength(1);
  });

  test("logprobs are refused", () => {
    expect(gatewayError(() => translate({ logprobs: true })).code).toBe("unsupported_capability");
  });

  test("user → metadata.user_id", () => {
    expect(translate({ user: "u-42" }).metadata).toEqual({ user_id: "u-42" });
  });

  test("only allowlisted fields are sent upstream", () => {
    const out = translate({ seed: 1, frequency_penalty: 0.5, presence_penalty: 0.2, logit_bias: {}, foo: "bar", stream_options: { include_usage: true } });
    expect(Object.keys(out).sort()).toEqual(["max_tokens", "messages", "model"]);
  });
});

describe("toAnthropicRequest: properties", () => {
  const message = fc.oneof(
    fc.record({ role: fc.constant("user" as const), content: fc.string({ maxLength: 5 }) }),
    fc.record({ role: fc.constant("assistant" as const), content: fc.string({ maxLength: 5 }) }),
    fc.record({ role: fc.constant("system" as const), content: fc.string({ maxLength: 5 }) }),
    fc.record({ role: fc.constant("tool" as const), content: fc.string({ maxLength: 5 }), tool_call_id: fc.constantFrom("a", "b") }),
  );

  test("roles alternate, no message is empty, no text block is empty", () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 12 }), (messages) => {
        const out = translate({ messages: messages as ChatMessage[] });
        out.messages.forEach((m, i) => {
          if (i > 0) expect(m.role).not.toBe(out.messages[i - 1]!.role);
          if (typeof m.content === "string") expect(m.content).not.toBe("");
          else {
            expect(m.content.length).toBeGreaterThan(0);
            for (const b of m.content) if (b.type === "text") expect(b.text).not.toBe("");
            // tool_result blocks lead their turn
            const firstOther = m.content.findIndex((b) => b.type !== "tool_result");
            if (firstOther >= 0) expect(m.content.slice(firstOther).some((b) => b.type === "tool_result")).toBe(false);
          }
        });
      }),
    );
  });
});

describe("fromAnthropicMessage", () => {
  const now = () => new Date("2025-01-02T03:04:05Z");
  const base = {
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: "claude-up",
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 5 },
  };

  test("text blocks are concatenated; created from the clock", () => {
    const out = fromAnthropicMessage(
      {
        ...base,
        content: [
          { type: "thinking", thinking: "hmm", signature: "s" },
          { type: "text", text: "Hello, " },
          { type: "text", text: "world" },
        ],
      },
      { provider: "anthropic", now },
    );
    expect(out).toEqual({
      id: "msg_01",
      object: "chat.completion",
      created: Date.parse("2025-01-02T03:04:05Z") / 1000,
      model: "claude-up",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello, world", refusal: null }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  });

  test("tool_use → tool_calls with JSON arguments; content null without text", () => {
    const out = fromAnthropicMessage(
      {
        ...base,
        stop_reason: "tool_use",
        content: [
          { type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Paris" } },
          { type: "tool_use", id: "toolu_2", name: "now", input: {} },
        ],
      },
      { provider: "anthropic", now },
    );
    expect(out.choices[0]!.message).toEqual({
      role: "assistant",
      content: null,
      refusal: null,
      tool_calls: [
        { id: "toolu_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
        { id: "toolu_2", type: "function", function: { name: "now", arguments: "{}" } },
      ],
    });
    expect(out.choices[0]!.finish_reason).toBe("tool_calls");
  });

  test("empty content → empty string", () => {
    expect(fromAnthropicMessage({ ...base, content: [] }, { provider: "a", now }).choices[0]!.message.content).toBe("");
  });

  test.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["pause_turn", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["something_new", "stop"],
  ])("stop_reason %s → %s", (stop, finish) => {
    expect(toOpenAIFinishReason(stop)).toBe(finish);
    expect(fromAnthropicMessage({ ...base, stop_reason: stop, content: [] }, { provider: "a", now }).choices[0]!.finish_reason).toBe(finish);
  });

  test("cache tokens count as prompt tokens", () => {
    expect(toOpenAIUsage({ input_tokens: 3, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000, output_tokens: 7 })).toEqual({
      prompt_tokens: 1103,
      completion_tokens: 7,
      total_tokens: 1110,
    });
    expect(toOpenAIUsage({ input_tokens: 3, cache_creation_input_tokens: null, output_tokens: 7 })).toEqual({ prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 });
  });

  test.each([
    ["not an object", "hello"],
    ["wrong type", { ...base, type: "error", content: [] }],
    ["no id", { ...base, id: 1, content: [] }],
    ["no content", { ...base }],
    ["bad block", { ...base, content: [null] }],
    ["text without text", { ...base, content: [{ type: "text" }] }],
    ["tool_use without id", { ...base, content: [{ type: "tool_use", name: "f", input: {} }] }],
  ])("malformed upstream body (%s) → UpstreamError malformed", (_name, body) => {
    try {
      fromAnthropicMessage(body, { provider: "anthropic", now });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).kind).toBe("malformed");
    }
  });
});
