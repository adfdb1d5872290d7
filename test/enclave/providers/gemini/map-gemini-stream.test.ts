import { describe, expect, it } from "vitest";
import type { ChatCompletionChunk } from "../../../../enclave/providers/types.js";
import { UpstreamError } from "../../../../enclave/providers/types.js";
import { createGeminiStreamMapper } from "../../../../enclave/providers/gemini/map-gemini-stream.js";

const base = { fallbackId: "chatcmpl-fb", created: 1_700_000_000, model: "gemini-2.5-flash", provider: "gemini" };
const ev = (parts: unknown[] | undefined, extra: Record<string, unknown> = {}, candidateExtra: Record<string, unknown> = {}) => ({
  candidates: [{ ...(parts ? { content: { parts, role: "model" } } : {}), index: 0, ...candidateExtra }],
  responseId: "resp1",
  ...extra,
});
const deltas = (chunks: ChatCompletionChunk[]) => chunks.map((c) => (c.choices.length ? [c.choices[0]!.delta, c.choices[0]!.finish_reason] : ["usage", c.usage]));

function run(events: unknown[], includeUsage = false): ChatCompletionChunk[] {
  const mapper = createGeminiStreamMapper({ ...base, includeUsage });
  return [...events.flatMap((e) => mapper.push(e)), ...mapper.finish()];
}

