import { randomUUID } from "node:crypto";
import type { BedrockPins } from "../../../attestation/trust-policy.js";
import { GatewayError } from "../../errors.js";
import type { UpstreamFetch, UpstreamResponse } from "../../http/upstream-response.js";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from "../canonical/types.js";
import { streamReadFailure, withoutSyntaxCause } from "../shared/stream-read-failure.js";
import { postJson, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type ProviderAdapter, type ProviderCallContext } from "../types.js";
import { BedrockIdentityError } from "./bedrock-identity-error.js";
import { checkBedrockIdentity, type AwsCredentials } from "./check-bedrock-identity.js";
import { fromConverseResponse } from "./convert-from-converse-response.js";
import { toConverseRequest } from "./convert-to-converse-request.js";
import { createConverseStreamMapper } from "./map-converse-stream.js";
import { readEventStream } from "./read-eventstream.js";
import { bedrockSigner, signBedrockRequest } from "./sign-bedrock-request.js";

/**
 * Amazon Bedrock Runtime, Converse API (AWS Bedrock API Reference):
 * - chat:       POST {base}/model/{modelId}/converse         (JSON)
 * - chatStream: POST {base}/model/{modelId}/converse-stream  (application/vnd.amazon.eventstream)
 * {base} is https://bedrock-runtime.<region>.amazonaws.com, fixed by the
 * trust policy's region. Requests are SigV4-signed with the host's role
 * credentials, and none is sent before STS has confirmed that those
 * credentials are the pinned account's (check-bedrock-identity.ts):
 * `ready` runs that check (the boot calls it, and every call awaits it).
 */
export interface BedrockAdapterOptions {
  name: string;
  baseUrl: string;
  pins: BedrockPins;
  /** The host's AWS credentials; absent: every call (and the boot) fails with ERR_BEDROCK_CREDENTIALS_MISSING. */
  credentials: AwsCredentials | undefined;
  /** Budget for the STS check. */
  identityTimeoutMs?: number;
}

/** Bedrock model ids and ARNs (foundation models, inference profiles): letters, digits and . _ : / @ -, starting with a letter or digit. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,2047}$/;

export function bedrockModelPath(model: unknown): string {
  if (typeof model !== "string" || !MODEL_ID.test(model)) throw new GatewayError("invalid_request", "model id for Bedrock may hold only letters, digits and . _ : / @ -");
  // One path segment: ":" and "/" are percent-encoded, as the AWS SDK does.
  return encodeURIComponent(model);
}

const EVENTSTREAM = "application/vnd.amazon.eventstream";

export function createBedrockAdapter(options: BedrockAdapterOptions): ProviderAdapter & { ready(fetch: UpstreamFetch): Promise<void> } {
  const { name, pins, credentials } = options;
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const signer = credentials && bedrockSigner(pins.region, credentials);
  let verified: Promise<void> | undefined;

  /** The identity check, once; a transient failure is retried on the next call, a wrong identity never is. */
  function ready(fetch: UpstreamFetch): Promise<void> {
    if (!credentials) {
      return Promise.reject(new BedrockIdentityError("ERR_BEDROCK_CREDENTIALS_MISSING", `provider "${name}": no AWS credentials were handed in, so Bedrock cannot be called`));
    }
    verified ??= checkBedrockIdentity(pins, credentials, fetch, options.identityTimeoutMs ?? 15_000).then(
      () => undefined,
      (err: unknown) => {
        if (!(err instanceof BedrockIdentityError && err.code === "ERR_BEDROCK_IDENTITY")) verified = undefined;
        throw err;
      },
    );
    return verified;
  }

  async function post(ctx: ProviderCallContext, method: "converse" | "converse-stream", request: ChatRequest): Promise<UpstreamResponse> {
    const url = `${baseUrl}/model/${bedrockModelPath(ctx.upstreamModel)}/${method}`;
    const body = toConverseRequest(request);
    try {
      await ready(ctx.fetch);
    } catch (err) {
      // The gateway's clients see a provider that cannot be used; the code stays on `cause` for the logs.
      throw new UpstreamError("connect", `${name}: the AWS identity for Bedrock is not confirmed`, undefined, undefined, { cause: err });
    }
    const accept = method === "converse" ? "application/json" : EVENTSTREAM;
    // postJson serialises `body` again; JSON.stringify of the same object gives the same bytes, which is what was signed.
    const headers = await signBedrockRequest(signer!, url, JSON.stringify(body), accept, ctx.now());
    try {
      return await postJson(ctx, name, url, body, headers);
    } catch (err) {
      throw withoutSyntaxCause(err);
    }
  }

  return {
    info: { name, kind: "bedrock", baseUrl, requestIdHeader: "x-amzn-requestid" },
    ready,

    async chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
      const response = await post(ctx, "converse", request);
      const json = await readJson(ctx, name, response);
      return fromConverseResponse(json, { id: `chatcmpl-${randomUUID()}`, created: Math.floor(ctx.now().getTime() / 1000), model: ctx.upstreamModel, provider: name });
    },

    async *chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
      const mapper = createConverseStreamMapper({
        id: `chatcmpl-${randomUUID()}`,
        created: Math.floor(ctx.now().getTime() / 1000),
        model: ctx.upstreamModel,
        includeUsage: request.stream_options?.include_usage === true,
        provider: name,
      });
      const response = await post(ctx, "converse-stream", request);
      const type = response.headers.get("content-type") ?? "";
      if (!type.toLowerCase().startsWith(EVENTSTREAM)) {
        response.body?.destroy();
        throw new UpstreamError("malformed", `${name}: stream response is not ${EVENTSTREAM}`);
      }
      const messages = readEventStream(response.body, name);
      let yielded = 0;
      try {
        for (;;) {
          let next: IteratorResult<Awaited<ReturnType<typeof messages.next>>["value"]>;
          try {
            next = await messages.next();
          } catch (err) {
            throw streamReadFailure(ctx, name, err, yielded > 0);
          }
          if (next.done) break;
          for (const chunk of mapper.push(next.value as Parameters<typeof mapper.push>[0])) {
            yielded++;
            yield chunk;
          }
        }
      } finally {
        await messages.return(undefined).catch(() => {});
      }
      yield* mapper.finish();
    },
  };
}
