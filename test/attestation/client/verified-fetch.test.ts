/**
 * The verifying client against the real gateway (test harness: HTTPS on
 * 127.0.0.1, simulated NSM, development CA), an impostor in the middle, and
 * a fake gateway that alters what it sends after signing.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { splitConfig } from "../../helpers/split-config.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type AttestedPeer, type ClientPolicy, type VerifiedFetch, type VerifiedReceipt } from "../../../attestation/client/index.js";
import { RECEIPT_HEADER, verifyReceipt } from "../../../attestation/receipt.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_OTHER, PCR0_TEST, startImpostor } from "./helpers.js";

let h: Harness;
const opened: VerifiedFetch[] = [];

// Many attestations in quick succession: lift the gateway's issuance limit (tested on its own below).
const config = configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } });

beforeAll(async () => {
  h = await startHarness({ config });
});
afterAll(async () => {
  await Promise.all(opened.map((f) => f.close()));
  await h?.close();
});

const pcrs = (pcr0: Uint8Array) => new Map([[0, pcr0]]);
function policy(overrides: Partial<ClientPolicy> = {}): ClientPolicy {
  return { measurements: [{ label: "test build", pcrs: pcrs(PCR0_TEST) }], trust: "any", trustedRoots: [h.anchor], ...overrides };
}
function vfetch(overrides: Partial<Parameters<typeof createVerifiedFetch>[0]> = {}): VerifiedFetch {
  // These suites assert on the ClientError itself; the default (a local error Response) is tested in client-errors-sdk.test.ts.
  const f = createVerifiedFetch({ baseURL: h.baseURL, policy: policy(), verificationErrors: "throw", ...overrides });
  opened.push(f);
  return f;
}
const chat = (content: string) => JSON.stringify({ model: "local", messages: [{ role: "user", content }] });
const openai = (fetch: VerifiedFetch, baseURL = h.baseURL) => new OpenAI({ baseURL, apiKey: CLIENT_TOKEN, fetch, maxRetries: 0 });

/** Requests of a surface the gateway logged (it logs sizes and codes, never content). */
const gatewaySaw = (surface: string) => h.logs.filter((l) => l.includes('"request"') && l.includes(`"surface":"${surface}"`)).length;

/** The ClientError behind an SDK connection error. */
async function refusal(promise: Promise<unknown>): Promise<{ code: string; action: string; name: string }> {
  try {
    await promise;
  } catch (err) {
    let e = err as { cause?: unknown; code?: unknown; name?: string };
    while (e && e.name !== "ClientError" && e.cause) e = e.cause as typeof e;
    return e as { code: string; action: string; name: string };
  }
  throw new Error("expected a refusal");
}

