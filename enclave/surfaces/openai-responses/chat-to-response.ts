import type { ChatCompletion, FinishReason, ToolCall, Usage } from "../../providers/types.js";

/**
 * A canonical completion → an OpenAI Response object (openai-node
 * src/resources/responses/responses.ts `Response`), and the pieces the
 * stream mapper shares with it. What the client asked for is echoed as
 * OpenAI echoes it (instructions, tools, tool_choice, temperature, top_p,
 * max_output_tokens, text, metadata, parallel_tool_calls); `store` is
 * always false and `previous_response_id` null: nothing is stored.
 *
 * Finish reasons: stop and tool_calls → status "completed"; length →
 * "incomplete" with incomplete_details.reason "max_output_tokens";
 * content_filter → "incomplete" with reason "content_filter".
 */

type Json = Record<string, unknown>;

/** What a Response echoes of its request, and the ids it is known by. */
export interface ResponseFrame {
  /** `resp_…`; the message and function-call item ids derive from it. */
  id: string;
  createdAt: number;
  model: string;
  request: Json;
}

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function responseUsage(usage: Usage | undefined | null): ResponseUsage | null {
  if (!usage) return null;
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.total_tokens,
  };
}

export function responseStatus(finish: FinishReason | undefined): { status: "completed" | "incomplete"; incomplete_details: { reason: string } | null } {
  if (finish === "length") return { status: "incomplete", incomplete_details: { reason: "max_output_tokens" } };
  if (finish === "content_filter") return { status: "incomplete", incomplete_details: { reason: "content_filter" } };
  return { status: "completed", incomplete_details: null };
}

export const messageItemId = (frame: ResponseFrame, index: number) => `msg_${frame.id.slice(5)}_${index}`;
export const functionItemId = (frame: ResponseFrame, index: number) => `fc_${frame.id.slice(5)}_${index}`;

export function outputTextPart(text: string): Json {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

export function messageItem(id: string, status: "in_progress" | "completed" | "incomplete", text: string | undefined): Json {
  return { id, type: "message", status, role: "assistant", content: text === undefined ? [] : [outputTextPart(text)] };
}

export function functionCallItem(id: string, status: "in_progress" | "completed" | "incomplete", call: { id: string; name: string; arguments: string }): Json {
  return { id, type: "function_call", status, call_id: call.id, name: call.name, arguments: call.arguments };
}

/** The Response object around `output`, at a given status (in_progress while streaming). */
export function responseObject(
  frame: ResponseFrame,
  status: "in_progress" | "completed" | "incomplete" | "failed",
  output: Json[],
  extra: { usage?: ResponseUsage | null; incomplete_details?: { reason: string } | null; error?: { code: string; message: string } | null } = {},
): Json {
  const r = frame.request;
  const echo = (key: string, fallback: unknown) => (r[key] === undefined ? fallback : r[key]);
  return {
    id: frame.id,
    object: "response",
    created_at: frame.createdAt,
    status,
    background: false,
    error: extra.error ?? null,
    incomplete_details: extra.incomplete_details ?? null,
    instructions: echo("instructions", null),
    max_output_tokens: echo("max_output_tokens", null),
    model: frame.model,
    output,
    parallel_tool_calls: echo("parallel_tool_calls", true),
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: echo("temperature", 1),
    text: echo("text", { format: { type: "text" } }),
    tool_choice: echo("tool_choice", "auto"),
    tools: echo("tools", []),
    top_p: echo("top_p", 1),
    truncation: "disabled",
    usage: extra.usage ?? null,
    user: echo("user", null),
    metadata: echo("metadata", {}),
  };
}

/** A complete canonical answer as one Response. Only the first choice counts (the translated request asks for one). */
export function completionToResponse(completion: ChatCompletion, frame: ResponseFrame): Json {
  const choice = completion.choices[0];
  const output: Json[] = [];
  const text = choice?.message.content;
  if (typeof text === "string" && text !== "") output.push(messageItem(messageItemId(frame, 0), "completed", text));
  (choice?.message.tool_calls ?? []).forEach((call: ToolCall, i) => {
    output.push(functionCallItem(functionItemId(frame, i), "completed", { id: call.id, name: call.function.name, arguments: call.function.arguments }));
  });
  // An empty answer is still one (empty) message, as OpenAI sends.
  if (output.length === 0) output.push(messageItem(messageItemId(frame, 0), "completed", ""));
  const { status, incomplete_details } = responseStatus(choice?.finish_reason ?? null);
  return responseObject(frame, status, output, { usage: responseUsage(completion.usage), incomplete_details });
}
