import { parseEventJson, readSse } from "../shared/read-sse.js";
import { streamReadFailure, withoutSyntaxCause } from "../shared/stream-read-failure.js";
import { postJson, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type NativeGemini, type NativeGeminiMethod, type ProviderCallContext } from "../types.js";

/**
 * The Gemini API spoken natively (the `/v1beta` surface on a Gemini route):
 * the client's body goes upstream with every field kept, to the route's
 * upstream model. The answer is parsed only to check it is a JSON object and
 * re-serialized (the bytes the client gets are the ones its receipt covers).
 */
export interface NativeGeminiOptions {
  name: string;
  /** `{base}/v1beta/models/{model}:{method}` */
  methodUrl: (model: string, method: string) => string;
  headers: () => Promise<Record<string, string>>;
  modelId: (model: unknown) => string;
  retry: { retryHint: (errorBody: string) => number | undefined };
  maxSseEventBytes?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Some bodies name the model again, and Google refuses one that names
 * another model than the path: batchEmbedContents in each request,
 * embedContent at the top, countTokens in its generateContentRequest. Those
 * are rewritten to the upstream model too (the client named its alias).
 */
function withUpstreamModel(method: NativeGeminiMethod, body: Record<string, unknown>, model: string): Record<string, unknown> {
  if (method === "batchEmbedContents" && Array.isArray(body.requests)) {
    return { ...body, requests: body.requests.map((r: unknown) => (isRecord(r) ? { ...r, model: `models/${model}` } : r)) };
  }
  if (method === "embedContent" && body.model !== undefined) return { ...body, model: `models/${model}` };
  if (method === "countTokens" && isRecord(body.generateContentRequest)) return { ...body, generateContentRequest: { ...body.generateContentRequest, model: `models/${model}` } };
  return body;
}

/** Google's in-stream failure: `data: {"error": {"code", "message", "status"}}`. */
function streamError(name: string, parsed: unknown): UpstreamError | undefined {
  if (!isRecord(parsed) || !isRecord(parsed.error)) return undefined;
  const code = typeof parsed.error.code === "number" && parsed.error.code >= 400 && parsed.error.code < 600 ? parsed.error.code : 500;
  return new UpstreamError("status", `${name}: stream error event`, code);
}

/** The terminal event of a candidate stream: a finishReason, or the prompt refused outright. */
function ends(parsed: unknown): boolean {
  if (!isRecord(parsed)) return false;
  if (Array.isArray(parsed.candidates) && parsed.candidates.some((c) => isRecord(c) && typeof c.finishReason === "string")) return true;
  return isRecord(parsed.promptFeedback) && typeof parsed.promptFeedback.blockReason === "string";
}

export function createNativeGemini(options: NativeGeminiOptions): NativeGemini {
  const { name, methodUrl, headers, modelId, retry } = options;
  return {
    async call(method, body, ctx: ProviderCallContext) {
      const model = modelId(ctx.upstreamModel);
      try {
        const response = await postJson(ctx, name, methodUrl(model, method), withUpstreamModel(method, body, model), await headers(), retry);
        const json = await readJson(ctx, name, response);
        if (!isRecord(json)) throw new UpstreamError("malformed", `${name}: ${method} answer is not a JSON object`);
        return { bytes: new TextEncoder().encode(JSON.stringify(json)), model: json.modelVersion };
      } catch (err) {
        throw withoutSyntaxCause(err);
      }
    },
    async *stream(body, ctx, onModel) {
      const model = modelId(ctx.upstreamModel);
      let response: Awaited<ReturnType<typeof postJson>>;
      try {
        response = await postJson(ctx, name, `${methodUrl(model, "streamGenerateContent")}?alt=sse`, body, await headers(), retry);
      } catch (err) {
        throw withoutSyntaxCause(err);
      }
      if (!/^text\/event-stream\b/i.test(response.headers.get("content-type") ?? "")) {
        response.body?.destroy();
        throw new UpstreamError("malformed", `${name}: stream response is not text/event-stream`);
      }
      let yielded = 0;
      let ended = false;
      try {
        for await (const event of readSse(response.body, options.maxSseEventBytes === undefined ? {} : { maxEventBytes: options.maxSseEventBytes })) {
          if (event.data === "") continue;
          const parsed = parseEventJson(event, name);
          const error = streamError(name, parsed);
          if (error) throw error;
          if (!isRecord(parsed)) throw new UpstreamError("malformed", `${name}: stream event is not a GenerateContentResponse`);
          if (yielded === 0) onModel?.(parsed.modelVersion);
          if (ends(parsed)) ended = true;
          yielded++;
          yield `data: ${event.data}\r\n\r\n`;
        }
      } catch (cause) {
        throw streamReadFailure(ctx, name, cause, yielded > 0);
      }
      // Gemini has no end marker: a stream that stops before a finishReason was cut off.
      if (!ended) throw new UpstreamError("malformed", `${name}: stream ended before a finishReason`);
    },
  };
}
