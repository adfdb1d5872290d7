import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { UpstreamError, type ChatCompletion } from "../../../../enclave/providers/types.js";
import { anthropicRequestToOpenAI } from "../../../../enclave/providers/anthropic/convert-from-anthropic-messages-request.js";
import { completionToAnthropicMessage, toAnthropicMessageId } from "../../../../enclave/providers/anthropic/convert-to-anthropic-message.js";
import { toAnthropicStopReason } from "../../../../enclave/providers/anthropic/map-anthropic-stop-reason.js";
import { toAnthropicUsage } from "../../../../enclave/providers/anthropic/map-anthropic-usage.js";
import { startMockAnthropic, type MockAnthropic } from "../../../helpers/mock-anthropic.js";

const CANARY = "CANARY-reverse-5b1e";
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

function req(fields: Record<string, unknown> = {}) {
  return anthropicRequestToOpenAI({ model: "gpt-x", max_tokens: 256, messages: [{ role: "user", content: "hi" }], ...fields });
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

describe("anthropicRequestToOpenAI", () => {
  test("minimal request", () => {
    expect(req()).toEqual({ model: "gpt-x", max_tokens: 256, messages: [{ role: "user", content: "hi" }] });
  });

  test("system string, and system text blocks joined", () => {
    expect(req({ system: "Be brief." }).messages[0]).toEqual({ role: "system", content: "Be brief." });
    expect(
      req({
        system: [
          { type: "text", text: "A", cache_control: { type: "ephemeral" } },
          { type: "text", text: "B" },
        ],
      }).messages[0],
    ).toEqual({
      role: "system",
      content: "A\n\nB",
    });
    expect(req({ system: "" }).messages).toHaveLength(1);
    expect(gatewayError(() => req({ system: [{ type: "image" }] })).code).toBe("invalid_request");
  });

  test("text and images (base64 → data URL, url → url)", () => {
    const out = req({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Describe" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
            { type: "image", source: { type: "url", url: "https://example.com/a.jpg" } },
          ],
        },
      ],
    });
    expect(out.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "Describe" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: "image_url", image_url: { url: "https://example.com/a.jpg" } },
        ],
      },
    ]);
  });

  test("a single text block becomes a plain string", () => {
    expect(req({ messages: [{ role: "user", content: [{ type: "text", text: "only" }] }] }).messages).toEqual([{ role: "user", content: "only" }]);
  });

  test("assistant tool_use → tool_calls; tool_result → tool messages placed before the rest of the turn", () => {
    const out = req({
      messages: [
        { role: "user", content: "Weather?" },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "…", signature: "sig" },
            { type: "text", text: "Checking." },
            { type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Paris" } },
            { type: "tool_use", id: "toolu_2", name: "now", input: {} },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: "18C" },
            { type: "tool_result", tool_use_id: "toolu_2", content: [{ type: "text", text: "12:00" }], is_error: false },
            { type: "text", text: "And tomorrow?" },
          ],
        },
      ],
    });
    expect(out.messages).toEqual([
      { role: "user", content: "Weather?" },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          { id: "toolu_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
          { id: "toolu_2", type: "function", function: { name: "now", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "toolu_1", content: "18C" },
      { role: "tool", tool_call_id: "toolu_2", content: "12:00" },
      { role: "user", content: "And tomorrow?" },
    ]);
  });

  test("assistant with tool_use only has null content", () => {
    const out = req({ messages: [{ role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] }] });
    expect(out.messages[0]).toEqual({ role: "assistant", content: null, tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }] });
  });

  test("tools, stop_sequences, sampling, metadata.user_id", () => {
    const schema = { type: "object", properties: { city: { type: "string" } } };
    const out = req({
      tools: [
        { name: "weather", description: "Weather", input_schema: schema, cache_control: { type: "ephemeral" } },
        { type: "custom", name: "now", input_schema: { type: "object" } },
      ],
      stop_sequences: ["END"],
      temperature: 0.2,
      top_p: 0.8,
      top_k: 5,
      metadata: { user_id: "u-1" },
    });
    expect(out).toMatchObject({
      tools: [
        { type: "function", function: { name: "weather", description: "Weather", parameters: schema } },
        { type: "function", function: { name: "now", parameters: { type: "object" } } },
      ],
      stop: ["END"],
      temperature: 0.2,
      top_p: 0.8,
      user: "u-1",
    });
    expect("top_k" in out).toBe(false);
  });

  test.each([
    [{ type: "auto" }, "auto", undefined],
    [{ type: "any" }, "required", undefined],
    [{ type: "none" }, "none", undefined],
    [{ type: "tool", name: "f" }, { type: "function", function: { name: "f" } }, undefined],
    [{ type: "auto", disable_parallel_tool_use: true }, "auto", false],
    [{ type: "any", disable_parallel_tool_use: true }, "required", false],
  ])("tool_choice %j → %j (parallel_tool_calls %j)", (choice, expected, parallel) => {
    const out = req({ tools: [{ name: "f", input_schema: { type: "object" } }], tool_choice: choice });
    expect(out.tool_choice).toEqual(expected);
    expect(out.parallel_tool_calls).toBe(parallel);
  });

  test("stream: true asks for usage too", () => {
    expect(req({ stream: true })).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect("stream" in req({ stream: false })).toBe(false);
  });

  test.each([
    ["body not an object", []],
    ["no model", { max_tokens: 1, messages: [] }],
    ["no max_tokens", { model: "m", messages: [] }],
    ["max_tokens 0", { model: "m", max_tokens: 0, messages: [] }],
    ["messages not array", { model: "m", max_tokens: 1, messages: "x" }],
    ["role system in messages", { model: "m", max_tokens: 1, messages: [{ role: "system", content: "x" }] }],
    ["content number", { model: "m", max_tokens: 1, messages: [{ role: "user", content: 1 }] }],
    ["tool_use input not object", { model: "m", max_tokens: 1, messages: [{ role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: CANARY }] }] }],
    [
      "image bad base64",
      { model: "m", max_tokens: 1, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: `${CANARY}!` } }] }] },
    ],
    ["tool_choice bad", { model: "m", max_tokens: 1, messages: [], tool_choice: { type: "maybe" } }],
    ["stop_sequences bad", { model: "m", max_tokens: 1, messages: [], stop_sequences: [1] }],
    ["temperature string", { model: "m", max_tokens: 1, messages: [], temperature: "hot" }],
  ])("invalid request (%s) → invalid_request without echo", (_name, body) => {
    const err = gatewayError(() => anthropicRequestToOpenAI(body));
    expect(err.code).toBe("invalid_request");
    expect(err.message).not.toContain(CANARY);
  });

  test.each([
    ["document block", { role: "user", content: [{ type: "document", source: { type: "text", data: CANARY } }] }],
    ["image in tool_result", { role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "image", source: { type: "url", url: "https://x" } }] }] }],
    ["file image source", { role: "user", content: [{ type: "image", source: { type: "file", file_id: "f" } }] }],
  ])("unsupported content (%s) → unsupported_capability", (_name, message) => {
    const err = gatewayError(() => req({ messages: [message] }));
    expect(err.code).toBe("unsupported_capability");
    expect(err.message).not.toContain(CANARY);
  });

  test("server tools are unsupported", () => {
    expect(gatewayError(() => req({ tools: [{ type: "web_search_20250305", name: "web_search" }] })).code).toBe("unsupported_capability");
  });
});

