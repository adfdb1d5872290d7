/**
 * The verifying connection reads the attested trust policy over the
 * attested socket and judges it before a byte of the caller's request is
 * written; then every receipt's upstream is held to it. A fake gateway
 * (simulated NSM, development CA, channel binding v3) stands for an enclave
 * whose host serves another policy, one whose policy breaks a constraint,
 * an older enclave (binding v1), and receipts naming another upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, openAttestedConnection, resolvePolicy, verifySavedExchange, type ClientPolicy } from "../../../attestation/client/index.js";
import { decodeReceipt } from "../../../attestation/receipt.js";
import { developmentTrustPolicy } from "../../../enclave/runtime-config.js";
import { PCR0_TEST, startFakeGateway, type FakeGateway } from "./helpers.js";

const POLICY = developmentTrustPolicy({ providers: [{ name: "mock", kind: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1" }] });
const ORIGINS = ["http://127.0.0.1:9", "local"];

let v3: FakeGateway;
let v1: FakeGateway;
beforeAll(async () => {
  v3 = await startFakeGateway({ trustPolicy: POLICY });
  v1 = await startFakeGateway();
});
afterAll(async () => {
  await v3?.close();
  await v1?.close();
});

const policyFor = (fake: FakeGateway, trust: ClientPolicy["trust"]): ClientPolicy => ({
  measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }],
  trust,
  trustedRoots: [fake.anchor],
});
const chat = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "fake", messages: [{ role: "user", content: "secret prompt" }] }) };

function reset(fake: FakeGateway): void {
  fake.servedPolicy = undefined;
  fake.receiptUpstream = "local";
  fake.bodies.length = 0;
  fake.requests.length = 0;
}

/** What the fake saw besides attestation: must be nothing when the client refused. */
const requestsBeyondAttestation = (fake: FakeGateway) => fake.requests.filter((r) => !r.startsWith("GET /v1/attestation"));

async function refusal(fake: FakeGateway, trust: ClientPolicy["trust"]): Promise<{ code?: string; message?: string; steps?: { step: string; status: string }[] }> {
  const f = createVerifiedFetch({ verificationErrors: "throw", baseURL: fake.baseURL, policy: policyFor(fake, trust) });
  try {
    await f(`${fake.baseURL}/chat/completions`, chat);
    return {};
  } catch (err) {
    return err as { code?: string; message?: string };
  } finally {
    await f.close();
  }
}

