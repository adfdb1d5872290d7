import type { Context } from "hono";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import type { EmbeddingsRequest, ProviderAdapter, ProviderCallContext } from "../../providers/types.js";
import { UpstreamError } from "../../providers/types.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { modelMethodOf } from "./model-method-path.js";

/**
 * `:embedContent` and `:batchEmbedContents` (which @google/genai's
 * models.embedContent calls). Gemini routes pass through; elsewhere the
 * texts go through the adapter's canonical embeddings, and a provider
 * without embeddings is refused (unsupported_capability, 400).
 */
/** Google's own bound: "at most 100 requests can be in one batch". */
const MAX_BATCH = 100;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface EmbedOne {
  text: string;
  dimensions: number | undefined;
}

function embedRequest(value: unknown, at: string): EmbedOne {
  if (!isRecord(value)) throw new GatewayError("invalid_request", `${at} must be an object`);
  const content = value.content;
  if (!isRecord(content) || !Array.isArray(content.parts) || content.parts.length === 0) throw new GatewayError("invalid_request", `${at}.content.parts must be a non-empty array`);
  const text = content.parts
    .map((part: unknown, j) => {
      if (!isRecord(part) || typeof part.text !== "string") throw new GatewayError("unsupported_capability", `${at}.content.parts[${j}]: only text can be embedded on this route`);
      return part.text;
    })
    .join("");
  const dims = value.outputDimensionality;
  if (dims !== undefined && (typeof dims !== "number" || !Number.isInteger(dims) || dims < 1)) {
    throw new GatewayError("invalid_request", `${at}.outputDimensionality must be a positive integer`);
  }
  return { text, dimensions: dims };
}

/** The client's body as the texts to embed, in order; a batch must ask for one dimensionality. */
function embedRequests(method: "embedContent" | "batchEmbedContents", body: Record<string, unknown>): EmbedOne[] {
  if (method === "embedContent") return [embedRequest(body, "request")];
  if (!Array.isArray(body.requests) || body.requests.length === 0) throw new GatewayError("invalid_request", "`requests` must be a non-empty array.");
  if (body.requests.length > MAX_BATCH) throw new GatewayError("invalid_request", `\`requests\` may hold at most ${MAX_BATCH} items.`);
  return body.requests.map((r: unknown, i) => embedRequest(r, `requests[${i}]`));
}

async function translatedEmbeddings(adapter: ProviderAdapter, model: string, items: EmbedOne[], ctx: ProviderCallContext): Promise<number[][]> {
  if (!adapter.embeddings) throw new GatewayError("unsupported_capability", "This model's provider does not offer embeddings.");
  const dimensions = items[0]!.dimensions;
  if (items.some((i) => i.dimensions !== dimensions))
    throw new GatewayError("invalid_request", "Every request in a batch must ask for the same outputDimensionality on this route.");
  const request: EmbeddingsRequest = { model, input: items.map((i) => i.text), encoding_format: "float", ...(dimensions !== undefined && { dimensions }) };
  const response = await adapter.embeddings(request, ctx);
  const vectors = [...response.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
  if (vectors.length !== items.length || !vectors.every((v) => Array.isArray(v))) {
    throw new UpstreamError("malformed", `${adapter.info.name}: embeddings answer does not match the request`);
  }
  return vectors as number[][];
}

export function embedContentHandler(s: GatewayServices, method: "embedContent" | "batchEmbedContents") {
  const { config, deps, responder, router } = s;
  return async function embedContent(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    const { model } = modelMethodOf(c.req.path);
    const routes = routeRequest(router, ex, client, model);
    // Read for a translated route only: a Gemini route takes what Google takes (images for multimodal embedding models, taskType…).
    let read: EmbedOne[] | undefined;
    const items = () => (read ??= embedRequests(method, body));
    if (!routes[0]!.adapter.nativeGemini) items();
    const result = await callOnce<{ bytes: Uint8Array; model: unknown }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      if (route.adapter.nativeGemini) return route.adapter.nativeGemini.call(method, body, ctx);
      const vectors = await translatedEmbeddings(route.adapter, model, items(), ctx);
      const answer = method === "embedContent" ? { embedding: { values: vectors[0] } } : { embeddings: vectors.map((values) => ({ values })) };
      return { bytes: new TextEncoder().encode(JSON.stringify(answer)), model: route.upstreamModel };
    });
    ex.answered(result, result.value.model);
    return responder.finish(ex, 200, result.value.bytes);
  };
}
