import { GatewayError } from "../errors.js";
import type { Capabilities } from "../../attestation/trust-policy.js";
import type { ChatRequest, NativeGemini, NativeMessages, NativeResponses, ProviderAdapter, ProviderCallContext } from "./types.js";

/**
 * Holds an adapter to the capabilities its provider has under the trust
 * policy (attestation/provider-catalog.ts: the kind's defaults, narrowed by
 * the policy), for every kind alike, so no adapter has to remember to check.
 * A capability that is off answers 400 unsupported_capability before
 * anything goes upstream; embeddings and images that are off are removed,
 * so the surfaces' own "does not offer" check answers. The native surfaces
 * (Anthropic's messages, Gemini's methods, OpenAI's Responses) are held to the same set;
 * Responses is native only where `responses` is on. Every other member of
 * the adapter passes through unchanged.
 */
export function withCapabilities(adapter: ProviderAdapter, caps: Capabilities): ProviderAdapter {
  const name = adapter.info.name;
  const refuse = (what: string): never => {
    throw new GatewayError("unsupported_capability", `provider "${name}" does not serve ${what} under this enclave's trust policy`);
  };
  const checkChat = (request: { tools?: unknown; stream?: unknown }, streamed: boolean): void => {
    if (!caps.chat) refuse("chat");
    if (streamed && !caps.streaming) refuse("streaming");
    if (!caps.tools && Array.isArray(request?.tools) && request.tools.length > 0) refuse("tools");
  };
  const held = copyOf(adapter) as { -readonly [K in keyof ProviderAdapter]: ProviderAdapter[K] };
  // Async, so a refusal is a rejection like every adapter error, never a synchronous throw.
  held.chat = async (request: ChatRequest, ctx: ProviderCallContext) => {
    checkChat(request, false);
    return adapter.chat(request, ctx);
  };
  // A generator, so a refusal surfaces where the stream is read, as every adapter's own errors do.
  held.chatStream = async function* (request: ChatRequest, ctx: ProviderCallContext) {
    checkChat(request, true);
    yield* adapter.chatStream(request, ctx);
  };
  if (!caps.embeddings) held.embeddings = undefined;
  if (!caps.images) held.images = undefined;
  const native = adapter.native;
  if (native) {
    const nativeHeld: NativeMessages = copyOf(native);
    // Every argument passed on as given (the client's anthropic-beta / anthropic-version ride in the last one).
    nativeHeld.messages = async (body, ctx, headers) => {
      checkChat(body, false);
      return native.messages(body, ctx, headers);
    };
    nativeHeld.messagesStream = async function* (body, ctx, onModel, headers) {
      checkChat(body, true);
      yield* native.messagesStream(body, ctx, onModel, headers);
    };
    held.native = nativeHeld;
  }
  const gemini = adapter.nativeGemini;
  if (gemini) {
    // Gemini's own request names tools as `tools` too (functionDeclarations inside).
    const geminiHeld: NativeGemini = copyOf(gemini);
    geminiHeld.call = async (method, body, ctx) => {
      if (method === "embedContent" || method === "batchEmbedContents") {
        if (!caps.embeddings) refuse("embeddings");
      } else {
        checkChat(body, false);
      }
      return gemini.call(method, body, ctx);
    };
    geminiHeld.stream = async function* (body, ctx, onModel) {
      checkChat(body, true);
      yield* gemini.stream(body, ctx, onModel);
    };
    held.nativeGemini = geminiHeld;
  }
  const responses = adapter.nativeResponses;
  if (responses) {
    if (!caps.responses) {
      // Not spoken natively under this policy: /v1/responses is translated through chat (held above).
      held.nativeResponses = undefined;
    } else {
      const responsesHeld: NativeResponses = copyOf(responses);
      responsesHeld.create = async (body, headers, ctx) => {
        checkChat(body, false);
        return responses.create(body, headers, ctx);
      };
      responsesHeld.createStream = async function* (body, headers, ctx, observe) {
        checkChat(body, true);
        yield* responses.createStream(body, headers, ctx, observe);
      };
      held.nativeResponses = responsesHeld;
    }
  }
  return held;
}

/**
 * A copy with the same prototype and every own member, so that what holds
 * it (and anything spreading it, `{ ...adapter, chat }`) still sees every
 * member the adapter had, natives added later included.
 */
function copyOf<T extends object>(o: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(o) as object) as T, o);
}
