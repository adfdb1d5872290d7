import { createHash, randomBytes } from "node:crypto";
import { Hono, type Context } from "hono";
import { ATTEST_PROOF_HEADER, parseAttestProof } from "../attestation/attest-proof.js";
import { boundedUpstreamText, MAX_UPSTREAM_MODEL, RECEIPT_HEADER, receiptPath, receiptSseBlock, signReceipt, type ReceiptClaims, type UpstreamProvenance } from "../attestation/receipt.js";
import type { AttestationService } from "./attestation-service.js";
import { ClientDirectory } from "./auth.js";
import { GatewayError, isGatewayError } from "./errors.js";
import { parseJsonObject, readBody } from "./http/body.js";
import { requestView } from "./http/request-view.js";
import { CLIENT_ADDRESS } from "./http/proxy-header.js";
import { errorObject, type Surface } from "./http/error-body.js";
import type { EnclaveIdentity } from "./identity.js";
import { ByteBudget } from "./limits/byte-budget.js";
import { Semaphore, TokenBuckets } from "./limits/token-bucket.js";
import type { Logger } from "./observability/log.js";
import type { GatewayMetrics } from "./observability/metrics.js";
import type { ChatCompletionChunk, ChatRequest, EmbeddingsRequest, ImagesRequest, ProviderAdapter, ProviderCallContext } from "./providers/types.js";
import { clientMayUse, Router, type Route } from "./router.js";
import { anthropicRequestToOpenAI, completionToAnthropicMessage } from "./providers/anthropic/index.js";
import { anthropicErrorEvent, formatAnthropicSse, OpenAIToAnthropicStreamMapper } from "./providers/anthropic/index.js";
import type { ClientConfig, RuntimeConfig } from "./runtime-config.js";
import { callChat, callOnce, openChatStream, openStream, toGatewayError, type Attempted, type UpstreamDeps } from "./upstream.js";

/**
 * The enclave's HTTP service. Every response under /v1 (success, gateway
 * error or upstream error) carries a receipt signed by the attested key:
 * in the `x-egw-receipt` header, or for streams as a final SSE comment
 * block `: egw-receipt <base64url>` after the stream's own end, which every
 * SSE parser discards. Nothing here logs or labels content: see observability/.
 */
export interface GatewayDeps {
  config: RuntimeConfig;
  /**
   * The trust policy's exact bytes, served at GET /v1/attestation/policy: a
   * client hashes them, compares with the document's `policy_sha256`, and
   * judges what they say before it sends a request.
   */
  trustPolicyBytes: Uint8Array;
  adapters: ReadonlyMap<string, ProviderAdapter>;
  attestation: AttestationService;
  identity: EnclaveIdentity;
  log: Logger;
  metrics: GatewayMetrics;
  upstream: UpstreamDeps;
}

interface Exchange {
  id: string;
  surface: string;
  started: number;
  method: string;
  /** receiptPath of the request path, no query. */
  path: string;
  /** Whether the body was read; only then is there a request hash (receipt v2 body_read). */
  bodyRead: boolean;
  requestSha256: Uint8Array | undefined;
  requestBytes: number;
  model: string;
  label: string;
  provider: string;
  /** Set once an upstream answered. */
  upstream: UpstreamProvenance | undefined;
  stream: boolean;
}

/** A refused request's unread body up to this size (declared) is discarded on the open connection, not closed on. */
const DISCARD_UNREAD_BYTES = 64 * 1024;


function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** The receipt's upstream.origin: scheme://host[:port] of the provider's base URL, "local" for the built-in model. */
function upstreamOriginOf(adapter: ProviderAdapter): string {
  if (adapter.info.kind === "local") return "local";
  try {
    return new URL(adapter.info.baseUrl).origin;
  } catch {
    return "unknown";
  }
}

/** The request path as the URL parser normalised it, without the query (what the client's URL parser sent). */
function requestPathname(c: Context): string {
  try {
    return new URL(c.req.url).pathname;
  } catch {
    return "/";
  }
}