describe("createVerifiedFetch with the official SDKs", () => {
  it("openai chat: attests once, verifies the receipt, records it with the attestation", async () => {
    const attestations: AttestedPeer[] = [];
    const seen: VerifiedReceipt[] = [];
    const f = vfetch({ onAttestation: (p) => attestations.push(p), onReceipt: (r) => seen.push(r) });
    const client = openai(f);
    const a = await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "hello verified world" }] });
    const b = await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "second" }] });
    expect(a.choices[0]!.message.content).toContain("hello verified world");
    expect(b.choices[0]!.message.content).toContain("second");
    // Keep-alive: one connection, one attestation, both answers checked against it.
    expect(attestations).toHaveLength(1);
    const peer = attestations[0]!;
    expect(peer.measurement).toBe("test build");
    expect(Buffer.from(peer.tlsSpkiSha256).equals(Buffer.from(h.enclave.identity.tls.spkiSha256))).toBe(true);
    expect(Buffer.from(peer.configSha256).equals(Buffer.from(h.enclave.configSha256))).toBe(true);
    expect(peer.result.root.production).toBe(false);
    expect(peer.steps.map((s) => s.step)).toEqual([
      "tls",
      "decode",
      "cose-header",
      "fields",
      "chain",
      "signature",
      "debug-mode",
      "nonce",
      "freshness",
      "measurements",
      "tls-binding",
      "config",
      "receipt-key",
      "trust-policy",
      "trust",
    ]);

    const receipts = f.getReceipts();
    expect(receipts).toHaveLength(2);
    expect(seen).toEqual(receipts);
    const r = receipts[0]!;
    expect(r.claims).toMatchObject({ status: 200, model: "local", surface: "chat.completions", stream: false });
    expect(r.peer).toBe(peer);
    // What is stored is enough to verify again, offline: exact bytes both ways.
    expect(JSON.parse(Buffer.from(r.request.body).toString("utf8"))).toMatchObject({ model: "local" });
    expect(verifyReceipt(r.receipt, { publicKey: peer.receiptKey, requestBody: r.request.body, responseBody: r.response.body! })).toMatchObject({ id: r.claims.id });
  });

  it("openai streaming: chunks arrive, the receipt block is consumed, the receipt verifies at the end", async () => {
    const f = vfetch({ retainStreamBodies: true });
    const stream = await openai(f).chat.completions.create({
      model: "local",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "stream these words please" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text).toContain("stream these words please");
    await new Promise((r) => setImmediate(r));
    const [r] = f.getReceipts();
    expect(r!.claims.stream).toBe(true);
    expect(r!.response.streamed).toBe(true);
    const body = Buffer.from(r!.response.body!).toString("utf8");
    expect(body).toContain("data: [DONE]");
    expect(body).not.toContain("egw-receipt");
  });

  it("openai tools with the local model, stream and not", async () => {
    const f = vfetch();
    const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
    const done = await openai(f).chat.completions.create({ model: "local", tools, messages: [{ role: "user", content: "weather in Paris?" }] });
    expect(done.choices[0]!.finish_reason).toBe("tool_calls");
    expect(done.choices[0]!.message.tool_calls![0]!).toMatchObject({ type: "function", function: { name: "get_weather" } });
    const stream = await openai(f).chat.completions.create({ model: "local", tools, stream: true, messages: [{ role: "user", content: "weather in Paris?" }] });
    let args = "";
    for await (const chunk of stream) args += chunk.choices[0]?.delta?.tool_calls?.[0]?.function?.arguments ?? "";
    expect(JSON.parse(args)).toHaveProperty("city");
    await new Promise((r) => setImmediate(r));
    expect(f.getReceipts().map((r) => r.claims.stream)).toEqual([false, true]);
  });

  it("anthropic messages, streamed and not", async () => {
    const f = vfetch();
    const anthropic = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: CLIENT_TOKEN, fetch: f, maxRetries: 0 });
    const message = await anthropic.messages.create({ model: "local", max_tokens: 64, messages: [{ role: "user", content: "hi anthropic" }] });
    expect(message.content[0]).toMatchObject({ type: "text" });
    const stream = anthropic.messages.stream({ model: "local", max_tokens: 64, messages: [{ role: "user", content: "stream anthropic words" }] });
    let text = "";
    for await (const event of stream) if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
    expect(text).toContain("stream anthropic words");
    const final = await stream.finalMessage();
    expect(final.stop_reason).toBe("end_turn");
    await new Promise((r) => setImmediate(r));
    expect(f.getReceipts().map((r) => [r.claims.surface, r.claims.stream])).toEqual([
      ["messages", false],
      ["messages", true],
    ]);
  });

  it("verifies error answers too (401 carries a receipt), and the SDK sees the error", async () => {
    const f = vfetch();
    const bad = new OpenAI({ baseURL: h.baseURL, apiKey: "wrong-token", fetch: f, maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] })).rejects.toMatchObject({ status: 401 });
    expect(f.getReceipts()[0]!.claims.status).toBe(401);
  });

  it("concurrent requests each get their own attested connection", async () => {
    const attestations: AttestedPeer[] = [];
    const f = vfetch({ onAttestation: (p) => attestations.push(p), maxConnections: 3 });
    const client = openai(f);
    await Promise.all([1, 2, 3].map((i) => client.chat.completions.create({ model: "local", messages: [{ role: "user", content: `n${i}` }] })));
    expect(attestations).toHaveLength(3);
    expect(new Set(attestations.map((a) => Buffer.from(a.nonce).toString("hex"))).size).toBe(3);
    // Sequential requests then reuse those connections without attesting again.
    for (let i = 0; i < 4; i++) await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "again" }] });
    expect(attestations).toHaveLength(3);
  });

  it("hashes the exact bytes of any body kind: bytes, streams, URLSearchParams", async () => {
    const f = vfetch();
    const json = chat("body kinds");
    const headers = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };
    const asStream = new ReadableStream<Uint8Array>({
      start(c) {
        const bytes = new TextEncoder().encode(json);
        c.enqueue(bytes.subarray(0, 5));
        c.enqueue(bytes.subarray(5));
        c.close();
      },
    });
    for (const body of [new TextEncoder().encode(json), asStream]) {
      const res = await f(`${h.baseURL}/chat/completions`, { method: "POST", headers, body, duplex: "half" } as RequestInit);
      expect(res.status).toBe(200);
    }
    // Not JSON: the gateway answers 4xx, with a receipt over exactly these form bytes.
    const form = await f(`${h.baseURL}/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${CLIENT_TOKEN}` }, body: new URLSearchParams({ a: "1 2" }) });
    expect(form.status).toBeGreaterThanOrEqual(400);
    const last = f.getReceipts().at(-1)!;
    expect(Buffer.from(last.request.body).toString()).toBe("a=1+2");
    expect(f.getReceipts()).toHaveLength(3);
  });

  it("refuses URLs off the attested origin before sending anything", async () => {
    const f = vfetch();
    await expect(f("https://example.com/v1/models")).rejects.toMatchObject({ name: "ClientError", code: "ERR_ORIGIN" });
  });

  it("refuses a non-https base URL and an empty policy", () => {
    expect(() => createVerifiedFetch({ baseURL: "http://127.0.0.1:1/v1", policy: policy() })).toThrow(expect.objectContaining({ code: "ERR_ORIGIN" }));
    expect(() => createVerifiedFetch({ baseURL: h.baseURL, policy: { measurements: [], trust: "any" } })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => createVerifiedFetch({ baseURL: h.baseURL, policy: {} as ClientPolicy })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
  });

  it("responses without a receipt (paths outside /v1) are refused", async () => {
    const f = vfetch();
    await expect(f(`${new URL(h.baseURL).origin}/healthz`)).rejects.toMatchObject({ code: "ERR_RECEIPT_MISSING" });
  });
});