describe("Gemini stream events → OpenAI chunks", () => {
  it("text: role on the first chunk, one content delta per event, a separate finish chunk", () => {
    const chunks = run([
      ev([{ text: "Hel" }], { usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 1, totalTokenCount: 3 } }),
      ev([{ text: "lo" }], { usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 2, totalTokenCount: 4 } }, { finishReason: "STOP" }),
    ]);
    expect(deltas(chunks)).toEqual([
      [{ role: "assistant", content: "Hel" }, null],
      [{ content: "lo" }, null],
      [{}, "stop"],
    ]);
    expect(chunks[0]).toMatchObject({ id: "chatcmpl-resp1", object: "chat.completion.chunk", created: 1_700_000_000, model: "gemini-2.5-flash" });
    expect(chunks.every((c) => c.usage === undefined)).toBe(true);
  });

  it("include_usage: a final {choices: [], usage} chunk from the last (cumulative) usageMetadata", () => {
    const chunks = run(
      [
        ev([{ text: "a" }], { usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 1, totalTokenCount: 3 } }),
        ev([{ text: "b" }], { usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 2, thoughtsTokenCount: 4, totalTokenCount: 8 } }, { finishReason: "STOP" }),
      ],
      true,
    );
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 2, completion_tokens: 6, total_tokens: 8, completion_tokens_details: { reasoning_tokens: 4 } });
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
  });

  it("function calls → complete tool_calls deltas with index, id, name and arguments; finish tool_calls", () => {
    const chunks = run([
      ev([{ text: "Let me check." }]),
      ev([{ functionCall: { name: "weather", args: { city: "Paris" } } }, { functionCall: { name: "weather", args: { city: "Rome" } } }], {}, { finishReason: "STOP" }),
    ]);
    expect(deltas(chunks)).toEqual([
      [{ role: "assistant", content: "Let me check." }, null],
      [
        {
          tool_calls: [
            { index: 0, id: "call_0", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
            { index: 1, id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Rome"}' } },
          ],
        },
        null,
      ],
      [{}, "tool_calls"],
    ]);
  });

  it("a call in its own event first still gets the role", () => {
    const chunks = run([ev([{ functionCall: { name: "f" } }], {}, { finishReason: "STOP" })]);
    expect(deltas(chunks)[0]).toEqual([{ role: "assistant", tool_calls: [{ index: 0, id: "call_0", type: "function", function: { name: "f", arguments: "{}" } }] }, null]);
  });

  it("thought parts and empty text produce no chunk", () => {
    const chunks = run([ev([{ text: "hmm", thought: true }]), ev([{ text: "", thoughtSignature: "sig" }]), ev([{ text: "ok" }], {}, { finishReason: "STOP" })]);
    expect(deltas(chunks)).toEqual([
      [{ role: "assistant", content: "ok" }, null],
      [{}, "stop"],
    ]);
  });

  it("MAX_TOKENS → length; SAFETY with no content → role + empty content, content_filter", () => {
    expect(deltas(run([ev([{ text: "a" }], {}, { finishReason: "MAX_TOKENS" })])).at(-1)).toEqual([{}, "length"]);
    expect(deltas(run([ev(undefined, {}, { finishReason: "SAFETY" })]))).toEqual([[{ role: "assistant", content: "" }, "content_filter"]]);
  });

  it("promptFeedback.blockReason → one content_filter chunk", () => {
    const chunks = run([{ promptFeedback: { blockReason: "PROHIBITED_CONTENT" }, usageMetadata: { promptTokenCount: 3, totalTokenCount: 3 } }], true);
    expect(deltas(chunks)).toEqual([
      [{ role: "assistant", content: "" }, "content_filter"],
      ["usage", { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 }],
    ]);
  });

  it("n candidates keep their own index, role and tool-call numbering", () => {
    const mapper = createGeminiStreamMapper({ ...base, includeUsage: false });
    const out = mapper.push({
      candidates: [
        { content: { parts: [{ text: "x" }] }, index: 0 },
        { content: { parts: [{ functionCall: { name: "f" } }] }, index: 1, finishReason: "STOP" },
      ],
    });
    expect(out.map((c) => [c.choices[0]!.index, c.choices[0]!.delta, c.choices[0]!.finish_reason])).toEqual([
      [0, { role: "assistant", content: "x" }, null],
      [1, { role: "assistant", tool_calls: [{ index: 0, id: "call_0", type: "function", function: { name: "f", arguments: "{}" } }] }, null],
      [1, {}, "tool_calls"],
    ]);
    expect(() => mapper.finish()).toThrow(/before a finish reason/);
  });

  it("content after a finish reason is ignored; a usage-only event is fine", () => {
    const chunks = run([ev([{ text: "a" }], {}, { finishReason: "STOP" }), ev([{ text: "late" }]), { usageMetadata: { promptTokenCount: 1 } }]);
    expect(deltas(chunks)).toEqual([
      [{ role: "assistant", content: "a" }, null],
      [{}, "stop"],
    ]);
  });

  it("ids: responseId of the first event, else the fallback", () => {
    const mapper = createGeminiStreamMapper({ ...base, includeUsage: false });
    expect(mapper.push({ candidates: [{ content: { parts: [{ text: "a" }] } }] })[0]!.id).toBe("chatcmpl-fb");
  });

  it("a stream that ends without a finish reason, or without events, is malformed", () => {
    const mapper = createGeminiStreamMapper({ ...base, includeUsage: true });
    mapper.push(ev([{ text: "a" }]));
    expect(() => mapper.finish()).toThrow(UpstreamError);
    expect(() => createGeminiStreamMapper({ ...base, includeUsage: false }).finish()).toThrow(/without any event/);
  });

  it("Google's in-stream error event → UpstreamError status with its code and no message text", () => {
    const mapper = createGeminiStreamMapper({ ...base, includeUsage: false });
    try {
      mapper.push({ error: { code: 503, message: "overloaded, your prompt was SECRET", status: "UNAVAILABLE" } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UpstreamError);
      expect(err).toMatchObject({ kind: "status", status: 503 });
      expect((err as Error).message).not.toContain("SECRET");
    }
  });

  it.each([
    ["a string", "x"],
    ["an array", []],
    ["candidates not an array", { candidates: 1 }],
    ["a bad part", { candidates: [{ content: { parts: [1] } }] }],
  ])("an event that is %s is malformed", (_, event) => {
    const mapper = createGeminiStreamMapper({ ...base, includeUsage: false });
    expect(() => mapper.push(event)).toThrow(expect.objectContaining({ kind: "malformed" }));
  });
});
