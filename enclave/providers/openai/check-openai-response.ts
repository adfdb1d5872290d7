import type { ChatCompletion, ChatCompletionChunk, EmbeddingsResponse, ImagesResponse } from "../canonical/types.js";
import { UpstreamError } from "../types.js";

/**
 * Shape checks on OpenAI wire responses (completions, stream chunks,
 * embeddings, images).
 *
 * Enough to make the contract types true and to keep a confused or hostile
 * upstream from handing the gateway something it would trip over: the
 * fields the types declare must be there with the right JSON type; every
 * other field passes through. Messages name the field, never its value
 * (upstream text may echo the prompt).
 */

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function malformed(provider: string, what: string): UpstreamError {
  return new UpstreamError("malformed", `${provider}: ${what}`);
}

function expectString(obj: Json, key: string, provider: string, where: string): void {
  if (typeof obj[key] !== "string") throw malformed(provider, `${where}.${key} is not a string`);
}

function expectNumber(obj: Json, key: string, provider: string, where: string): void {
  if (typeof obj[key] !== "number" || !Number.isFinite(obj[key])) throw malformed(provider, `${where}.${key} is not a number`);
}

function optional(obj: Json, key: string, types: readonly string[], provider: string, where: string): void {
  const value = obj[key];
  if (value === undefined) return;
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  if (!types.includes(type)) throw malformed(provider, `${where}.${key} has the wrong type`);
}

function checkUsage(obj: Json, key: string, provider: string, where: string, allowNull: boolean): void {
  const usage = obj[key];
  if (usage === undefined || (allowNull && usage === null)) return;
  if (!isObject(usage)) throw malformed(provider, `${where}.${key} is not an object`);
  for (const field of ["prompt_tokens", "completion_tokens", "total_tokens"]) {
    expectNumber(usage, field, provider, `${where}.${key}`);
  }
}

/** An in-band error object: OpenAI and OpenRouter send these with HTTP 200, in streams too. */
function checkInBandError(obj: Json, provider: string): void {
  if (obj.error !== undefined && obj.error !== null) {
    throw new UpstreamError("status", `${provider}: upstream reported an error in the response body`);
  }
}

/**
 * A completion and a stream chunk share their shape: top-level id, created,
 * model and choices, each choice with a `message` (completion) or a `delta`
 * (chunk). One walk checks both.
 */
function checkChoicesShape(value: unknown, provider: string, kind: "completion" | "chunk"): Json {
  const label = kind === "completion" ? "completion" : "stream chunk";
  if (!isObject(value)) throw malformed(provider, `${label} is not a JSON object`);
  checkInBandError(value, provider);
  expectString(value, "id", provider, kind);
  expectNumber(value, "created", provider, kind);
  expectString(value, "model", provider, kind);
  optional(value, "object", ["string"], provider, kind);
  const choices = value.choices;
  if (!Array.isArray(choices)) throw malformed(provider, `${kind}.choices is not an array`);
  const field = kind === "completion" ? "message" : "delta";
  const isDelta = kind === "chunk";
  choices.forEach((choice: unknown, i) => {
    const where = `${kind}.choices[${i}]`;
    if (!isObject(choice)) throw malformed(provider, `${where} is not an object`);
    expectNumber(choice, "index", provider, where);
    optional(choice, "finish_reason", ["string", "null"], provider, where);
    const body = choice[field];
    if (!isObject(body)) throw malformed(provider, `${where}.${field} is not an object`);
    optional(body, "role", ["string"], provider, `${where}.${field}`);
    optional(body, "content", ["string", "null"], provider, `${where}.${field}`);
    optional(body, "refusal", ["string", "null"], provider, `${where}.${field}`);
    checkToolCalls(body, provider, `${where}.${field}`, isDelta);
  });
  checkUsage(value, "usage", provider, kind, isDelta);
  return value;
}

export function checkChatCompletion(value: unknown, provider: string): ChatCompletion {
  return checkChoicesShape(value, provider, "completion") as unknown as ChatCompletion;
}

export function checkChunk(value: unknown, provider: string): ChatCompletionChunk {
  return checkChoicesShape(value, provider, "chunk") as unknown as ChatCompletionChunk;
}

function checkToolCalls(holder: Json, provider: string, where: string, isDelta: boolean): void {
  const calls = holder.tool_calls;
  if (calls === undefined || calls === null) return;
  if (!Array.isArray(calls)) throw malformed(provider, `${where}.tool_calls is not an array`);
  calls.forEach((call: unknown, i) => {
    const at = `${where}.tool_calls[${i}]`;
    if (!isObject(call)) throw malformed(provider, `${at} is not an object`);
    const fn = call.function;
    if (isDelta) {
      expectNumber(call, "index", provider, at);
      optional(call, "id", ["string"], provider, at);
      optional(call, "type", ["string"], provider, at);
      if (fn === undefined) return;
      if (!isObject(fn)) throw malformed(provider, `${at}.function is not an object`);
      optional(fn, "name", ["string"], provider, `${at}.function`);
      optional(fn, "arguments", ["string"], provider, `${at}.function`);
    } else {
      expectString(call, "id", provider, at);
      optional(call, "type", ["string"], provider, at);
      if (!isObject(fn)) throw malformed(provider, `${at}.function is not an object`);
      expectString(fn, "name", provider, `${at}.function`);
      expectString(fn, "arguments", provider, `${at}.function`);
    }
  });
}

export function checkEmbeddings(value: unknown, provider: string): EmbeddingsResponse {
  if (!isObject(value)) throw malformed(provider, "embeddings response is not a JSON object");
  checkInBandError(value, provider);
  optional(value, "object", ["string"], provider, "embeddings");
  expectString(value, "model", provider, "embeddings");
  const data = value.data;
  if (!Array.isArray(data)) throw malformed(provider, "embeddings.data is not an array");
  data.forEach((item: unknown, i) => {
    const where = `embeddings.data[${i}]`;
    if (!isObject(item)) throw malformed(provider, `${where} is not an object`);
    expectNumber(item, "index", provider, where);
    const embedding = item.embedding;
    const ok = typeof embedding === "string" || (Array.isArray(embedding) && embedding.every((x) => typeof x === "number" && Number.isFinite(x)));
    if (!ok) throw malformed(provider, `${where}.embedding is neither a number array nor a base64 string`);
  });
  const usage = value.usage;
  if (!isObject(usage)) throw malformed(provider, "embeddings.usage is not an object");
  expectNumber(usage, "prompt_tokens", provider, "embeddings.usage");
  expectNumber(usage, "total_tokens", provider, "embeddings.usage");
  return value as unknown as EmbeddingsResponse;
}

export function checkImages(value: unknown, provider: string): ImagesResponse {
  if (!isObject(value)) throw malformed(provider, "images response is not a JSON object");
  checkInBandError(value, provider);
  expectNumber(value, "created", provider, "images");
  const data = value.data;
  if (!Array.isArray(data)) throw malformed(provider, "images.data is not an array");
  data.forEach((item: unknown, i) => {
    const where = `images.data[${i}]`;
    if (!isObject(item)) throw malformed(provider, `${where} is not an object`);
    optional(item, "url", ["string"], provider, where);
    optional(item, "b64_json", ["string"], provider, where);
    optional(item, "revised_prompt", ["string"], provider, where);
  });
  return value as unknown as ImagesResponse;
}
