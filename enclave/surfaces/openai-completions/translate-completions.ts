import { GatewayError } from "../../errors.js";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from "../../providers/types.js";

/**
 * Legacy completions on a provider that only chats: the prompt becomes one
 * user message, the answer's text the completion's `text`. What has no chat
 * equivalent is refused rather than dropped: several prompts, token-array
 * prompts, `suffix`, `echo`, `logprobs`, `best_of` > 1 and `n` > 1
 * (400 invalid_request naming the field).
 */
const PASSED = ["max_tokens", "temperature", "top_p", "stop", "seed", "user", "presence_penalty", "frequency_penalty", "stream_options"] as const;

export function completionPrompt(body: Record<string, unknown>): string {
  const prompt = body.prompt;
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") return prompt[0];
  throw new GatewayError("invalid_request", "`prompt` must be a string (or one string in an array) for this model: its provider is reached through chat.");
}

export function completionToChat(body: Record<string, unknown>): ChatRequest {
  const prompt = completionPrompt(body);
  if (typeof body.suffix === "string" && body.suffix !== "") throw unsupported("suffix");
  if (body.echo === true) throw unsupported("echo");
  if (body.logprobs !== undefined && body.logprobs !== null) throw unsupported("logprobs");
  if (typeof body.best_of === "number" && body.best_of > 1) throw unsupported("best_of");
  if (typeof body.n === "number" && body.n > 1) throw unsupported("n");
  const request: ChatRequest = { model: String(body.model), messages: [{ role: "user", content: prompt }] };
  for (const key of PASSED) if (body[key] !== undefined && body[key] !== null) (request as Record<string, unknown>)[key] = body[key];
  return request;
}

function unsupported(field: string): GatewayError {
  return new GatewayError("invalid_request", `\`${field}\` is not supported for this model: its provider is reached through chat.`);
}

const completionId = (id: string) => (id.startsWith("chatcmpl-") ? `cmpl-${id.slice("chatcmpl-".length)}` : id);
const text = (content: unknown): string => (typeof content === "string" ? content : "");

export function chatToTextCompletion(c: ChatCompletion): Record<string, unknown> {
  const choice = c.choices[0];
  return {
    id: completionId(c.id),
    object: "text_completion",
    created: c.created,
    model: c.model,
    choices: [{ text: text(choice?.message.content), index: 0, logprobs: null, finish_reason: choice?.finish_reason ?? "stop" }],
    ...(c.usage && { usage: c.usage }),
  };
}

/** One chat chunk as a text_completion chunk (a usage-only chunk keeps its empty choices). */
export function chatChunkToTextChunk(c: ChatCompletionChunk): Record<string, unknown> {
  const choice = c.choices[0];
  return {
    id: completionId(c.id),
    object: "text_completion",
    created: c.created,
    model: c.model,
    choices: choice ? [{ text: text(choice.delta.content), index: 0, logprobs: null, finish_reason: choice.finish_reason ?? null }] : [],
    ...(c.usage !== undefined && { usage: c.usage }),
  };
}
