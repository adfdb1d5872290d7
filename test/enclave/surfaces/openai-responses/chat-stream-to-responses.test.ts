import fc from "fast-check";
import { accumulateResponse } from "openai/lib/responses/ResponseAccumulator";
import type { Response as OpenAIResponse, ResponseStreamEvent } from "openai/resources/responses/responses";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import type { ChatCompletionChunk } from "../../../../enclave/providers/types.js";
import { ChatStreamToResponses } from "../../../../enclave/surfaces/openai-responses/chat-stream-to-responses.js";
import { failureEvents } from "../../../../enclave/surfaces/openai-responses/responses-stream-events.js";

const frame = { id: "resp_0123456789abcdef01234567", createdAt: 1_750_000_000, model: "alias", request: { input: "x" } };
type Delta = ChatCompletionChunk["choices"][number]["delta"];
const chunk = (delta: Delta, finish: ChatCompletionChunk["choices"][number]["finish_reason"] = null, usage?: ChatCompletionChunk["usage"]): ChatCompletionChunk => ({
  id: "c",
  object: "chat.completion.chunk",
  created: 1,
  model: "upstream",
  choices: [{ index: 0, delta, finish_reason: finish }],
  ...(usage !== undefined && { usage }),
});

/** Every event through openai-node's own accumulator: it throws on any event out of place. */
function accumulate(events: Record<string, unknown>[]): OpenAIResponse {
  let snapshot: OpenAIResponse | undefined;
  for (const e of events) snapshot = accumulateResponse(e as unknown as ResponseStreamEvent, snapshot);
  return snapshot!;
}

describe("canonical chunks → Responses events", () => {
  it("text, then two tool calls: one item open at a time, in OpenAI's order, numbered from 0", () => {
    const m = new ChatStreamToResponses(frame);
    const events = [
      ...m.push(chunk({ role: "assistant", content: "" })),
      ...m.push(chunk({ content: "Let me" })),
      ...m.push(chunk({ content: " check." })),
      ...m.push(chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "w", arguments: "" } }] })),
      ...m.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"c":' } }] })),
      ...m.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '"P"}' } }] })),
      ...m.push(chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "t", arguments: "{}" } }] })),
      ...m.push(chunk({}, "tool_calls")),
      ...m.push({ ...chunk({}), choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }),
      ...m.finish(),
    ];
    expect(events.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const final = accumulate(events);
    expect(final.status).toBe("completed");
    expect(final.output).toEqual([
      expect.objectContaining({ type: "message", status: "completed", content: [expect.objectContaining({ type: "output_text", text: "Let me check." })] }),
      expect.objectContaining({ type: "function_call", call_id: "call_a", name: "w", arguments: '{"c":"P"}', status: "completed" }),
      expect.objectContaining({ type: "function_call", call_id: "call_b", name: "t", arguments: "{}" }),
    ]);
    expect(final.usage).toMatchObject({ input_tokens: 3, output_tokens: 4, total_tokens: 7 });
    expect(final.model).toBe("alias");
  });

  it("finish_reason length ends in response.incomplete (max_output_tokens); an empty answer is one empty message", () => {
    const m = new ChatStreamToResponses(frame);
    const events = [...m.push(chunk({ content: "cut" }, "length")), ...m.finish()];
    expect(events.at(-1)).toMatchObject({ type: "response.incomplete", response: { status: "incomplete", incomplete_details: { reason: "max_output_tokens" } } });
    const empty = new ChatStreamToResponses(frame);
    const none = [...empty.push(chunk({ role: "assistant", content: "" }, "stop")), ...empty.finish()];
    expect(accumulate(none).output).toEqual([expect.objectContaining({ type: "message", content: [expect.objectContaining({ text: "" })] })]);
  });

  it("a failure after some events: error (flat and nested) then response.failed with the output so far, numbering continued", () => {
    const m = new ChatStreamToResponses(frame);
    const before = m.push(chunk({ content: "partial" }));
    const text = failureEvents(m, new GatewayError("upstream_error", "The upstream provider sent a response the gateway could not read."));
    const after = text
      .split("\n\n")
      .filter((e) => e !== "")
      .map((e) => JSON.parse(e.split("\ndata: ")[1]!) as Record<string, unknown>);
    expect(after.map((e) => [e.type, e.sequence_number])).toEqual([
      ["error", before.length],
      ["response.failed", before.length + 1],
    ]);
    expect(after[0]).toMatchObject({ code: "upstream_error", param: null, error: { type: "api_error", code: "upstream_error" } });
    expect(after[1]).toMatchObject({ response: { id: frame.id, status: "failed", error: { code: "upstream_error" } } });
    expect(text.startsWith("event: error\ndata: {")).toBe(true);
  });

  it("property: any split of any text streams back to exactly that text, events numbered without a gap", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 12 }), { maxLength: 20 }), (pieces) => {
        const m = new ChatStreamToResponses(frame);
        const events = [...pieces.flatMap((p) => m.push(chunk({ content: p }))), ...m.push(chunk({}, "stop")), ...m.finish()];
        expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
        const final = accumulate(events);
        expect(final.output_text).toBe(pieces.join(""));
      }),
      { numRuns: 200 },
    );
  });
});
