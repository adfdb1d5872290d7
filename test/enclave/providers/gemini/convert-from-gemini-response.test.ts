import { describe, expect, it } from "vitest";
import { UpstreamError } from "../../../../enclave/providers/types.js";
import { fromGeminiResponse } from "../../../../enclave/providers/gemini/convert-from-gemini-response.js";
import { mapFinishReason } from "../../../../enclave/providers/gemini/map-gemini-finish-reason.js";
import { mapUsage } from "../../../../enclave/providers/gemini/map-gemini-usage.js";

const meta = { fallbackId: "chatcmpl-fallback", created: 1_700_000_000, model: "gemini-2.5-flash", provider: "gemini" };
const candidate = (parts: unknown[], finishReason = "STOP", index = 0) => ({ content: { parts, role: "model" }, finishReason, index });

describe("GenerateContentResponse → ChatCompletion", () => {
  it("concatenates text parts, skips thought parts, maps usage and takes the responseId", () => {
    const out = fromGeminiResponse(
      {
        candidates: [candidate([{ text: "thinking…", thought: true }, { text: "Hello" }, { text: ", world" }])],
        usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 3, thoughtsTokenCount: 10, totalTokenCount: 18 },
        modelVersion: "gemini-2.5-flash",
        responseId: "AdVRaMmDCYek",
      },
      meta,
    );
    expect(out).toEqual({
      id: "chatcmpl-AdVRaMmDCYek",
      object: "chat.completion",
      created: 1_700_000_000,
      model: "gemini-2.5-flash",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello, world" }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: 5, completion_tokens: 13, total_tokens: 18, completion_tokens_details: { reasoning_tokens: 10 } },
    });
  });

  it("functionCall parts → tool_calls with ids call_<n>, content null, finish tool_calls", () => {
    const out = fromGeminiResponse({ candidates: [candidate([{ functionCall: { name: "weather", args: { city: "Paris" } } }, { functionCall: { name: "now" } }])] }, meta);
    expect(out.choices[0]).toEqual({
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_0", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
          { id: "call_1", type: "function", function: { name: "now", arguments: "{}" } },
        ],
      },
      finish_reason: "tool_calls",
      logprobs: null,
    });
    expect(out.id).toBe("chatcmpl-fallback");
    expect(out.usage).toBeUndefined();
  });

  it("uses Gemini's own FunctionCall.id when it sends one; ids stay unique across candidates", () => {
    const out = fromGeminiResponse(
      {
        candidates: [
          candidate([{ text: "a" }, { functionCall: { id: "g-1", name: "f", args: {} } }], "STOP", 0),
          candidate([{ functionCall: { name: "f", args: {} } }], "STOP", 1),
        ],
      },
      meta,
    );
    expect(out.choices.map((c) => c.message.tool_calls?.map((t) => t.id))).toEqual([["g-1"], ["call_1"]]);
    expect(out.choices[0]!.message.content).toBe("a");
  });

  it("same response → same ids (deterministic)", () => {
    const body = { candidates: [candidate([{ functionCall: { name: "f", args: { a: 1 } } }])] };
    expect(fromGeminiResponse(body, meta)).toEqual(fromGeminiResponse(structuredClone(body), meta));
  });

  const reasons: [string, boolean, string][] = [
    ["STOP", false, "stop"],
    ["STOP", true, "tool_calls"],
    ["MAX_TOKENS", false, "length"],
    ["MAX_TOKENS", true, "length"],
    ["SAFETY", false, "content_filter"],
    ["RECITATION", false, "content_filter"],
    ["BLOCKLIST", false, "content_filter"],
    ["PROHIBITED_CONTENT", false, "content_filter"],
    ["SPII", false, "content_filter"],
    ["IMAGE_SAFETY", false, "content_filter"],
    ["OTHER", false, "stop"],
    ["MALFORMED_FUNCTION_CALL", false, "stop"],
    ["SOMETHING_NEW", true, "tool_calls"],
  ];
  it.each(reasons)("finishReason %s (tool calls: %s) → %s", (reason, calls, expected) => {
    expect(mapFinishReason(reason, calls)).toBe(expected);
  });

  it("a candidate stopped by SAFETY with no content → empty content, content_filter", () => {
    const out = fromGeminiResponse({ candidates: [{ finishReason: "SAFETY", index: 0, safetyRatings: [] }] }, meta);
    expect(out.choices[0]).toMatchObject({ message: { role: "assistant", content: "" }, finish_reason: "content_filter" });
  });

  it("promptFeedback.blockReason with no candidates → one empty content_filter choice", () => {
    const out = fromGeminiResponse({ promptFeedback: { blockReason: "SAFETY" }, usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 }, responseId: "r1" }, meta);
    expect(out.choices).toEqual([{ index: 0, message: { role: "assistant", content: "" }, finish_reason: "content_filter", logprobs: null }]);
    expect(out.usage).toEqual({ prompt_tokens: 7, completion_tokens: 0, total_tokens: 7 });
  });

  it("n candidates → n choices by index", () => {
    const out = fromGeminiResponse({ candidates: [candidate([{ text: "x" }], "STOP", 0), candidate([{ text: "y" }], "MAX_TOKENS", 1)] }, meta);
    expect(out.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, "x", "stop"],
      [1, "y", "length"],
    ]);
  });

  it.each([
    ["not an object", "nope"],
    ["no candidates and no block reason", {}],
    ["candidates not an array", { candidates: {} }],
    ["parts not an array", { candidates: [{ content: { parts: "x" } }] }],
    ["functionCall without a name", { candidates: [candidate([{ functionCall: { args: {} } }])] }],
    ["functionCall args not an object", { candidates: [candidate([{ functionCall: { name: "f", args: [1] } }])] }],
  ])("%s → UpstreamError malformed", (_, body) => {
    expect(() => fromGeminiResponse(body, meta)).toThrow(UpstreamError);
    try {
      fromGeminiResponse(body, meta);
    } catch (err) {
      expect((err as UpstreamError).kind).toBe("malformed");
    }
  });
});

describe("usageMetadata → usage", () => {
  it.each([
    [
      { promptTokenCount: 4, candidatesTokenCount: 6, totalTokenCount: 10 },
      { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 },
    ],
    [
      { promptTokenCount: 4, candidatesTokenCount: 6 },
      { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 },
    ],
    [
      { promptTokenCount: 5, candidatesTokenCount: 39, thoughtsTokenCount: 186, totalTokenCount: 230 },
      { prompt_tokens: 5, completion_tokens: 225, total_tokens: 230, completion_tokens_details: { reasoning_tokens: 186 } },
    ],
    [
      { promptTokenCount: 100, cachedContentTokenCount: 80, candidatesTokenCount: 1, totalTokenCount: 101 },
      { prompt_tokens: 100, completion_tokens: 1, total_tokens: 101, prompt_tokens_details: { cached_tokens: 80 } },
    ],
    [{}, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }],
    [
      { promptTokenCount: -3, candidatesTokenCount: "9" },
      { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    ],
  ])("%j → %j", (metadata, expected) => {
    expect(mapUsage(metadata)).toEqual(expected);
  });
});
