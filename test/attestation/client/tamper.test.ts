/**
 * Answers altered between the signer and the caller are refused, streamed
 * or not. Two ways in:
 *  - end to end, a fake gateway that attests correctly but alters what it
 *    sends after signing (the compromised path), through createVerifiedFetch
 *    and the official SDK;
 *  - the receipt-checking stage alone, fed real gateway bytes with one
 *    thing changed at a time.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkBufferedResponse,
  checkStreamedResponse,
  createVerifiedFetch,
  openAttestedConnection,
  resolvePolicy,
  type AttestedPeer,
  type VerifiedFetch,
} from "../../../attestation/client/index.js";
import { RECEIPT_HEADER } from "../../../attestation/receipt.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST, startFakeGateway, type FakeGateway, type Tamper } from "./helpers.js";

let fake: FakeGateway;
let f: VerifiedFetch;
let client: OpenAI;

beforeAll(async () => {
  fake = await startFakeGateway();
  f = createVerifiedFetch({
    baseURL: fake.baseURL,
    verificationErrors: "throw",
    policy: { measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [fake.anchor] },
  });
  client = new OpenAI({ baseURL: fake.baseURL, apiKey: "k", fetch: f, maxRetries: 0 });
});
afterAll(async () => {
  await f?.close();
  await fake?.close();
});

function codeOf(err: unknown): string | undefined {
  let e = err as { cause?: unknown; code?: unknown; name?: string } | undefined;
  while (e && e.name !== "ClientError" && e.cause) e = e.cause as typeof e;
  return e?.name === "ClientError" ? (e.code as string) : undefined;
}

const ask = () => client.chat.completions.create({ model: "fake", messages: [{ role: "user", content: "hi" }] });
async function askStream(): Promise<{ text: string; error: unknown }> {
  let text = "";
  try {
    const stream = await client.chat.completions.create({ model: "fake", stream: true, messages: [{ role: "user", content: "hi" }] });
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return { text, error: undefined };
  } catch (error) {
    return { text, error };
  }
}

describe("a compromised path, end to end through the openai SDK", () => {
  it("the honest fake passes, streamed and not", async () => {
    fake.tamper = "none";
    expect((await ask()).choices[0]!.message.content).toBe("Hello from the fake");
    const { text, error } = await askStream();
    expect(error).toBeUndefined();
    expect(text).toBe("Hello from the fake");
  });

  const buffered: [Tamper, string][] = [
    ["flip-body", "ERR_RECEIPT_RESPONSE_MISMATCH"],
    ["drop-receipt", "ERR_RECEIPT_MISSING"],
    ["flip-receipt", "ERR_SIGNATURE_INVALID"],
    ["other-key", "ERR_SIGNATURE_INVALID"],
  ];
  for (const [tamper, code] of buffered) {
    it(`non-streamed, ${tamper}: refused with ${code}, the SDK never sees the body`, async () => {
      fake.tamper = tamper;
      const err = await ask().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(codeOf(err)).toBe(code);
    });
  }

  const streamed: [Tamper, string][] = [
    ["flip-body", "ERR_RECEIPT_RESPONSE_MISMATCH"],
    ["drop-receipt", "ERR_RECEIPT_MISSING"],
    ["flip-receipt", "ERR_SIGNATURE_INVALID"],
    ["other-key", "ERR_SIGNATURE_INVALID"],
    ["truncate-stream", "ERR_RECEIPT_MISSING"],
  ];
  for (const [tamper, code] of streamed) {
    it(`streamed, ${tamper}: [DONE] is held back, the SDK throws the in-stream error ${code} instead of ending in success`, async () => {
      fake.tamper = tamper;
      const { error } = await askStream();
      // The held [DONE] is replaced by an OpenAI error event: the SDK's own APIError, with our code.
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as { code?: unknown }).code).toBe(code);
    });
  }

  it("streams are not buffered: the first event reaches the caller while the gateway still holds the rest", async () => {
    fake.tamper = "none";
    let release!: () => void;
    fake.holdStream = new Promise<void>((resolve) => (release = resolve));
    try {
      const stream = await client.chat.completions.create({ model: "fake", stream: true, messages: [{ role: "user", content: "hi" }] });
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value?.choices[0]?.delta?.content).toBe("Hello");
      release();
      let rest = "";
      for (let next = await it.next(); !next.done; next = await it.next()) rest += next.value.choices[0]?.delta?.content ?? "";
      expect(rest).toBe(" from the fake");
    } finally {
      fake.holdStream = undefined;
      release?.();
    }
  });

  it("the request hash binds the exact bytes sent: every body the fake received is one the client recorded", async () => {
    fake.tamper = "none";
    await ask();
    const last = f.getReceipts().at(-1)!;
    expect(Buffer.from(last.request.body).equals(fake.bodies.at(-1)!)).toBe(true);
  });
});

describe("the receipt-checking stage with altered real gateway bytes", () => {
  let h: Harness;
  let peer: AttestedPeer;
  const headers = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };
  const requestText = JSON.stringify({ model: "local", messages: [{ role: "user", content: "tamper with me" }] });
  const streamText = JSON.stringify({ model: "local", stream: true, messages: [{ role: "user", content: "tamper with my stream" }] });
  const enc = (s: string) => new TextEncoder().encode(s);

  beforeAll(async () => {
    h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000 } }) });
    const attested = await openAttestedConnection({
      origin: new URL(h.baseURL).origin,
      policy: resolvePolicy({ measurements: "any", trust: "any", trustedRoots: [h.anchor] }),
      now: () => new Date(),
    });
    attested.socket.destroy();
    peer = attested.peer;
  });
  afterAll(async () => {
    await h?.close();
  });

  async function buffered() {
    const res = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body: requestText });
    return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()) };
  }
  const sent = (body: string) => ({ method: "POST", url: `${h.baseURL}/chat/completions`, body: enc(body) });

  it("passes unaltered", async () => {
    const r = await buffered();
    expect(checkBufferedResponse({ peer, request: sent(requestText), ...r }).claims.status).toBe(200);
  });

  it("one flipped response byte: ERR_RECEIPT_RESPONSE_MISMATCH", async () => {
    const r = await buffered();
    r.body[10]! ^= 0x01;
    expect(() => checkBufferedResponse({ peer, request: sent(requestText), ...r })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_RESPONSE_MISMATCH" }));
  });

  it("a different request body: ERR_RECEIPT_REQUEST_MISMATCH", async () => {
    const r = await buffered();
    expect(() => checkBufferedResponse({ peer, request: sent(requestText.replace("tamper", "Tamper")), ...r })).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_REQUEST_MISMATCH" }),
    );
  });

  it("a flipped receipt byte: refused (signature or structure)", async () => {
    const r = await buffered();
    const raw = Buffer.from(r.headers.get(RECEIPT_HEADER)!, "base64url");
    for (const at of [5, 40, raw.length - 1]) {
      const altered = Buffer.from(raw);
      altered[at]! ^= 0x04;
      const h2 = new Headers(r.headers);
      h2.set(RECEIPT_HEADER, altered.toString("base64url"));
      expect(() => checkBufferedResponse({ peer, request: sent(requestText), ...r, headers: h2 })).toThrow(expect.objectContaining({ name: "ClientError" }));
    }
  });

  it("a receipt for another status: ERR_RECEIPT_CLAIMS_MISMATCH", async () => {
    const r = await buffered();
    expect(() => checkBufferedResponse({ peer, request: sent(requestText), ...r, status: 201 })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_CLAIMS_MISMATCH" }));
  });

  it("the receipt moved out of the header: ERR_RECEIPT_MISSING; not base64url: ERR_RECEIPT_MALFORMED", async () => {
    const r = await buffered();
    const none = new Headers(r.headers);
    none.delete(RECEIPT_HEADER);
    expect(() => checkBufferedResponse({ peer, request: sent(requestText), ...r, headers: none })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_MISSING" }));
    const junk = new Headers(r.headers);
    junk.set(RECEIPT_HEADER, "not base64!");
    expect(() => checkBufferedResponse({ peer, request: sent(requestText), ...r, headers: junk })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_MALFORMED" }));
  });

  async function streamedBytes(): Promise<Uint8Array> {
    const res = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body: streamText });
    return new Uint8Array(await res.arrayBuffer());
  }
  /** Feeds `bytes` in small chunks through the stage; returns what passed and how it ended. */
  async function throughStage(bytes: Uint8Array, request = streamText) {
    async function* source() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
    }
    const { body, receipt } = checkStreamedResponse({ peer, request: sent(request), status: 200, source: source() });
    const passed: Uint8Array[] = [];
    let error: unknown;
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) passed.push(chunk);
    } catch (err) {
      error = err;
    }
    const settled = await receipt.then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    return { passed: Buffer.concat(passed).toString("utf8"), error, settled };
  }

  it("stream unaltered: passes through minus the receipt block, receipt resolves", async () => {
    const bytes = await streamedBytes();
    const out = await throughStage(bytes);
    expect(out.error).toBeUndefined();
    expect(out.settled.ok).toBe(true);
    expect(out.passed.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(out.passed).not.toContain("egw-receipt");
  });

  it("stream with one flipped byte: the events pass, [DONE] is replaced by an error event, then the stream errors", async () => {
    const bytes = await streamedBytes();
    bytes[20]! ^= 0x01;
    const out = await throughStage(bytes);
    expect(out.error).toMatchObject({ code: "ERR_RECEIPT_RESPONSE_MISMATCH" });
    expect(out.settled).toMatchObject({ ok: false, e: { code: "ERR_RECEIPT_RESPONSE_MISMATCH" } });
    expect(out.passed).toContain("chat.completion.chunk");
    expect(out.passed).not.toContain("[DONE]");
    expect(out.passed).toMatch(/data: \{"error":\{"message":"[^"]*","type":"egw_verification_failed","param":null,"code":"ERR_RECEIPT_RESPONSE_MISMATCH"\}\}\n\n$/);
  });

  it("stream whose receipt block was altered, cut or removed: the stream errors", async () => {
    const bytes = await streamedBytes();
    const text = Buffer.from(bytes).toString("latin1");
    const at = text.lastIndexOf(": egw-receipt ");
    const altered = Buffer.from(bytes);
    altered[at + 30] = altered[at + 30] === 0x41 ? 0x42 : 0x41;
    expect((await throughStage(altered)).error).toMatchObject({ name: "ClientError" });
    expect((await throughStage(bytes.subarray(0, bytes.length - 5))).error).toMatchObject({ code: "ERR_RECEIPT_MISSING" });
    expect((await throughStage(bytes.subarray(0, at))).error).toMatchObject({ code: "ERR_RECEIPT_MISSING" });
  });

  it("stream checked against another request: ERR_RECEIPT_REQUEST_MISMATCH", async () => {
    const bytes = await streamedBytes();
    expect((await throughStage(bytes, streamText.replace("tamper", "Tamper"))).error).toMatchObject({ code: "ERR_RECEIPT_REQUEST_MISMATCH" });
  });
});
