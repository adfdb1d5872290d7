import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import type { RawAnswer } from "../../providers/types.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { multipartUpload } from "./multipart-upload.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/**
 * POST /v1/audio/transcriptions and /v1/audio/translations (multipart):
 * native on OpenAI routes (the multipart bytes forwarded as received, or
 * re-encoded with only `model` replaced when the route renames the model:
 * providers/openai/openai-more-endpoints.ts), deterministic on the local
 * model; other kinds 400 unsupported_capability. The answer is the
 * provider's bytes and content type (JSON, or text for text/srt/vtt),
 * signed like any answer; the receipt's request hash covers the exact
 * multipart bytes received.
 */
export function audioTranscriptionsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function transcribe(c: Context<GatewayEnv>): Promise<Response> {
    const { upload, client, exchange: ex, view } = c.var;
    // OpenAI's streamed transcription answers SSE deltas; this endpoint answers one document, so it says so instead of failing upstream.
    if (upload.form.get("stream") === "true") throw new GatewayError("invalid_request", "Streamed transcription (`stream=true`) is not supported by this gateway.");
    const routes = routeRequest(router, ex, client, upload.model);
    const clientHeaders = openaiClientHeaders(view.headers);
    const result = await callOnce<RawAnswer>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      (route, ctx) => {
        if (!route.adapter.audio) throw new GatewayError("unsupported_capability", "This model's provider does not offer audio transcription.");
        return route.adapter.audio(upload, ctx);
      },
      clientHeaders,
    );
    ex.answered(result, undefined);
    return responder.finish(ex, 200, result.value.bytes, { "content-type": result.value.contentType });
  }
  const app = new Hono<GatewayEnv>();
  for (const task of ["transcriptions", "translations"] as const) {
    app.post(`/audio/${task}`, modelCallAdmission(s, `audio.${task}`, "openai", multipartUpload(config.limits, task)), transcribe);
  }
  return app;
}
