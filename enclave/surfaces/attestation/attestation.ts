import { createHash } from "node:crypto";
import { Hono, type Context } from "hono";
import { ATTEST_PROOF_HEADER, parseAttestProof } from "../../../attestation/attest-proof.js";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { exchangeRecord } from "../../http/middleware/exchange-record.js";
import { clientAddressOf } from "../../http/middleware/limits.js";
import { nodeRequest } from "../../http/middleware/node-request.js";

/**
 * GET /v1/attestation (the attestation document, cached or fresh for a
 * nonce) and GET /v1/attestation/policy (the trust policy's exact bytes).
 * Both before authentication: a client reads them before it sends its
 * token. Each answer still carries a receipt.
 */
export function attestationApi(s: GatewayServices): Hono<GatewayEnv> {
  const { deps, responder, config, now } = s;
  const { attestation, metrics } = deps;

  /** Whom a fresh document is counted against: the relay's PROXY v2 address, else the socket's peer. */
  function attestationAddress(c: Context<GatewayEnv>): string | null {
    if (config.proxyProtocol) return clientAddressOf(c.env);
    const address = c.env?.incoming?.socket?.remoteAddress;
    return typeof address === "string" ? address : null;
  }

  async function attestationDocument(c: Context<GatewayEnv>): Promise<Response> {
    const ex = c.var.exchange;
    const nonceHex = c.req.query("nonce");
    let doc: Uint8Array;
    if (nonceHex === undefined) {
      doc = await attestation.current();
      metrics.attestations.inc({ kind: "cached" });
    } else {
      if (!/^([0-9a-fA-F]{2}){1,64}$/.test(nonceHex)) throw new GatewayError("invalid_request", "nonce must be hex, 8..64 bytes.");
      const proof = parseAttestProof(c.var.view.headers.get(ATTEST_PROOF_HEADER));
      doc = await attestation.fresh(new Uint8Array(Buffer.from(nonceHex, "hex")), { address: attestationAddress(c), proof });
      metrics.attestations.inc({ kind: "fresh" });
    }
    const wantsJson = c.req.query("format") === "json" || /application\/json/.test(c.req.header("accept") ?? "");
    if (wantsJson) {
      const body = { format: "cose_sign1", encoding: "base64", document: Buffer.from(doc).toString("base64"), fresh: nonceHex !== undefined };
      return responder.json(ex, 200, body, { "cache-control": "no-store" });
    }
    return responder.finish(ex, 200, doc, { "content-type": "application/cbor", "cache-control": "no-store" });
  }

  // Its bytes are exactly the attested ones, never re-encoded.
  const policyHeaders = {
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-egw-policy-sha256": createHash("sha256").update(deps.trustPolicyBytes).digest("hex"),
  };
  function trustPolicy(c: Context<GatewayEnv>): Response {
    return responder.finish(c.var.exchange, 200, deps.trustPolicyBytes, policyHeaders);
  }

  const record = exchangeRecord({ name: "attestation", surface: "openai", now });
  return new Hono<GatewayEnv>().get("/attestation", nodeRequest(), record, attestationDocument).get("/attestation/policy", record, trustPolicy);
}