describe("completionToAnthropicMessage", () => {
  const completion = (message: ChatCompletion["choices"][number]["message"], finish: ChatCompletion["choices"][number]["finish_reason"] = "stop"): ChatCompletion => ({
    id: "chatcmpl-AbC123",
    object: "chat.completion",
    created: 1,
    model: "gpt-x",
    choices: [{ index: 0, message, finish_reason: finish }],
    usage: { prompt_tokens: 30, completion_tokens: 8, total_tokens: 38 },
  });

  test("text answer", () => {
    expect(completionToAnthropicMessage(completion({ role: "assistant", content: "Hello" }), { provider: "openai" })).toEqual({
      id: "msg_AbC123",
      type: "message",
      role: "assistant",
      model: "gpt-x",
      content: [{ type: "text", text: "Hello" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 30, output_tokens: 8, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
  });

  test("tool calls → tool_use blocks with parsed input; no empty text block", () => {
    const out = completionToAnthropicMessage(
      completion(
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
            { id: "call_2", type: "function", function: { name: "now", arguments: "" } },
          ],
        },
        "tool_calls",
      ),
      { provider: "openai" },
    );
    expect(out.content).toEqual([
      { type: "tool_use", id: "call_1", name: "weather", input: { city: "Paris" } },
      { type: "tool_use", id: "call_2", name: "now", input: {} },
    ]);
    expect(out.stop_reason).toBe("tool_use");
  });

  test("empty answer still has one text block", () => {
    expect(completionToAnthropicMessage(completion({ role: "assistant", content: "" }), { provider: "o" }).content).toEqual([{ type: "text", text: "" }]);
  });

  test.each([
    ["stop", "end_turn"],
    ["length", "max_tokens"],
    ["tool_calls", "tool_use"],
    ["function_call", "tool_use"],
    ["content_filter", "refusal"],
    [null, "end_turn"],
  ])("finish_reason %s → stop_reason %s", (finish, stop) => {
    expect(toAnthropicStopReason(finish as any)).toBe(stop);
  });

  test("cached prompt tokens become cache_read_input_tokens", () => {
    expect(toAnthropicUsage({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 105, prompt_tokens_details: { cached_tokens: 60 } } as any)).toEqual({
      input_tokens: 40,
      output_tokens: 5,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 60,
    });
    expect(toAnthropicUsage(undefined)).toEqual({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  });

  test.each([
    ["chatcmpl-abc", "msg_abc"],
    ["msg_keep", "msg_keep"],
    ["weird id/with:chars", "msg_weirdidwithchars"],
    ["", "msg_gateway"],
  ])("id %j → %j", (id, expected) => {
    expect(toAnthropicMessageId(id)).toBe(expected);
  });

  test("tool arguments that are not a JSON object are a malformed upstream, without echo", () => {
    for (const args of [`{"a": "${CANARY}"`, "[1]"]) {
      try {
        completionToAnthropicMessage(
          completion({ role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: args } }] }, "tool_calls"),
          { provider: "openai" },
        );
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(UpstreamError);
        expect((err as UpstreamError).kind).toBe("malformed");
        expect((err as Error).message).not.toContain(CANARY);
      }
    }
  });

  test("no choices is malformed", () => {
    expect(() => completionToAnthropicMessage({ ...completion({ role: "assistant", content: "x" }), choices: [] }, { provider: "o" })).toThrow(UpstreamError);
  });
});

describe("the official SDK reads the translated Message", () => {
  let mock: MockAnthropic;
  beforeAll(async () => {
    mock = await startMockAnthropic();
  });
  afterAll(() => mock.close());

  test("messages.create returns the translated content", async () => {
    const message = completionToAnthropicMessage(
      {
        id: "chatcmpl-sdk",
        object: "chat.completion",
        created: 1,
        model: "gpt-x",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "Sure.", tool_calls: [{ id: "call_9", type: "function", function: { name: "f", arguments: '{"x":1}' } }] },
            finish_reason: "tool_calls",
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      },
      { provider: "openai" },
    );
    mock.enqueue({ json: message });
    const client = new Anthropic({ baseURL: mock.url, apiKey: "test-key", maxRetries: 0 });
    const got = await client.messages.create({ model: "gpt-x", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    expect(got.id).toBe("msg_sdk");
    expect(got.content).toEqual([
      { type: "text", text: "Sure." },
      { type: "tool_use", id: "call_9", name: "f", input: { x: 1 } },
    ]);
    expect(got.stop_reason).toBe("tool_use");
    expect(got.usage.output_tokens).toBe(4);
  });
});