describe("refusals happen before any request body leaves the process", () => {
  const PROMPT = "TOP-SECRET-PROMPT-7f3a";

  it("a man in the middle with its own certificate is refused; the prompt never reaches it", async () => {
    const port = Number(new URL(h.baseURL).port);
    const impostor = await startImpostor({ host: "127.0.0.1", port });
    try {
      const before = gatewaySaw("chat.completions");
      const f = createVerifiedFetch({ baseURL: `${impostor.origin}/v1`, policy: policy(), verificationErrors: "throw" });
      opened.push(f);
      const err = await refusal(openai(f, `${impostor.origin}/v1`).chat.completions.create({ model: "local", messages: [{ role: "user", content: PROMPT }] }));
      expect(err).toMatchObject({ name: "ClientError", code: "ERR_TLS_BINDING", action: "reject" });
      const received = impostor.received().toString("latin1");
      // It relayed the attestation request (which is how it learned nothing useful)…
      expect(received).toContain("GET /v1/attestation?nonce=");
      // …and never saw the request, its body or the token.
      expect(received).not.toContain(PROMPT);
      expect(received).not.toContain("chat/completions");
      expect(received).not.toContain(CLIENT_TOKEN);
      expect(gatewaySaw("chat.completions")).toBe(before);
    } finally {
      await impostor.close();
    }
  });

  it("a development document is refused without the development root (AWS root only by default)", async () => {
    const before = gatewaySaw("chat.completions");
    const f = vfetch({ policy: { measurements: [{ label: "test build", pcrs: pcrs(PCR0_TEST) }], trust: "any" } });
    const err = await refusal(openai(f).chat.completions.create({ model: "local", messages: [{ role: "user", content: PROMPT }] }));
    expect(err).toMatchObject({ code: "ERR_ROOT_UNTRUSTED", action: "reject" });
    expect((err as unknown as { steps: { step: string; status: string }[] }).steps.at(-1)).toMatchObject({ step: "chain", status: "failed" });
    expect(gatewaySaw("chat.completions")).toBe(before);
  });

  it("PCRs outside the manifest are refused", async () => {
    const before = gatewaySaw("chat.completions");
    const f = vfetch({
      policy: policy({
        measurements: [
          { label: "other build", pcrs: pcrs(PCR0_OTHER) },
          { label: "third", pcrs: new Map([[1, PCR0_OTHER]]) },
        ],
      }),
    });
    const err = await refusal(openai(f).chat.completions.create({ model: "local", messages: [{ role: "user", content: PROMPT }] }));
    expect(err).toMatchObject({ code: "ERR_MEASUREMENTS_NOT_ALLOWED", action: "reject" });
    expect(gatewaySaw("chat.completions")).toBe(before);
  });

  it("the second of several manifest entries matches, and its label is reported", async () => {
    const f = vfetch({
      policy: policy({
        measurements: [
          { label: "old build", pcrs: pcrs(PCR0_OTHER) },
          { label: "new build", pcrs: pcrs(PCR0_TEST) },
        ],
      }),
    });
    const { peer } = await f.exchange(`${h.baseURL}/models`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } });
    expect(peer.measurement).toBe("new build");
  });

  it("config hashes: an unlisted one is refused, a listed one passes", async () => {
    const other = new Uint8Array(32).fill(7);
    const refused = vfetch({ policy: policy({ configSha256: [other] }) });
    expect(await refusal(refused(`${h.baseURL}/models`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } }))).toMatchObject({ code: "ERR_CONFIG_NOT_ALLOWED" });
    const allowed = vfetch({ policy: policy({ configSha256: [other, h.enclave.configSha256] }) });
    const res = await allowed(`${h.baseURL}/models`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } });
    expect(res.status).toBe(200);
  });

  it("debug-mode enclaves are refused unless the policy allows them", async () => {
    const debugHarness = await startDebugHarness();
    try {
      const zero = new Uint8Array(48);
      const base = { measurements: [{ label: "debug", pcrs: pcrs(zero) }], trust: "any" as const, trustedRoots: [debugHarness.anchor] };
      const strict = createVerifiedFetch({ baseURL: debugHarness.baseURL, policy: base, verificationErrors: "throw" });
      opened.push(strict);
      expect(await refusal(strict(`${debugHarness.baseURL}/models`))).toMatchObject({ code: "ERR_DEBUG_MODE" });
      const lax = createVerifiedFetch({ baseURL: debugHarness.baseURL, policy: { ...base, allowDebug: true }, verificationErrors: "throw" });
      opened.push(lax);
      const { peer } = await lax.exchange(`${debugHarness.baseURL}/models`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } });
      expect(peer.result.debug).toBe(true);
    } finally {
      await debugHarness.close();
    }
  });
});

