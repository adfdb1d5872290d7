import type { Readable } from "node:stream";
import { GatewayError } from "../../errors.js";
import { parseEventJson, readSse } from "../shared/read-sse.js";
import { streamReadFailure } from "../shared/stream-read-failure.js";
import { networkError, postBody, postJson, readBytes, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type AudioUpload, type BinaryStream, type NativeCompletions, type ProviderCallContext, type RawAnswer } from "../types.js";

/**
 * The OpenAI endpoints beyond chat, embeddings and images, spoken natively:
 * legacy completions, moderations, audio transcriptions / translations and
 * speech. Each request goes upstream as the client sent it with only
 * `model` replaced by the route's; answers are checked for the fields the
 * surfaces rely on, and passed on with every other field.
 */
export interface OpenAIEndpoint {
  name: string;
  baseUrl: string;
  headers(ctx?: ProviderCallContext): Promise<Record<string, string>>;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const malformed = (provider: string, what: string) => new UpstreamError("malformed", `${provider}: ${what}`);

/** A text_completion, or one of its stream chunks: choices with a string `text`. An in-band error object is an upstream error. */
function checkTextCompletion(value: unknown, provider: string): Json {
  if (!isObject(value)) throw malformed(provider, "completion is not a JSON object");
  if (value.error !== undefined && value.error !== null) throw new UpstreamError("status", `${provider}: upstream reported an error in the response body`);
  if (!Array.isArray(value.choices)) throw malformed(provider, "completion.choices is not an array");
  value.choices.forEach((choice: unknown, i) => {
    if (!isObject(choice) || typeof choice.text !== "string" || typeof choice.index !== "number") throw malformed(provider, `completion.choices[${i}] has no text or index`);
  });
  return value;
}

export function openaiCompletions(e: OpenAIEndpoint): NativeCompletions {
  const url = `${e.baseUrl}/completions`;
  return {
    async create(body, ctx) {
      const sent: Json = { ...body, model: ctx.upstreamModel };
      delete sent.stream;
      delete sent.stream_options;
      const response = await postJson(ctx, e.name, url, sent, await e.headers(ctx));
      return checkTextCompletion(await readJson(ctx, e.name, response), e.name);
    },
    async *stream(body, ctx) {
      const response = await postJson(ctx, e.name, url, { ...body, model: ctx.upstreamModel, stream: true }, await e.headers(ctx));
      const type = response.headers.get("content-type");
      if (type !== null && !/^text\/event-stream\b/i.test(type.trim())) {
        response.body?.destroy();
        throw malformed(e.name, "stream answered with a non-SSE content type");
      }
      let yielded = 0;
      try {
        for await (const event of readSse(response.body)) {
          if (event.data === "[DONE]") return;
          const chunk = checkTextCompletion(parseEventJson(event, e.name), e.name);
          yielded++;
          yield chunk;
        }
      } catch (cause) {
        throw streamReadFailure(ctx, e.name, cause, yielded > 0);
      }
      if (ctx.signal.aborted) throw networkError(ctx, e.name, ctx.signal.reason);
      throw malformed(e.name, "stream ended without [DONE]");
    },
  };
}

export async function openaiModerations(e: OpenAIEndpoint, request: Json, ctx: ProviderCallContext): Promise<unknown> {
  const response = await postJson(ctx, e.name, `${e.baseUrl}/moderations`, { ...request, model: ctx.upstreamModel }, await e.headers(ctx));
  const json = await readJson(ctx, e.name, response);
  if (!isObject(json) || !Array.isArray(json.results) || !json.results.every((r) => isObject(r) && typeof r.flagged === "boolean")) {
    throw malformed(e.name, "moderation answer has no results");
  }
  return json;
}

/** Largest transcript the gateway reads back (verbose_json with word timestamps of a long file). */
const MAX_TRANSCRIPT_BYTES = 8 * 1024 * 1024;
const TRANSCRIPT_TYPES = /^\s*(application\/json|text\/plain|text\/vtt|application\/x-subrip|text\/srt)\s*(?:;|$)/i;

/**
 * The multipart body goes upstream byte for byte when the route keeps the
 * model name; when routing renames the model, the form is re-encoded with
 * only `model` replaced (a new boundary; every other part as parsed).
 */
export async function openaiAudio(e: OpenAIEndpoint, upload: AudioUpload, ctx: ProviderCallContext): Promise<RawAnswer> {
  let bytes = upload.bytes;
  let contentType = upload.contentType;
  if (ctx.upstreamModel !== upload.model) {
    const form = new FormData();
    for (const [key, value] of upload.form) form.append(key, key === "model" ? ctx.upstreamModel : value);
    const encoded = new Response(form);
    bytes = new Uint8Array(await encoded.arrayBuffer());
    contentType = encoded.headers.get("content-type") ?? contentType;
  }
  const response = await postBody(ctx, e.name, `${e.baseUrl}/audio/${upload.task}`, bytes, {
    ...(await e.headers(ctx)),
    "content-type": contentType,
    accept: "application/json, text/plain",
  });
  const type = TRANSCRIPT_TYPES.exec(response.headers.get("content-type") ?? "")?.[1]?.toLowerCase();
  if (type === undefined) {
    response.body?.destroy();
    throw malformed(e.name, "transcript answered with an unexpected content type");
  }
  // Only the media type the check read goes on to the client, never the upstream's parameters.
  return { bytes: await readBytes(ctx, e.name, response, MAX_TRANSCRIPT_BYTES), contentType: type === "application/json" ? type : `${type}; charset=utf-8` };
}

const AUDIO_TYPES = /^\s*(audio\/[A-Za-z0-9.+-]{1,64}|application\/octet-stream)\s*(?:;|$)/i;

/** Speech: the audio bytes as they arrive; the upstream body is destroyed when the consumer stops. */
export async function openaiSpeech(e: OpenAIEndpoint, request: Json, ctx: ProviderCallContext): Promise<BinaryStream> {
  const response = await postJson(ctx, e.name, `${e.baseUrl}/audio/speech`, { ...request, model: ctx.upstreamModel }, { ...(await e.headers(ctx)), accept: "audio/*" });
  const type = AUDIO_TYPES.exec(response.headers.get("content-type") ?? "")?.[1]?.toLowerCase();
  if (type === undefined || response.body === null) {
    response.body?.destroy();
    throw malformed(e.name, "speech answered with something other than audio");
  }
  return { contentType: type, chunks: nodeChunks(response.body, ctx, e.name) };
}

async function* nodeChunks(node: Readable, ctx: ProviderCallContext, provider: string): AsyncGenerator<Uint8Array> {
  let yielded = 0;
  try {
    for await (const chunk of node as AsyncIterable<Buffer>) {
      yielded++;
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } catch (cause) {
    throw streamReadFailure(ctx, provider, cause, yielded > 0);
  } finally {
    node.destroy();
  }
}

/** Moderations and audio exist at api.openai.com; an OpenAI-compatible endpoint is not assumed to have them. */
export function openaiOnly(kind: string, name: string, what: string): void {
  if (kind !== "openai") throw new GatewayError("unsupported_capability", `provider "${name}" (OpenAI-compatible) does not serve ${what}`);
}
