import { describe, expect, it } from "vitest";
import type { ChatCompletionChunk } from "../../../../enclave/providers/canonical/types.js";
import { fromGeminiResponse } from "../../../../enclave/providers/gemini/convert-from-gemini-response.js";
import { completionToGeminiResponse } from "../../../../enclave/providers/gemini/convert-to-gemini-response.js";
import { CanonicalToGeminiStreamMapper, formatGeminiSse } from "../../../../enclave/providers/gemini/encode-gemini-stream.js";
import { estimateGeminiTokens } from "../../../../enclave/providers/gemini/estimate-gemini-tokens.js";
import { UpstreamError } from "../../../../enclave/providers/types.js";

/** Canonical answers → Gemini's GenerateContentResponse, whole and streamed. */
const chunk = (choices: ChatCompletionChunk["choices"], usage?: ChatCompletionChunk["usage"]): ChatCompletionChunk => ({
  id: "chatcmpl-abc",
  object: "chat.completion.chunk",
  created: 1,
  model: "gpt-x",
  choices,
  ...(usage !== undefined && { usage }),
});

describe("completionToGeminiResponse", () => {
  it("text, tool calls, finish reasons and usage (reasoning back as thoughts)", () => {
    const out = completionToGeminiResponse(
      {
        id: "chatcmpl-xyz",
        object: "chat.completion",
        created: 1,
        model: "gpt-x",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "hi", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }] },
            finish_reason: "tool_calls",
          },
          { index: 1, message: { role: "assistant", content: "cut" }, finish_reason: "length" },
          { index: 2, message: { role: "assistant", content: null }, finish_reason: "content_filter" },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 10, total_tokens: 13, completion_tokens_details: { reasoning_tokens: 4 } } as never,
      },
      { provider: "p" },
    );
    expect(out).toEqual({
      candidates: [
        { content: { parts: [{ text: "hi" }, { functionCall: { id: "c1", name: "f", args: { a: 1 } } }], role: "model" }, finishReason: "STOP", index: 0 },
        { content: { parts: [{ text: "cut" }], role: "model" }, finishReason: "MAX_TOKENS", index: 1 },
        { content: { parts: [{ text: "" }], role: "model" }, finishReason: "SAFETY", index: 2 },
      ],
      usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 6, totalTokenCount: 13, thoughtsTokenCount: 4 },
      modelVersion: "gpt-x",
      responseId: "xyz",
    });
    // The adapter's reader takes it back to the same conversation.
    const back = fromGeminiResponse(out, { fallbackId: "f", created: 1, model: "gpt-x", provider: "p" });
    expect(back.choices[0]!.message.tool_calls![0]).toEqual({ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } });
  });

  it("tool arguments that are not a JSON object are an unreadable upstream answer", () => {
    const bad = (args: string) =>
      completionToGeminiResponse(
        {
          id: "x",
          object: "chat.completion",
          created: 1,
          model: "m",
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: args } }] },
              finish_reason: "tool_calls",
            },
          ],
        },
        { provider: "p" },
      );
    expect(() => bad("{not json")).toThrow(UpstreamError);
    expect(() => bad("[1]")).toThrow(UpstreamError);
  });
});

describe("CanonicalToGeminiStreamMapper", () => {
  it("one event per text delta, then the last with the gathered calls, the finishReason and usage", () => {
    const m = new CanonicalToGeminiStreamMapper({ provider: "p", model: "alias" });
    const events = [
      ...m.push(chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }])),
      ...m.push(chunk([{ index: 0, delta: { content: "Hel" }, finish_reason: null }])),
      ...m.push(chunk([{ index: 0, delta: { content: "lo" }, finish_reason: null }])),
      ...m.push(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: "c1", type: "function", function: { name: "f", arguments: '{"a"' } }] }, finish_reason: null }])),
      ...m.push(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }, finish_reason: null }])),
      ...m.push(chunk([{ index: 0, delta: {}, finish_reason: "tool_calls" }])),
      ...m.push(chunk([], { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 })),
    ];
    expect(events).toEqual([
      { candidates: [{ content: { parts: [{ text: "Hel" }], role: "model" }, index: 0 }], modelVersion: "gpt-x", responseId: "abc" },
      { candidates: [{ content: { parts: [{ text: "lo" }], role: "model" }, index: 0 }], modelVersion: "gpt-x", responseId: "abc" },
    ]);
    expect(m.finish()).toEqual({
      candidates: [{ content: { parts: [{ functionCall: { id: "c1", name: "f", args: { a: 1 } } }], role: "model" }, finishReason: "STOP", index: 0 }],
      usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 3, totalTokenCount: 5 },
      modelVersion: "gpt-x",
      responseId: "abc",
    });
  });

  it("a stream that ends before its finish is malformed, never a short success", () => {
    const m = new CanonicalToGeminiStreamMapper({ provider: "p", model: "alias" });
    m.push(chunk([{ index: 0, delta: { content: "Hel" }, finish_reason: null }]));
    expect(() => m.finish()).toThrow(UpstreamError);
    expect(() => new CanonicalToGeminiStreamMapper({ provider: "p", model: "a" }).finish()).toThrow(UpstreamError);
  });

  it("frames events as Google does: data: <json>\\r\\n\\r\\n", () => {
    expect(formatGeminiSse({ a: 1 })).toBe('data: {"a":1}\r\n\r\n');
  });
});

describe("estimateGeminiTokens", () => {
  it("four characters a token, 258 per media part, contents or generateContentRequest", () => {
    const contents = [{ role: "user", parts: [{ text: "12345678" }, { inlineData: { mimeType: "image/png", data: "A".repeat(1000) } }] }];
    expect(estimateGeminiTokens({ contents })).toBe(2 + 258);
    expect(estimateGeminiTokens({ generateContentRequest: { model: "models/x", contents, systemInstruction: { parts: [{ text: "abcd" }] } } })).toBe(3 + 258);
    expect(estimateGeminiTokens({ contents: [] })).toBe(0);
  });
});