describe("the attested trust policy, before any request byte", () => {
  it("a policy within the constraints: the request goes, and the connection reports the policy", async () => {
    reset(v3);
    const f = createVerifiedFetch({ verificationErrors: "throw", baseURL: v3.baseURL, policy: policyFor(v3, { upstreamOrigins: ORIGINS, identity: { mode: "ephemeral" } }) });
    try {
      const { response, peer, receipt } = await f.exchange(`${v3.baseURL}/chat/completions`, chat);
      expect(response.status).toBe(200);
      expect(peer.trust?.origins).toEqual(ORIGINS);
      expect(Buffer.from(peer.policySha256!).equals(Buffer.from(peer.trust!.sha256))).toBe(true);
      expect(Buffer.from(peer.trust!.bytes).toString()).toBe(POLICY);
      expect(peer.steps.map((s) => `${s.step}:${s.status}`)).toEqual(expect.arrayContaining(["trust-policy:passed", "trust:passed"]));
      expect((await receipt).claims.upstream?.origin).toBe("local");
      // Read once per attested connection, in order: document, policy, request.
      expect(v3.requests.map((r) => r.replace(/\?.*/, ""))).toEqual(["GET /v1/attestation", "GET /v1/attestation/policy", "POST /v1/chat/completions"]);
    } finally {
      await f.close();
    }
  });

  it("a hostile host serving another policy than attested: ERR_TRUST_POLICY_MISMATCH, and the gateway saw no request", async () => {
    reset(v3);
    // A policy that would pass every constraint, signed for, but not the attested bytes.
    v3.servedPolicy = new TextEncoder().encode(developmentTrustPolicy());
    const err = await refusal(v3, { upstreamOrigins: ORIGINS });
    expect(err.code).toBe("ERR_TRUST_POLICY_MISMATCH");
    expect(err.steps?.at(-1)).toMatchObject({ step: "trust-policy", status: "failed" });
    expect(requestsBeyondAttestation(v3)).toEqual([]);
    expect(v3.bodies).toEqual([]);
    // Even under trust "any": the client reads only what it is bound to.
    expect((await refusal(v3, "any")).code).toBe("ERR_TRUST_POLICY_MISMATCH");
    expect(requestsBeyondAttestation(v3)).toEqual([]);
  });

  it("a policy breaking a constraint: ERR_TRUST_NOT_ALLOWED naming it, and no request", async () => {
    reset(v3);
    const origins = await refusal(v3, { upstreamOrigins: ["https://api.openai.com", "local"] });
    expect(origins.code).toBe("ERR_TRUST_NOT_ALLOWED");
    expect(origins.message).toMatch(/upstreamOrigins: provider "mock" sends to http:\/\/127\.0\.0\.1:9/);
    expect(origins.steps?.at(-1)).toMatchObject({ step: "trust", status: "failed" });
    const identity = await refusal(v3, { identity: { mode: "sealed", kmsKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" } });
    expect(identity.code).toBe("ERR_TRUST_NOT_ALLOWED");
    expect(identity.message).toMatch(/^identity:/);
    expect(requestsBeyondAttestation(v3)).toEqual([]);
  });

  it("a policy response over 256 KiB is refused without reading on", async () => {
    reset(v3);
    v3.servedPolicy = new Uint8Array(256 * 1024 + 1).fill(0x20);
    const err = await refusal(v3, "any");
    expect(err.code).toBe("ERR_ATTESTATION_PROTOCOL");
    expect(requestsBeyondAttestation(v3)).toEqual([]);
  });

  it('an older enclave (binding v1) attests no policy: refused when trust is constrained, accepted under "any"', async () => {
    reset(v1);
    const err = await refusal(v1, { upstreamOrigins: ["local"] });
    expect(err.code).toBe("ERR_TRUST_POLICY_MISMATCH");
    expect(err.message).toContain("attests no trust policy");
    expect(requestsBeyondAttestation(v1)).toEqual([]);

    const attested = await openAttestedConnection({ origin: v1.origin, policy: resolvePolicy(policyFor(v1, "any")), now: () => new Date() });
    attested.socket.destroy();
    expect(attested.peer.policySha256).toBeNull();
    expect(attested.peer.trust).toBeNull();
    expect(attested.peer.steps.find((s) => s.step === "trust-policy")).toMatchObject({ status: "not-requested" });
  });
});

describe("every receipt's upstream", () => {
  it("an upstream no attested provider uses: ERR_RECEIPT_UPSTREAM_NOT_ALLOWED, buffered and streamed", async () => {
    reset(v3);
    v3.receiptUpstream = "https://collector.host.example";
    const f = createVerifiedFetch({ verificationErrors: "throw", baseURL: v3.baseURL, policy: policyFor(v3, { upstreamOrigins: ORIGINS }) });
    try {
      await expect(f(`${v3.baseURL}/chat/completions`, chat)).rejects.toMatchObject({ code: "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED" });
      const streamed = await f(`${v3.baseURL}/chat/completions`, { ...chat, body: JSON.stringify({ model: "fake", stream: true, messages: [] }) });
      const text = streamed.text();
      await expect(text).rejects.toMatchObject({ code: "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED" });
    } finally {
      await f.close();
    }
  });

  it("an attested provider's origin passes", async () => {
    reset(v3);
    v3.receiptUpstream = "http://127.0.0.1:9";
    const f = createVerifiedFetch({ verificationErrors: "throw", baseURL: v3.baseURL, policy: policyFor(v3, { upstreamOrigins: ORIGINS }) });
    try {
      expect((await f(`${v3.baseURL}/chat/completions`, chat)).status).toBe(200);
    } finally {
      await f.close();
    }
  });
});

describe("verifySavedExchange and the trust policy", () => {
  it("checks the saved policy bytes against the document, and refuses constrained trust without them", async () => {
    reset(v3);
    const f = createVerifiedFetch({ verificationErrors: "throw", baseURL: v3.baseURL, policy: policyFor(v3, "any") });
    try {
      const { response, peer, receipt } = await f.exchange(`${v3.baseURL}/chat/completions`, chat);
      const responseBody = new Uint8Array(await response.arrayBuffer());
      const saved = { receipt: (await receipt).receipt, requestBody: new TextEncoder().encode(chat.body), responseBody, document: peer.document };
      const constrained = resolvePolicy(policyFor(v3, { upstreamOrigins: ORIGINS }));
      const ok = await verifySavedExchange({ ...saved, policy: constrained, trustPolicy: peer.trust!.bytes });
      expect(ok.trust?.origins).toEqual(ORIGINS);
      expect(decodeReceipt(saved.receipt).claims.upstream?.origin).toBe("local");
      await expect(verifySavedExchange({ ...saved, policy: constrained })).rejects.toMatchObject({ code: "ERR_TRUST_POLICY_MISMATCH" });
      await expect(verifySavedExchange({ ...saved, policy: constrained, trustPolicy: new TextEncoder().encode(developmentTrustPolicy()) })).rejects.toMatchObject({
        code: "ERR_TRUST_POLICY_MISMATCH",
      });
      const notAllowed = resolvePolicy(policyFor(v3, { upstreamOrigins: ["local"] }));
      await expect(verifySavedExchange({ ...saved, policy: notAllowed, trustPolicy: peer.trust!.bytes })).rejects.toMatchObject({ code: "ERR_TRUST_NOT_ALLOWED" });
      expect((await verifySavedExchange({ ...saved, policy: resolvePolicy(policyFor(v3, "any")) })).trust).toBeNull();
    } finally {
      await f.close();
    }
  });
});
