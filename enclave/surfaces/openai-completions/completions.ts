import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import { errorObject } from "../../http/error-body.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { signedStream, type StreamEncoder } from "../../http/signed-stream.js";
import type { ChatCompletionChunk } from "../../providers/types.js";
import { callOnce, openStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { chatChunkToTextChunk, chatToTextCompletion, completionToChat } from "./translate-completions.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/**
 * POST /v1/completions, OpenAI's legacy text completions, streamed or not:
 * native on OpenAI and OpenAI-compatible routes (the body as sent, model
 * replaced); translated to chat everywhere else (translate-completions.ts).
 * Streams are `data: {text_completion}` events ending `data: [DONE]`,
 * the receipt after it (attestation/client/stream-terminal.ts holds [DONE]).
 */
const completionsEncoder: StreamEncoder<Record<string, unknown>> = {
  chunk: (chunk) => `data: ${JSON.stringify(chunk)}\n\n`,
  end: () => "data: [DONE]\n\n",
  error: (err) => `data: ${JSON.stringify(errorObject(err, "openai"))}\n\n`,
};

export function completionsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function completions(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    const prompt = body.prompt;
    const ok = typeof prompt === "string" || (Array.isArray(prompt) && prompt.length > 0 && prompt.length <= 2048);
    if (!ok) throw new GatewayError("invalid_request", "`prompt` must be a string or a non-empty array.");
    if (body.stream !== undefined && typeof body.stream !== "boolean") throw new GatewayError("invalid_request", "`stream` must be a boolean.");
    const routes = routeRequest(router, ex, client, body.model);
    // OpenAI's own headers (beta, organization, project) for kind openai; bounded, never logged.
    const clientHeaders = openaiClientHeaders(view.headers);
    if (body.stream === true) {
      ex.streams();
      const opened = await openStream<Record<string, unknown>>(
        routes,
        view.signal,
        config.limits,
        deps.upstream,
        (route, ctx) => {
          if (route.adapter.completions) return route.adapter.completions.stream(body, ctx);
          return translatedStream(route.adapter.chatStream({ ...completionToChat(body), stream: true }, ctx));
        },
        clientHeaders,
      );
      ex.answered(opened, opened.value.first.model);
      return signedStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), completionsEncoder);
    }
    const result = await callOnce<Record<string, unknown>>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      async (route, ctx) => {
        if (route.adapter.completions) return route.adapter.completions.create(body, ctx);
        return chatToTextCompletion(await route.adapter.chat(completionToChat(body), ctx));
      },
      clientHeaders,
    );
    ex.answered(result, result.value.model);
    return responder.json(ex, 200, result.value);
  }
  return new Hono<GatewayEnv>().post("/completions", modelCallAdmission(s, "completions", "openai"), completions);
}

async function* translatedStream(chunks: AsyncIterable<ChatCompletionChunk>): AsyncGenerator<Record<string, unknown>> {
  for await (const chunk of chunks) yield chatChunkToTextChunk(chunk);
}
