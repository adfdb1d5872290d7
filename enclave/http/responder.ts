import { createHash } from "node:crypto";
import { RECEIPT_HEADER, signReceipt } from "../../attestation/receipt.js";
import { isGatewayError, type GatewayError } from "../errors.js";
import type { EnclaveIdentity } from "../identity.js";
import type { Logger } from "../observability/log.js";
import type { GatewayMetrics } from "../observability/metrics.js";
import { toGatewayError } from "../upstream.js";
import { errorObject, type Surface } from "./error-body.js";
import type { Exchange } from "./exchange.js";

/**
 * Every answer under /v1 leaves through here: signed with the attested
 * receipt key (in the `x-egw-receipt` header; streams: signed-stream.ts),
 * then counted and logged once. Nothing here logs or labels content: the log
 * line carries sizes, codes and configured names only (see observability/).
 */
export interface ResponderDeps {
  identity: EnclaveIdentity;
  now: () => Date;
  metrics: GatewayMetrics;
  log: Logger;
}

export class Responder {
  constructor(private readonly deps: ResponderDeps) {}

  /** The signed receipt over this exchange and the response body's hash. */
  sign(ex: Exchange, status: number, responseSha256: Uint8Array): Uint8Array {
    return signReceipt(ex.claims(status, responseSha256, this.deps.now().getTime()), this.deps.identity.receipt.privateKey);
  }

  /** The exchange's one metrics and log record, when its last byte is out. */
  record(ex: Exchange, status: number, responseBytes: number, code?: string): void {
    const { metrics, log } = this.deps;
    const seconds = (this.deps.now().getTime() - ex.started) / 1000;
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
  finish(ex: Exchange, status: number, body: Uint8Array, extraHeaders: Record<string, string> = {}, code?: string): Response {
    const receipt = this.sign(ex, status, new Uint8Array(createHash("sha256").update(body).digest()));
    this.record(ex, status, body.byteLength, code);
    return new Response(body, {
      status,
      headers: {
        "content-type": "application/json",
        "x-request-id": ex.id,
        [RECEIPT_HEADER]: Buffer.from(receipt).toString("base64url"),
        ...extraHeaders,
      },
    });
  }

  json(ex: Exchange, status: number, value: unknown, headers?: Record<string, string>): Response {
    return this.finish(ex, status, new TextEncoder().encode(JSON.stringify(value)), headers);
  }

  /** An error in the surface's own shape, signed like any answer. */
  fail(ex: Exchange, err: unknown, surface: Surface, close = false): Response {
    const e: GatewayError = isGatewayError(err) ? err : toGatewayError(err);
    if (e.code === "internal_error") this.deps.log.log("error", "internal_error", { reqId: ex.id, surface: ex.surface });
    const headers: Record<string, string> = {};
    if (e.retryAfter !== undefined) headers["retry-after"] = String(e.retryAfter);
    // The unread rest of a refused body must not be read or kept: close.
    if (close || e.code === "request_too_large") headers.connection = "close";
    return this.finish(ex, e.status, new TextEncoder().encode(JSON.stringify(errorObject(e, surface))), headers, e.code);
  }
}
