/**
 * /v1/responses end to end over real TLS (the enclave harness), with the
 * verifying client (createVerifiedFetch) under the official SDK: receipts
 * of Responses answers and streams verify, the stream's terminal event
 * (response.completed, response.incomplete, response.failed) is held until
 * they do, and altered bytes make the SDK throw instead of ending in
 * success.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkStreamedResponse, createVerifiedFetch, openAttestedConnection, resolvePolicy, type AttestedPeer, type VerifiedFetch } from "../../../../attestation/client/index.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { MOCK_RESPONSES_TEXT, startMockOpenAIResponses, type MockOpenAIResponses } from "../../../helpers/mock-openai-responses.js";
import { startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";
import { PCR0_TEST } from "../../../attestation/client/helpers.js";

let h: Harness;
let responsesMock: MockOpenAIResponses;
let chatMock: MockOpenAI;
let f: VerifiedFetch;
let client: OpenAI;

beforeAll(async () => {
  responsesMock = await startMockOpenAIResponses();
  chatMock = await startMockOpenAI();
  const host = (u: string) => new URL(u).host;
  h = await startHarness({
    config: configJson({
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: responsesMock.url, secret: "OPENAI_API_KEY" },
        { name: "compat", kind: "openai-compatible", baseUrl: chatMock.url },
      ],
      models: { local: { provider: "local", model: "local" }, gpt: { provider: "openai", model: "gpt-4.1" }, compat: { provider: "compat", model: "m" } },
      egressAllowlist: [host(responsesMock.url), host(chatMock.url)],
      limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 },
    }),
    secrets: new Map([["OPENAI_API_KEY", "sk-upstream"]]),
  });
  f = createVerifiedFetch({
    baseURL: h.baseURL,
    policy: { measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [h.anchor] },
    retainStreamBodies: true,
  });
  client = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: f, maxRetries: 0 });
});
afterAll(async () => {
  await f?.close();
  await h?.close();
  await responsesMock?.close();
  await chatMock?.close();
});

const settle = () => new Promise((r) => setImmediate(r));

describe("createVerifiedFetch + openai SDK on /v1/responses", () => {
  it("non-streamed, native and translated: answers arrive, each with a verified receipt", async () => {
    const native = await client.responses.create({ model: "gpt", input: "hi" });
    const local = await client.responses.create({ model: "local", input: "verified hello" });
    expect(native.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect(local.output_text).toContain("verified hello");
    const receipts = f.getReceipts().slice(-2);
    expect(receipts.map((r) => [r.claims.surface, r.claims.provider, r.claims.stream])).toEqual([
      ["responses", "openai", false],
      ["responses", "local", false],
    ]);
  });

  it("stored responses through the verifying client: retrieve and delete, each answer with a verified receipt", async () => {
    const created = await client.responses.create({ model: "gpt", input: "keep" });
    // One native provider in this policy: no ?model= needed.
    expect((await client.responses.retrieve(created.id)).id).toBe(created.id);
    await client.responses.delete(created.id);
    const receipts = f.getReceipts().slice(-2);
    expect(receipts.map((r) => [r.claims.surface, r.claims.method, r.claims.path])).toEqual([
      ["responses.stored", "GET", `/v1/responses/${created.id}`],
      ["responses.stored", "DELETE", `/v1/responses/${created.id}`],
    ]);
  });

  it("streamed, native (the stream helper) and translated: the terminal event arrives after the receipt verified", async () => {
    const native = await client.responses.stream({ model: "gpt", input: "hi" }).finalResponse();
    expect(native.output_text).toBe(MOCK_RESPONSES_TEXT);
    const stream = await client.responses.create({ model: "local", input: "stream verified words", stream: true });
    let text = "";
    let lastType = "";
    for await (const e of stream) {
      lastType = e.type;
      if (e.type === "response.output_text.delta") text += e.delta;
    }
    expect(text).toContain("stream verified words");
    expect(lastType).toBe("response.completed");
    await settle();
    const [a, b] = f.getReceipts().slice(-2);
    expect([a!.claims.stream, b!.claims.stream]).toEqual([true, true]);
    const body = Buffer.from(b!.response.body!).toString("utf8");
    expect(body).toContain("event: response.completed");
    expect(body).not.toContain("egw-receipt");
  });

  it("a mid-stream failure: the SDK throws at the error event; response.failed and the receipt still verify", async () => {
    chatMock.queueScenarios({ destroyAfterChunks: 3 });
    const stream = await client.responses.create({ model: "compat", input: "x", stream: true });
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toContain("upstream");
    // Read raw through the verifying fetch: response.failed is held, then released once the receipt verifies.
    chatMock.queueScenarios({ destroyAfterChunks: 3 });
    const res = await f(`${h.baseURL}/responses`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "compat", input: "x", stream: true }),
    });
    const text = await res.text();
    expect(text.trimEnd().split("\n\n").at(-1)).toMatch(/^event: response.failed\ndata: /);
    await settle();
    expect(f.getReceipts().at(-1)!.claims).toMatchObject({ surface: "responses", stream: true, status: 200 });
  });
});

describe("altered Responses stream bytes: the SDK throws instead of ending in success", () => {
  let peer: AttestedPeer;
  beforeAll(async () => {
    const attested = await openAttestedConnection({
      origin: new URL(h.baseURL).origin,
      policy: resolvePolicy({ measurements: "any", trust: "any", trustedRoots: [h.anchor] }),
      now: () => new Date(),
    });
    attested.socket.destroy();
    peer = attested.peer;
  });

  it("one flipped byte in a delta: response.completed is replaced by an error event the SDK throws on", async () => {
    const requestText = JSON.stringify({ model: "local", input: "tamper with my stream", stream: true });
    const res = await h.fetch(`${h.baseURL}/responses`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: requestText,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const at = Buffer.from(bytes).indexOf("tamper", Buffer.from(bytes).indexOf("response.output_text.delta"));
    bytes[at]! ^= 0x20; // "tamper" → "Tamper"
    const checked = checkStreamedResponse({
      peer,
      request: { method: "POST", url: `${h.baseURL}/responses`, body: new TextEncoder().encode(requestText) },
      status: 200,
      source: (async function* () {
        yield bytes;
      })(),
    });
    checked.receipt.catch(() => {});
    const sdk = new OpenAI({
      baseURL: h.baseURL,
      apiKey: "unused",
      maxRetries: 0,
      fetch: (async () => new Response(checked.body, { status: 200, headers: { "content-type": "text/event-stream" } })) as typeof fetch,
    });
    const types: string[] = [];
    const err = await (async () => {
      const stream = await sdk.responses.create({ model: "local", input: "x", stream: true });
      for await (const e of stream) types.push(e.type);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("ERR_RECEIPT_RESPONSE_MISMATCH");
    expect((err as Error).message).toContain("failed verification");
    expect(types).not.toContain("response.completed");
    expect(types[0]).toBe("response.created");
  });
});
