import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { signedBinaryStream } from "../../http/signed-binary-stream.js";
import { openStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/**
 * POST /v1/audio/speech: JSON in, audio out, streamed as the provider
 * sends it with the receipt in an HTTP trailer (http/signed-binary-stream.ts).
 * Native on OpenAI routes, a small deterministic WAV on the local model
 * (providers/local/local-audio.ts); other kinds 400 unsupported_capability.
 */
export function audioSpeechApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function speech(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    if (typeof body.input !== "string") throw new GatewayError("invalid_request", "`input` must be a string.");
    // stream_format "sse" (base64 audio in SSE events) is another wire format; the binary stream is already streamed.
    if (body.stream_format !== undefined && body.stream_format !== "audio") throw new GatewayError("invalid_request", '`stream_format` must be "audio" here.');
    const routes = routeRequest(router, ex, client, body.model);
    const clientHeaders = openaiClientHeaders(view.headers);
    ex.streams();
    // The answering attempt's content type: attempts run one after another, each setting it before its first chunk.
    let contentType = "application/octet-stream";
    const opened = await openStream<Uint8Array>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      (route, ctx) => {
        const adapter = route.adapter;
        if (!adapter.speech) throw new GatewayError("unsupported_capability", "This model's provider does not offer speech.");
        return (async function* () {
          const audio = await adapter.speech!(body, ctx);
          contentType = audio.contentType;
          yield* audio.chunks;
        })();
      },
      clientHeaders,
    );
    ex.answered(opened, undefined);
    return signedBinaryStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), contentType, c.env?.outgoing);
  }
  return new Hono<GatewayEnv>().post("/audio/speech", modelCallAdmission(s, "audio.speech", "openai"), speech);
}
