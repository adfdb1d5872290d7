import { createHash, createPublicKey } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { RECEIPT_HEADER, verifyReceipt } from "../../attestation/receipt.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { attestedConfigHash } from "../../host/transport/codec/config-hash.js";
import { hashToken } from "../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";

/**
 * Issue 11 §1: the enclave attests the trust policy (its SHA-256 in
 * user_data, binding v3 `policy_sha256`) and serves the exact bytes over the
 * attested connection, before authentication, so a client reads exactly
 * what it is bound to. Operations (tokens, limits) change `config_sha256`
 * only, never `policy_sha256`.
 */
// Whitespace, key order and a non-ASCII description: served byte for byte, never re-encoded.
const TRUST = `{ "version": 1,\n  "providers": [ { "kind": "local", "name": "local" } ],\n  "models": { "local": { "provider": "local", "model": "local", "description": "modèle local" } },\n  "identity": { "mode": "ephemeral" } }\n`;
const ops = (limit: number) => JSON.stringify({ version: 1, clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }], limits: { rateLimitPerMinute: limit } });
const sha = (b: Uint8Array | string) => new Uint8Array(createHash("sha256").update(b).digest());

let h: Harness;
let h2: Harness;
beforeAll(async () => {
  h = await startHarness({ trustPolicy: TRUST, operations: ops(600) });
  h2 = await startHarness({ trustPolicy: TRUST, operations: ops(5) });
});
afterAll(async () => {
  await h.close();
  await h2.close();
});

async function binding(x: Harness) {
  const doc = new Uint8Array(await (await x.fetch(`${x.baseURL}/attestation`)).arrayBuffer());
  const verified = await verifyAttestation(doc, { currentDate: new Date(), expectedPcrs: "any", trustedRoots: [x.anchor] });
  return { binding: decodeBinding(verified.document.userData), publicKey: verified.document.publicKey! };
}

describe("GET /v1/attestation/policy", () => {
  it("serves the trust policy's exact bytes without a token; their hash is the document's policy_sha256; a receipt covers them", async () => {
    const res = await h.fetch(`${h.baseURL}/attestation/policy`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(body).equals(Buffer.from(TRUST))).toBe(true);
    const { binding: b, publicKey } = await binding(h);
    expect(b.v).toBe(3);
    expect(Buffer.from(b.policySha256!)).toEqual(Buffer.from(sha(TRUST)));
    expect(res.headers.get("x-egw-policy-sha256")).toBe(Buffer.from(sha(TRUST)).toString("hex"));
    const claims = verifyReceipt(new Uint8Array(Buffer.from(res.headers.get(RECEIPT_HEADER)!, "base64url")), {
      publicKey: createPublicKey({ key: Buffer.from(publicKey), format: "der", type: "spki" }),
      requestBody: new Uint8Array(),
      responseBody: body,
    });
    expect(claims).toMatchObject({ method: "GET", path: "/v1/attestation/policy", status: 200 });
  });

  it("changing operations changes config_sha256 (the exact deployment) but never policy_sha256", async () => {
    const a = (await binding(h)).binding;
    const b = (await binding(h2)).binding;
    expect(Buffer.from(a.policySha256!)).toEqual(Buffer.from(b.policySha256!));
    expect(Buffer.from(a.configSha256)).not.toEqual(Buffer.from(b.configSha256));
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(Buffer.from(a.configSha256)).toEqual(Buffer.from(attestedConfigHash(enc(TRUST), enc(ops(600)))));
  });

  it("is not an open door: other methods are refused and a query changes nothing", async () => {
    expect((await h.fetch(`${h.baseURL}/attestation/policy`, { method: "POST", body: "{}" })).status).toBe(404);
    const res = await h.fetch(`${h.baseURL}/attestation/policy?x=1`);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(TRUST))).toBe(true);
  });
});