/** A harness whose simulated NSM reports PCR0 all zero (debug mode). */
async function startDebugHarness() {
  const { createDevCa } = await import("../../../attestation/dev/dev-ca.js");
  const { SimulatedNsm } = await import("../../../attestation/dev/simulated-nsm.js");
  const { bootEnclave } = await import("../../../enclave/boot.js");
  const { memoryLogger } = await import("../../../enclave/observability/log.js");
  const { staticSecrets } = await import("../../../enclave/secrets.js");
  const { trustAnchorFromPem } = await import("../../../attestation/roots.js");
  const now = () => new Date();
  const ca = await createDevCa({ now });
  const enclave = await bootEnclave({
    ...(() => {
      const docs = splitConfig(config);
      return { trustPolicyBytes: new TextEncoder().encode(docs.trustPolicy), operationsBytes: new TextEncoder().encode(docs.operations) };
    })(),
    attester: new SimulatedNsm({ ca, now, pcrs: { 0: new Uint8Array(48), 1: new Uint8Array(48), 2: new Uint8Array(48) } }),
    secrets: staticSecrets(new Map()),
    log: memoryLogger(),
    now,
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
  });
  return { baseURL: `https://127.0.0.1:${enclave.server.port}/v1`, anchor: trustAnchorFromPem(ca.rootPem, "development"), close: () => enclave.close() };
}

