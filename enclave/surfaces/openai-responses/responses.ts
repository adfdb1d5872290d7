import { Hono, type Context, type MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.js";
import { inOrder, modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { authenticate } from "../../http/middleware/auth.js";
import { concurrencySlot } from "../../http/middleware/concurrency.js";
import { exchangeRecord } from "../../http/middleware/exchange-record.js";
import { requireValidIdentity } from "../../http/middleware/identity-validity.js";
import { addressRateLimit, clientRateLimit } from "../../http/middleware/limits.js";
import { nodeRequest } from "../../http/middleware/node-request.js";
import { signedStream, type StreamEncoder } from "../../http/signed-stream.js";
import type { ChatRequest, ProviderCallContext } from "../../providers/types.js";
import type { Route } from "../../router.js";
import { callOnce, openStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { ChatStreamToResponses } from "./chat-stream-to-responses.js";
import { completionToResponse, responseObject, type ResponseFrame } from "./chat-to-response.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";
import { responsesRequestToChat } from "./responses-request-to-chat.js";
import { failureEvents, NativeStreamTracker, responsesSse, type StreamFailureSource } from "./responses-stream-events.js";
import { checkResponseId, forwardedQuery, storedResponseRoute } from "./stored-response-route.js";

/**
 * The OpenAI Responses API over every provider.
 *
 * POST /v1/responses, streamed or not: on a route whose provider speaks
 * Responses (kind openai; openai-compatible with capabilities.responses) the
 * body passes through with only `model` replaced, with the client's OpenAI
 * headers (openai-client-headers.ts); elsewhere it is translated to the
 * canonical request (responses-request-to-chat.ts) and the answer back to a
 * Response (chat-to-response.ts) or to Responses events
 * (chat-stream-to-responses.ts). GET/DELETE /v1/responses/{id} and GET
 * …/input_items go to OpenAI (stored-response-route.ts says which provider).
 */
export function responsesApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;

  async function createResponse(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    if (body.input !== undefined && typeof body.input !== "string" && !Array.isArray(body.input)) {
      throw new GatewayError("invalid_request", "`input` must be a string or an array of items.", { param: "input" });
    }
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean")
      throw new GatewayError("invalid_request", "`stream` must be a boolean.", { param: "stream" });
    const routes = routeRequest(router, ex, client, body.model);
    const headers = openaiClientHeaders(view.headers);
    // Translated once, and only if a route that needs it is tried; checked
    // before any upstream call when the first route needs it.
    let translated: ChatRequest | undefined;
    const canonical = () => (translated ??= responsesRequestToChat(body));
    if (!routes[0]!.adapter.nativeResponses) canonical();
    // The id ties the Response to its receipt (the exchange id, egw-<hex>).
    const frame: ResponseFrame = { id: `resp_${ex.id.slice(4)}`, createdAt: Math.floor(s.now().getTime() / 1000), model: ex.model, request: body };

    if (body.stream === true) {
      ex.streams();
      // Set by the attempt that answers (attempts run one after another, each resets them).
      let reported: unknown;
      // How a break after the first byte is written: the answering attempt's own (its sequence numbers, its response).
      let failure: StreamFailureSource = new NativeStreamTracker(() => responseObject(frame, "failed", []));
      const opened = await openStream<string>(routes, view.signal, config.limits, deps.upstream, (route, ctx) => {
        reported = undefined;
        const native = route.adapter.nativeResponses;
        if (native) {
          const tracker = new NativeStreamTracker(() => responseObject(frame, "failed", []));
          failure = tracker;
          return native.createStream(body, headers, ctx, (event) => {
            tracker.observe(event);
            if (event.type === "response.created") reported = (event.response as { model?: unknown } | undefined)?.model;
          });
        }
        const mapper = new ChatStreamToResponses(frame);
        failure = mapper;
        return translatedStream(route, canonical(), mapper, ctx, (model) => (reported = model));
      });
      ex.answered(opened, reported);
      const encoder: StreamEncoder<string> = { chunk: (text) => text, end: () => "", error: (err) => failureEvents(failure, err) };
      return signedStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), encoder);
    }

    const result = await callOnce<{ bytes: Uint8Array; model: unknown }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      const native = route.adapter.nativeResponses;
      if (native) return native.create(body, headers, ctx);
      const completion = await route.adapter.chat(canonical(), ctx);
      return { bytes: new TextEncoder().encode(JSON.stringify(completionToResponse(completion, frame))), model: completion.model };
    });
    ex.answered(result, result.value.model);
    return responder.finish(ex, 200, result.value.bytes);
  }

  /** GET/DELETE on a stored response: no body, the same limits as a model call. */
  const storedAdmission: MiddlewareHandler<GatewayEnv> = inOrder([
    nodeRequest(),
    exchangeRecord({ name: "responses.stored", surface: "openai", now: s.now }),
    requireValidIdentity(s.validity),
    addressRateLimit({ enabled: config.proxyProtocol, limits: config.limits, rates: s.rates }),
    authenticate(s.clients, "openai"),
    clientRateLimit({ limits: config.limits, rates: s.rates }),
    concurrencySlot({ concurrency: s.concurrency, bodyBytes: s.bodyBytes, metrics: deps.metrics }),
  ]);

  function stored(method: "GET" | "DELETE", suffix: string) {
    return async function storedResponse(c: Context<GatewayEnv>): Promise<Response> {
      const { client, exchange: ex, view } = c.var;
      const id = checkResponseId(c.req.param("id") ?? "");
      const query = forwardedQuery(c.req.url);
      const route = storedResponseRoute(router, config, deps.adapters, ex, client, new URL(c.req.url).searchParams.get("model"));
      const headers = openaiClientHeaders(view.headers);
      // Never retried: a DELETE that reached OpenAI once must not be sent twice.
      const result = await callOnce([route], view.signal, { ...config.limits, maxRetries: 0 }, deps.upstream, (r, ctx) =>
        r.adapter.nativeResponses!.stored(method, `/${id}${suffix}${query}`, headers, ctx),
      );
      ex.answered(result, result.value.model);
      return responder.finish(ex, 200, result.value.bytes);
    };
  }

  return new Hono<GatewayEnv>()
    .post("/responses", modelCallAdmission(s, "responses", "openai"), createResponse)
    .get("/responses/:id", storedAdmission, stored("GET", ""))
    .delete("/responses/:id", storedAdmission, stored("DELETE", ""))
    .get("/responses/:id/input_items", storedAdmission, stored("GET", "/input_items"));
}

/** Canonical chunks from a provider that does not speak Responses, as Responses events. */
async function* translatedStream(
  route: Route,
  request: ChatRequest,
  mapper: ChatStreamToResponses,
  ctx: ProviderCallContext,
  onModel: (model: unknown) => void,
): AsyncGenerator<string> {
  let first = true;
  for await (const chunk of route.adapter.chatStream({ ...request, stream: true, stream_options: { include_usage: true } }, ctx)) {
    if (first) onModel(chunk.model);
    first = false;
    const text = mapper.push(chunk).map(responsesSse).join("");
    if (text !== "") yield text;
  }
  yield mapper.finish().map(responsesSse).join("");
}