export function createGatewayApp(deps: GatewayDeps): Hono {
  const { config, log, metrics } = deps;
  const now = () => deps.upstream.now();
  const router = new Router(config, deps.adapters);
  const clients = new ClientDirectory(config.clients);
  const concurrency = new Semaphore(config.limits.maxConcurrentRequests);
  const bodyBytes = new ByteBudget(config.limits.maxInFlightBodyBytes);
  const rates = new TokenBuckets(() => now().getTime());
  const app = new Hono();

  function newExchange(surface: string, c: Context): Exchange {
    return {
      id: `egw-${randomBytes(12).toString("hex")}`,
      surface,
      started: now().getTime(),
      method: c.req.method.toUpperCase(),
      path: receiptPath(requestPathname(c)),
      bodyRead: false,
      requestSha256: undefined,
      requestBytes: 0,
      model: "",
      label: "(unrouted)",
      provider: "",
      upstream: undefined,
      stream: false,
    };
  }

  function claims(ex: Exchange, status: number, responseSha256: Uint8Array): ReceiptClaims {
    return {
      v: 2,
      id: ex.id,
      time: now().getTime(),
      method: ex.method,
      path: ex.path,
      surface: ex.surface,
      model: ex.model,
      provider: ex.provider,
      status,
      stream: ex.stream,
      bodyRead: ex.bodyRead,
      ...(ex.bodyRead && ex.requestSha256 && { requestSha256: ex.requestSha256 }),
      responseSha256,
      ...(ex.upstream && { upstream: ex.upstream }),
    };
  }

  function record(ex: Exchange, status: number, responseBytes: number, code?: string): void {
    const seconds = (now().getTime() - ex.started) / 1000;
    metrics.requests.inc({ surface: ex.surface, model: ex.label, provider: ex.provider || "(none)", status: String(status) });
    metrics.latency.observe({ surface: ex.surface, stream: String(ex.stream) }, seconds);
    metrics.requestBytes.inc({ surface: ex.surface }, ex.requestBytes);
    metrics.responseBytes.inc({ surface: ex.surface }, responseBytes);
    if (code) metrics.errors.inc({ surface: ex.surface, code });
    log.log(status >= 500 ? "warn" : "info", "request", {
      reqId: ex.id,
      surface: ex.surface,
      model: ex.label,
      provider: ex.provider || undefined,
      status,
      code,
      stream: ex.stream,
      ms: Math.round(seconds * 1000),
      reqBytes: ex.requestBytes,
      resBytes: responseBytes,
    });
  }

  /** A complete (non-streamed) response: body bytes hashed, receipt in a header. */
  function finish(ex: Exchange, status: number, body: Uint8Array, extraHeaders: Record<string, string> = {}, code?: string): Response {
    const receipt = signReceipt(claims(ex, status, new Uint8Array(createHash("sha256").update(body).digest())), deps.identity.receipt.privateKey);
    record(ex, status, body.byteLength, code);
    return new Response(body, {
      status,
      headers: {
        "content-type": "application/json",
        "x-request-id": ex.id,
        [RECEIPT_HEADER]: b64url(receipt),
        ...extraHeaders,
      },
    });
  }

  function json(ex: Exchange, status: number, value: unknown, headers?: Record<string, string>): Response {
    return finish(ex, status, new TextEncoder().encode(JSON.stringify(value)), headers);
  }

  function fail(ex: Exchange, err: unknown, surface: Surface, close = false): Response {
    const e = isGatewayError(err) ? err : toGatewayError(err);
    if (e.code === "internal_error") log.log("error", "internal_error", { reqId: ex.id, surface: ex.surface });
    const headers: Record<string, string> = {};
    if (e.retryAfter !== undefined) headers["retry-after"] = String(e.retryAfter);
    // The unread rest of a refused body must not be read or kept: close.
    if (close || e.code === "request_too_large") headers.connection = "close";
    return finish(ex, e.status, new TextEncoder().encode(JSON.stringify(errorObject(e, surface))), headers, e.code);
  }

  // A sealed identity's signing key has a window (enclave/secrets/identity-blob.ts).
  // Past it, receipts would claim times no verifier accepts: refuse model
  // calls and fail the health check so the replica is replaced by one booted
  // from the rotated identity.
  const keyNotAfter = deps.identity.receipt.window?.notAfter;
  const identityExpired = (): boolean => keyNotAfter !== undefined && deps.upstream.now().getTime() >= keyNotAfter;
  function identityCheck(): void {
    if (identityExpired()) throw new GatewayError("identity_expired", "This replica's receipt key has expired; it is being replaced.");
  }

  /**
   * Common front half of every model call, cheapest refusal first, so that
   * nobody can make the enclave hold a body it would refuse: (the route
   * exists: Hono) → per-address limit → auth from the headers → per-token
   * limit → concurrency slot → the body, bounded in size, time and the
   * shared in-flight byte budget → content type, JSON. Anything refused before
   * the body was read is answered without reading it (with Connection: close
   * unless it is small, see bodyLeftUnread), and the exchange says
   * `bodyRead: false`.
   */
  async function admit(
    c: Context,
    ex: Exchange,
    surface: Surface,
  ): Promise<{ body: Record<string, unknown>; client: ClientConfig; release: () => void; signal: AbortSignal }> {
    identityCheck();
    const view = requestView(c);
    // Per-address limit first, when the relay reports addresses: it also
    // slows down token guessing from one address.
    const address = clientAddress(c);
    if (address !== null) {
      const perIp = config.limits.ipRateLimitPerMinute;
      const ipWait = rates.take(`ip:${address}`, Math.max(1, perIp), perIp / 60);
      if (ipWait > 0) throw new GatewayError("rate_limited", "Rate limit reached for this client address.", { retryAfter: ipWait });
    }
    const client = clients.authenticate(view.headers, surface);
    const perMinute = client.rateLimitPerMinute ?? config.limits.rateLimitPerMinute;
    const wait = rates.take(`client:${client.name}`, Math.max(1, perMinute), perMinute / 60);
    if (wait > 0) throw new GatewayError("rate_limited", "Rate limit reached for this API key.", { retryAfter: wait });
    const release = concurrency.tryAcquire();
    if (!release) throw new GatewayError("overloaded", "The gateway is at its concurrency limit; retry shortly.", { retryAfter: 1 });
    metrics.inFlight.inc();
    const reservation = bodyBytes.reservation();
    let released = false;
    const releaseOnce = () => {
      if (released) return;
      released = true;
      reservation.release();
      metrics.inFlight.dec();
      release();
    };
    try {
      const bytes = await readBody(view, { maxBytes: config.limits.maxBodyBytes, timeoutMs: config.limits.bodyTimeoutMs, reservation }).catch(
        (err: unknown) => {
          throw isGatewayError(err) ? err : new GatewayError("invalid_request", "Could not read the request body.", { cause: err });
        },
      );
      ex.bodyRead = true;
      ex.requestBytes = bytes.byteLength;
      ex.requestSha256 = new Uint8Array(createHash("sha256").update(bytes).digest());
      // After the read (an authenticated client, in its slot), so that the
      // receipt of this refusal covers the body that was sent.
      const contentType = view.headers.get("content-type") ?? "";
      if (!/^application\/json\b/i.test(contentType)) {
        throw new GatewayError("unsupported_media_type", "Content-Type must be application/json.");
      }
      return {
        body: parseJsonObject(bytes),
        client,
        release: releaseOnce,
        get signal() {
          return view.signal;
        },
      };
    } catch (err) {
      releaseOnce();
      throw err;
    }
  }

  /**
   * Whether the answer must close the connection: the body was not (fully)
   * read, Node has not already received all of it, and it is not declared
   * small. Closing keeps the unread rest from ever being read (Node stops
   * reading a socket it closes). A small declared body is left to
   * @hono/node-server, which discards it without keeping it (bounded in time
   * and bytes), so that a client still writing it gets its answer instead of
   * a reset, and keeps its connection.
   */
  function bodyLeftUnread(c: Context, ex: Exchange): boolean {
    if (ex.bodyRead) return false;
    const incoming = (c.env as { incoming?: { complete?: boolean } } | undefined)?.incoming;
    if (incoming?.complete === true) return false;
    const declared = requestView(c).headers.get("content-length");
    return declared === null || !/^\d{1,9}$/.test(declared) || Number(declared) > DISCARD_UNREAD_BYTES;
  }

  /** The client address the host relay reported (PROXY v2), if it reports any. */
  function clientAddress(c: Context): string | null {
    if (!config.proxyProtocol) return null;
    const socket = (c.env as { incoming?: { socket?: { _parent?: Record<symbol, unknown> } } } | undefined)?.incoming?.socket;
    const address = socket?._parent?.[CLIENT_ADDRESS];
    return typeof address === "string" ? address : null;
  }

  /** Whom a fresh attestation document is counted against: the relay's PROXY v2 address, else the socket's peer. */
  function attestationAddress(c: Context): string | null {
    if (config.proxyProtocol) return clientAddress(c);
    const address = (c.env as { incoming?: { socket?: { remoteAddress?: unknown } } } | undefined)?.incoming?.socket?.remoteAddress;
    return typeof address === "string" ? address : null;
  }

  function routeFor(ex: Exchange, client: ClientConfig, model: unknown): Route[] {
    if (typeof model !== "string" || model.length === 0 || model.length > 256) {
      throw new GatewayError("invalid_request", "`model` must be a non-empty string.");
    }
    const route = router.resolve(model);
    if (!clientMayUse(client, route.exposed)) {
      throw new GatewayError("model_not_allowed", "This API key may not use this model.");
    }
    ex.model = model;
    ex.label = route.label;
    ex.provider = route.adapter.info.name;
    const fallbacks = route.fallbacks.map((name) => router.resolve(name)).filter((r) => clientMayUse(client, r.exposed));
    return [route, ...fallbacks];
  }

  /**
   * The route that answered, the model it reported (for streams: in its
   * first chunk), and what egress saw of that exchange: the TLS key verified
   * on its connection and the provider's request id (upstream-provenance.ts).
   */
  function served(ex: Exchange, answered: Pick<Attempted<unknown>, "route" | "answeredBy">, reported?: unknown): void {
    const { route, answeredBy } = answered;
    ex.provider = route.adapter.info.name;
    const model = boundedUpstreamText(reported, MAX_UPSTREAM_MODEL);
    ex.upstream = {
      origin: upstreamOriginOf(route.adapter),
      ...(answeredBy?.tlsSpkiSha256 && { tlsSpkiSha256: answeredBy.tlsSpkiSha256 }),
      ...(answeredBy?.requestId !== undefined && { requestId: answeredBy.requestId }),
      ...(model !== undefined && { model }),
    };
  }

  type Admitted = Awaited<ReturnType<typeof admit>>;

  /**
   * The scaffold every model call shares: admit (body, auth, limits), run,
   * turn any failure into the surface's error with a receipt, and give the
   * concurrency slot back — unless the handler handed it to a stream, which
   * releases it when it ends.
   */
  function modelCall(
    name: string,
    surface: Surface,
    run: (c: Context, ex: Exchange, admitted: Admitted, handOff: () => () => void) => Promise<Response>,
  ) {
    return async (c: Context): Promise<Response> => {
      const ex = newExchange(name, c);
      let release: (() => void) | undefined;
      try {
        const admitted = await admit(c, ex, surface);
        release = admitted.release;
        const handOff = () => {
          const slot = release!;
          release = undefined;
          return slot;
        };
        return await run(c, ex, admitted, handOff);
      } catch (err) {
        return fail(ex, err, surface, bodyLeftUnread(c, ex));
      } finally {
        release?.();
      }
    };
  }

  // ─── /v1/chat/completions ──────────────────────────────────────────────
  app.post(
    "/v1/chat/completions",
    modelCall("chat.completions", "openai", async (_c, ex, admitted, handOff) => {
      const { body, client } = admitted;
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        throw new GatewayError("invalid_request", "`messages` must be a non-empty array.");
      }
      if (body.stream !== undefined && typeof body.stream !== "boolean") throw new GatewayError("invalid_request", "`stream` must be a boolean.");
      const routes = routeFor(ex, client, body.model);
      const request = body as unknown as ChatRequest;
      if (request.stream === true) {
        ex.stream = true;
        const opened = await openChatStream(routes, request, admitted.signal, config.limits, deps.upstream);
        served(ex, opened, opened.value.first.model);
        return streamChat(ex, opened.value, handOff(), openaiStream());
      }
      const result = await callChat(routes, request, admitted.signal, config.limits, deps.upstream);
      served(ex, result, result.value.model);
      return json(ex, 200, result.value);
    }),
  );

  /** How a surface writes a chat stream: each chunk, the normal end, an in-stream error. */
  interface StreamEncoder<T = ChatCompletionChunk> {
    chunk(chunk: T): string;
    end(): string;
    error(err: GatewayError): string;
  }

  const openaiStream: () => StreamEncoder = () => ({
    chunk: (chunk) => `data: ${JSON.stringify(chunk)}\n\n`,
    end: () => "data: [DONE]\n\n",
    error: (err) => `data: ${JSON.stringify(errorObject(err, "openai"))}\n\n`,
  });

  /** The Anthropic surface streams pre-framed SSE text (native, or translated per route). */
  const anthropicStream: StreamEncoder<string> = {
    chunk: (text) => text,
    end: () => "",
    error: (err) => formatAnthropicSse(anthropicErrorEvent((errorObject(err, "anthropic") as { error: { type: string } }).error.type, err.message)),
  };

  /** OpenAI chunks from a non-Anthropic provider, re-framed as Anthropic events. */
  async function* translatedMessagesStream(
    route: Route,
    request: ChatRequest,
    model: string,
    ctx: ProviderCallContext,
    onModel: (model: unknown) => void,
  ): AsyncGenerator<string> {
    const mapper = new OpenAIToAnthropicStreamMapper({ provider: route.adapter.info.name, model });
    let first = true;
    for await (const chunk of route.adapter.chatStream({ ...request, model: route.upstreamModel, stream: true }, ctx)) {
      if (first) onModel(chunk.model);
      first = false;
      const text = mapper.push(chunk).map(formatAnthropicSse).join("");
      if (text !== "") yield text;
    }
    yield mapper.finish().map(formatAnthropicSse).join("");
  }

  function streamChat<T>(
    ex: Exchange,
    opened: { first: T; rest: AsyncGenerator<T>; close: () => void },
    release: () => void,
    encoder: StreamEncoder<T>,
  ): Response {
    const hash = createHash("sha256");
    const utf8 = new TextEncoder();
    let sent = 0;
    let firstSent = false;
    let finished = false;
    const finishStream = (controller: ReadableStreamDefaultController<Uint8Array>, code?: string) => {
      if (finished) return;
      finished = true;
      const receipt = signReceipt(claims(ex, 200, new Uint8Array(hash.digest())), deps.identity.receipt.privateKey);
      controller.enqueue(utf8.encode(receiptSseBlock(receipt)));
      controller.close();
      record(ex, 200, sent, code);
      release();
    };
    const emit = (controller: ReadableStreamDefaultController<Uint8Array>, text: string) => {
      if (text === "") return;
      const bytes = utf8.encode(text);
      hash.update(bytes);
      sent += bytes.byteLength;
      controller.enqueue(bytes);
    };
    const body = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            if (!firstSent) {
              firstSent = true;
              metrics.firstByte.observe({ surface: ex.surface }, (now().getTime() - ex.started) / 1000);
              emit(controller, encoder.chunk(opened.first));
              return;
            }
            // Pull until something is written: a surface may map a chunk to nothing.
            for (;;) {
              const next = await opened.rest.next();
              if (next.done) {
                emit(controller, encoder.end());
                finishStream(controller);
                return;
              }
              const text = encoder.chunk(next.value);
              if (text !== "") {
                emit(controller, text);
                return;
              }
            }
          } catch (err) {
            // Bytes already reached the client: no retry. Tell the client in
            // the surface's in-stream error form, sign what was sent, and stop.
            const e = toGatewayError(err);
            emit(controller, encoder.error(e));
            finishStream(controller, e.code);
          }
        },
        cancel: () => {
          // The client went away: abort the upstream call now.
          opened.close();
          void opened.rest.return(undefined).catch(() => {});
          if (!finished) {
            finished = true;
            record(ex, 499, sent, "client_closed");
            release();
          }
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(body, {
      status: 200,
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-request-id": ex.id,
        "x-accel-buffering": "no",
      },
    });
  }

  // ─── /v1/messages (Anthropic shape, any provider) ───────────────────────
  // Translated to the canonical request and back, so every model is
  // reachable with the Anthropic SDK unchanged.
  app.post(
    "/v1/messages",
    modelCall("messages", "anthropic", async (_c, ex, admitted, handOff) => {
      const { body, client } = admitted;
      if (!Array.isArray(body.messages)) throw new GatewayError("invalid_request", "`messages` must be an array.");
      if (body.stream !== undefined && typeof body.stream !== "boolean") throw new GatewayError("invalid_request", "`stream` must be a boolean.");
      const routes = routeFor(ex, client, body.model);
      // Anthropic routes pass the request through untouched; others get it
      // translated, once, and only if they are tried.
      let translated: ChatRequest | undefined;
      const canonical = () => (translated ??= anthropicRequestToOpenAI(body));
      if (!routes[0]!.adapter.native) canonical();
      if (body.stream === true) {
        ex.stream = true;
        // The model the provider reported in its first event. Attempts run one
        // after another and each starts by clearing it, so once openStream
        // returns it is the answering attempt's.
        let reported: unknown;
        const onModel = (model: unknown) => (reported = model);
        const opened = await openStream<string>(routes, admitted.signal, config.limits, deps.upstream, (route, ctx) => {
          reported = undefined;
          return route.adapter.native ? route.adapter.native.messagesStream(body, ctx, onModel) : translatedMessagesStream(route, canonical(), ex.model, ctx, onModel);
        });
        served(ex, opened, reported);
        return streamChat(ex, opened.value, handOff(), anthropicStream);
      }
      const result = await callOnce<{ bytes: Uint8Array; model: unknown }>(routes, admitted.signal, config.limits, deps.upstream, async (route, ctx) => {
        if (route.adapter.native) return route.adapter.native.messages(body, ctx);
        const completion = await route.adapter.chat({ ...canonical(), model: route.upstreamModel }, ctx);
        return {
          bytes: new TextEncoder().encode(JSON.stringify(completionToAnthropicMessage(completion, { provider: route.adapter.info.name }))),
          model: completion.model,
        };
      });
      served(ex, result, result.value.model);
      return finish(ex, 200, result.value.bytes);
    }),
  );

  // ─── /v1/embeddings and /v1/images/generations ─────────────────────────
  for (const [path, surface] of [
    ["/v1/embeddings", "embeddings"],
    ["/v1/images/generations", "images"],
  ] as const) {
    app.post(
      path,
      modelCall(surface, "openai", async (_c, ex, admitted) => {
        const { body, client } = admitted;
        const routes = routeFor(ex, client, body.model);
        const result = await callOnce<unknown>(routes, admitted.signal, config.limits, deps.upstream, (route, ctx): Promise<unknown> => {
          const adapter = route.adapter;
          if (surface === "embeddings") {
            if (!adapter.embeddings) throw new GatewayError("unsupported_capability", "This model's provider does not offer embeddings.");
            return adapter.embeddings({ ...(body as unknown as EmbeddingsRequest), model: route.upstreamModel }, ctx);
          }
          if (!adapter.images) throw new GatewayError("unsupported_capability", "This model's provider does not generate images.");
          return adapter.images({ ...(body as unknown as ImagesRequest), model: route.upstreamModel }, ctx);
        });
        served(ex, result, (result.value as { model?: unknown } | null)?.model);
        return json(ex, 200, result.value);
      }),
    );
  }

  // ─── /v1/models ────────────────────────────────────────────────────────
  app.get("/v1/models", async (c) => {
    const ex = newExchange("models", c);
    try {
      const client = clients.authenticate(requestView(c).headers, c.req.header("anthropic-version") ? "anthropic" : "openai");
      const created = Math.floor(now().getTime() / 1000);
      const data = router
        .list()
        .filter((m) => clientMayUse(client, m.id))
        .map((m) => ({ id: m.id, object: "model", created, owned_by: m.provider, ...(m.description && { description: m.description }) }));
      return json(ex, 200, { object: "list", data });
    } catch (err) {
      return fail(ex, err, "openai");
    }
  });

  // ─── /v1/attestation ───────────────────────────────────────────────────
  app.get("/v1/attestation", async (c) => {
    const ex = newExchange("attestation", c);
    try {
      const nonceHex = c.req.query("nonce");
      let doc: Uint8Array;
      if (nonceHex === undefined) {
        doc = await deps.attestation.current();
        metrics.attestations.inc({ kind: "cached" });
      } else {
        if (!/^([0-9a-fA-F]{2}){1,64}$/.test(nonceHex)) throw new GatewayError("invalid_request", "nonce must be hex, 8..64 bytes.");
        const proof = parseAttestProof(requestView(c).headers.get(ATTEST_PROOF_HEADER));
        doc = await deps.attestation.fresh(new Uint8Array(Buffer.from(nonceHex, "hex")), { address: attestationAddress(c), proof });
        metrics.attestations.inc({ kind: "fresh" });
      }
      const wantsJson = c.req.query("format") === "json" || /application\/json/.test(c.req.header("accept") ?? "");
      if (wantsJson) {
        const body = { format: "cose_sign1", encoding: "base64", document: Buffer.from(doc).toString("base64"), fresh: nonceHex !== undefined };
        return json(ex, 200, body, { "cache-control": "no-store" });
      }
      return finish(ex, 200, doc, { "content-type": "application/cbor", "cache-control": "no-store" });
    } catch (err) {
      return fail(ex, err, "openai");
    }
  });

  // ─── /v1/attestation/policy ────────────────────────────────────────────
  // Before authentication, like the document: a client reads it before it
  // sends its token. Its bytes are exactly the attested ones, never re-encoded.
  const policyHeaders = {
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-egw-policy-sha256": createHash("sha256").update(deps.trustPolicyBytes).digest("hex"),
  };
  app.get("/v1/attestation/policy", (c) => finish(newExchange("attestation", c), 200, deps.trustPolicyBytes, policyHeaders));

  app.get("/healthz", (c) => (identityExpired() ? c.json({ status: "identity_expired" }, 503) : c.json({ status: "ok" })));
  app.get("/metrics", async () => {
    const text = await metrics.registry.metrics();
    return new Response(text, { headers: { "content-type": metrics.registry.contentType } });
  });

  app.notFound((c) => {
    const ex = newExchange("unknown", c);
    const surface: Surface = c.req.path.startsWith("/v1/messages") ? "anthropic" : "openai";
    return fail(ex, new GatewayError("not_found", "Unknown path."), surface);
  });
  app.onError((err, c) => {
    const ex = newExchange("unknown", c);
    return fail(ex, err instanceof GatewayError ? err : new GatewayError("internal_error", "Internal error.", { cause: err }), "openai");
  });
  return app;
}