describe("attestation age", () => {
  it("an aged attestation triggers a new connection and a fresh attestation, never silent reuse", async () => {
    let offset = 0;
    const clock = () => new Date(Date.now() + offset);
    const hc = await startHarness({ now: clock, config });
    try {
      const attestations: AttestedPeer[] = [];
      const f = createVerifiedFetch({
        baseURL: hc.baseURL,
        policy: { measurements: [{ label: "t", pcrs: pcrs(PCR0_TEST) }], trust: "any", trustedRoots: [hc.anchor], maxAgeMs: 60_000 },
        now: clock,
        verificationErrors: "throw",
        onAttestation: (p) => attestations.push(p),
      });
      opened.push(f);
      const client = openai(f, hc.baseURL);
      await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "one" }] });
      offset = 30_000; // still fresh: reused
      await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "two" }] });
      expect(attestations).toHaveLength(1);
      offset = 61_000; // past maxAge: the connection is dropped and a new one attested
      await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "three" }] });
      expect(attestations).toHaveLength(2);
      expect(Buffer.from(attestations[1]!.nonce).equals(Buffer.from(attestations[0]!.nonce))).toBe(false);
      const receipts = f.getReceipts();
      expect(receipts[1]!.peer).toBe(attestations[0]);
      expect(receipts[2]!.peer).toBe(attestations[1]);
    } finally {
      await hc.close();
    }
  });

  it("when the client's clock has moved past the age limit but the gateway serves older documents, requests fail (ERR_DOC_STALE)", async () => {
    let offset = 0;
    const f = vfetch({ now: () => new Date(Date.now() + offset), policy: policy({ maxAgeMs: 60_000 }) });
    const client = openai(f);
    await client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "fresh" }] });
    offset = 120_000; // the gateway's documents now look two minutes old to this client
    const err = await refusal(client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "stale" }] }));
    expect(err).toMatchObject({ code: "ERR_DOC_STALE" });
    expect(f.getReceipts()).toHaveLength(1);
  });
});

describe("attestation rate limit", () => {
  it("a 429 from the attestation endpoint is ERR_ATTESTATION_UNAVAILABLE (retry), and nothing is sent", async () => {
    const hl = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1, attestationReservedShare: 1 } }) });
    try {
      const f = createVerifiedFetch({
        baseURL: hl.baseURL,
        policy: { measurements: [{ label: "t", pcrs: pcrs(PCR0_TEST) }], trust: "any", trustedRoots: [hl.anchor] },
        maxConnections: 2,
        verificationErrors: "throw",
      });
      opened.push(f);
      const client = openai(f, hl.baseURL);
      const results = await Promise.allSettled([1, 2].map(() => client.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] })));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(await refusal(Promise.reject(failed.reason))).toMatchObject({ code: "ERR_ATTESTATION_UNAVAILABLE", action: "retry" });
      expect(hl.logs.filter((l) => l.includes('"surface":"chat.completions"'))).toHaveLength(1);
    } finally {
      await hl.close();
    }
  });
});

describe("a direct exchange exposes the receipt promise", () => {
  it("buffered: resolves at once; streamed: resolves at the end", async () => {
    const f = vfetch();
    const headers = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };
    const plain = await f.exchange(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }),
    });
    expect((await plain.receipt).claims.id).toBe(plain.response.headers.get("x-request-id"));
    expect(plain.response.headers.get(RECEIPT_HEADER)).toBeTruthy();
    const streamed = await f.exchange(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "local", stream: true, messages: [{ role: "user", content: "y" }] }),
    });
    const text = await streamed.response.text();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    expect((await streamed.receipt).claims.stream).toBe(true);
  });
});
