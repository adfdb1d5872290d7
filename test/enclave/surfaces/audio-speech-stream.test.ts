/**
 * Speech over a real socket: the audio leaves the gateway as it arrives
 * (chunked, no content-length), with its receipt in the `x-egw-receipt`
 * HTTP trailer; a stock client gets the audio unchanged, the verifying
 * client checks the trailer receipt, and one that does not verify is
 * refused.
 */
import OpenAI from "openai";
import { request } from "undici";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type VerifiedFetch, type VerifiedReceipt } from "../../../attestation/client/index.js";
import { RECEIPT_HEADER, receiptKeyFromSpki, verifyReceipt } from "../../../attestation/receipt.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { mockSpeechBytes } from "../../helpers/mock-openai-more.js";
import { startMockOpenAI, type MockOpenAI } from "../../helpers/mock-openai.js";
import { PCR0_TEST } from "../../attestation/client/helpers.js";

let h: Harness;
let mock: MockOpenAI;
let agent: Agent;
const opened: VerifiedFetch[] = [];

beforeAll(async () => {
  mock = await startMockOpenAI();
  h = await startHarness({
    config: configJson({
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mock.url, secret: "OPENAI_API_KEY" },
      ],
      models: { local: { provider: "local", model: "local" }, "tts-1": { provider: "openai", model: "tts-1" } },
      egressAllowlist: [new URL(mock.url).host],
      limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 },
    }),
    secrets: new Map([["OPENAI_API_KEY", "sk-openai-test"]]),
  });
  agent = new Agent({ connect: { ca: h.enclave.identity.tls.certPem } });
});
afterAll(async () => {
  await Promise.all(opened.map((f) => f.close()));
  await agent?.close();
  await h?.close();
  await mock?.close();
});

const speechBody = (model: string, input: string) => JSON.stringify({ model, voice: "alloy", input, response_format: model === "local" ? "wav" : "mp3" });

describe("speech streamed with a trailer receipt", () => {
  for (const model of ["local", "tts-1"]) {
    it(`${model}: chunked, Trailer announced, the trailer receipt covers exactly the audio bytes`, async () => {
      const body = speechBody(model, "stream me");
      const res = await request(`${h.baseURL}/audio/speech`, {
        method: "POST",
        dispatcher: agent,
        headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
        body,
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-length"]).toBeUndefined();
      expect(res.headers.trailer).toBe(RECEIPT_HEADER);
      expect(res.headers[RECEIPT_HEADER]).toBeUndefined();
      const chunks: Buffer[] = [];
      for await (const chunk of res.body) chunks.push(chunk as Buffer);
      const audio = Buffer.concat(chunks);
      if (model === "tts-1") expect(audio).toEqual(mockSpeechBytes("stream me"));
      else expect(audio.subarray(0, 4).toString("ascii")).toBe("RIFF");
      const trailer = res.trailers[RECEIPT_HEADER];
      expect(typeof trailer).toBe("string");
      const claims = verifyReceipt(new Uint8Array(Buffer.from(trailer as string, "base64url")), {
        publicKey: receiptKeyFromSpki(h.enclave.identity.receipt.publicSpkiDer),
        requestBody: new TextEncoder().encode(body),
        responseBody: audio,
      });
      expect(claims).toMatchObject({ path: "/v1/audio/speech", surface: "audio.speech", status: 200, stream: true });
    });
  }

  it("a stock openai SDK gets the audio unchanged", async () => {
    const client = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
    const res = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "plain" });
    expect(Buffer.from(await res.arrayBuffer())).toEqual(mockSpeechBytes("plain"));
  });

  it("the verifying client checks the trailer receipt (openai SDK through createVerifiedFetch)", async () => {
    const seen: VerifiedReceipt[] = [];
    const f = createVerifiedFetch({
      baseURL: h.baseURL,
      policy: { measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [h.anchor] },
      onReceipt: (r) => seen.push(r),
    });
    opened.push(f);
    const client = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: f, maxRetries: 0 });
    const res = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "verified" });
    expect(Buffer.from(await res.arrayBuffer())).toEqual(mockSpeechBytes("verified"));
    expect(seen.at(-1)!.claims).toMatchObject({ path: "/v1/audio/speech", status: 200 });
  });

  it("a provider that dies after the first audio chunk: the client's body is cut, with no trailer receipt", async () => {
    mock.queueScenarios({ destroyAfterChunks: 1 });
    const res = await request(`${h.baseURL}/audio/speech`, {
      method: "POST",
      dispatcher: agent,
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: speechBody("tts-1", "cut me"),
    });
    expect(res.statusCode).toBe(200);
    const chunks: Buffer[] = [];
    const read = (async () => {
      for await (const chunk of res.body) chunks.push(chunk as Buffer);
    })();
    await expect(read).rejects.toThrow();
    expect(Buffer.concat(chunks).length).toBeLessThan(mockSpeechBytes("cut me").length);
    expect(res.trailers[RECEIPT_HEADER]).toBeUndefined();
  });

  it("the first audio bytes reach the client before the provider has sent the rest; a client that leaves aborts the upstream", async () => {
    mock.queueScenarios({ stallAfterChunks: 1 });
    const res = await request(`${h.baseURL}/audio/speech`, {
      method: "POST",
      dispatcher: agent,
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: speechBody("tts-1", "leave early"),
    });
    const first = await (res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>).next();
    expect(first.done).toBe(false);
    // The provider is holding the rest: what arrived is its first chunk, passed on as it came.
    expect(Buffer.from(first.value as Buffer)).toEqual(mockSpeechBytes("leave early").subarray(0, first.value.length));
    expect(mock.activeStreams()).toBe(1);
    res.body.destroy();
    const deadline = Date.now() + 5000;
    while (mock.activeStreams() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(mock.activeStreams()).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(h.logs.some((l) => l.includes('"surface":"audio.speech"') && l.includes('"status":499'))).toBe(true);
  });

  it("a refusal before the stream is a plain signed JSON error", async () => {
    const res = await request(`${h.baseURL}/audio/speech`, {
      method: "POST",
      dispatcher: agent,
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "local", voice: "alloy", input: "x", response_format: "mp3" }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers[RECEIPT_HEADER]).toBeDefined();
    expect(await res.body.json()).toMatchObject({ error: { code: "unsupported_capability" } });
  });
});
