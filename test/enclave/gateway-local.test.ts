import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { RECEIPT_HEADER, receiptKeyFromSpki, splitStreamReceipt, verifyReceipt } from "../../attestation/receipt.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { createHash, randomBytes } from "node:crypto";

let h: Harness;
let openai: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
});
afterAll(async () => {
  await h?.close();
});

async function attestedReceiptKey() {
  const nonce = randomBytes(32);
  const res = await h.fetch(`${h.baseURL}/attestation?nonce=${nonce.toString("hex")}`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/cbor");
  const doc = new Uint8Array(await res.arrayBuffer());
  const result = await verifyAttestation(doc, { currentDate: new Date(), expectedPcrs: { 0: "11".repeat(48) }, nonce, trustedRoots: [h.anchor] });
  const binding = decodeBinding(result.document.userData);
  expect(Buffer.from(binding.tlsSpkiSha256).equals(Buffer.from(h.enclave.identity.tls.spkiSha256))).toBe(true);
  expect(Buffer.from(binding.configSha256).equals(Buffer.from(h.enclave.configSha256))).toBe(true);
  return receiptKeyFromSpki(result.document.publicKey!);
}

describe("gateway with the built-in local model", () => {
  it("answers a chat completion through the official openai SDK, with a verifiable receipt", async () => {
    const key = await attestedReceiptKey();
    const { data, response } = await openai.chat.completions.create({ model: "local", messages: [{ role: "user", content: "hello there" }] }).withResponse();
    expect(data.choices[0]!.message.content).toContain("hello there");
    const receipt = response.headers.get(RECEIPT_HEADER);
    expect(receipt).toBeTruthy();
    // The SDK consumed the body; replay the same request raw to check hashes over exact bytes.
    const body = JSON.stringify({ model: "local", messages: [{ role: "user", content: "hello there" }] });
    const raw = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body,
    });
    const responseBytes = new Uint8Array(await raw.arrayBuffer());
    const claims = verifyReceipt(Buffer.from(raw.headers.get(RECEIPT_HEADER)!, "base64url"), {
      publicKey: key,
      requestBody: new TextEncoder().encode(body),
      responseBody: responseBytes,
    });
    expect(claims).toMatchObject({
      v: 2,
      method: "POST",
      path: "/v1/chat/completions",
      bodyRead: true,
      status: 200,
      model: "local",
      provider: "local",
      stream: false,
      surface: "chat.completions",
    });
    expect(claims.upstream).toEqual({ origin: "local", model: expect.any(String) });
    expect(claims.upstream!.tlsSpkiSha256).toBeUndefined();
  });

  it("streams through the SDK; the receipt event after [DONE] is invisible to it", async () => {
    const stream = await openai.chat.completions.create({
      model: "local",
      messages: [{ role: "user", content: "stream me some words please" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toContain("stream me some words please");
    expect(usage).toBeTruthy();
  });

  it("signs the exact streamed bytes that precede the receipt event", async () => {
    const key = await attestedReceiptKey();
    const body = JSON.stringify({ model: "local", stream: true, messages: [{ role: "user", content: "count the bytes" }] });
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body,
    });
    const all = new Uint8Array(await res.arrayBuffer());
    const split = splitStreamReceipt(all)!;
    expect(split).not.toBeNull();
    const before = Buffer.from(split.signed);
    expect(before.toString().endsWith("data: [DONE]\n\n")).toBe(true);
    const claims = verifyReceipt(split.receipt, { publicKey: key, requestBody: Buffer.from(body), responseBody: before });
    expect(claims.stream).toBe(true);
    // A flipped byte in what was received is refused.
    const tampered = Buffer.from(before);
    tampered[10]! ^= 1;
    expect(() => verifyReceipt(split.receipt, { publicKey: key, requestBody: Buffer.from(body), responseBody: tampered })).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_RESPONSE_MISMATCH" }),
    );
    expect(createHash("sha256").update(before).digest()).toBeTruthy();
  });

  it("calls tools with the local model", async () => {
    const res = await openai.chat.completions.create({
      model: "local",
      messages: [{ role: "user", content: "weather in Paris" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
    });
    expect(res.choices[0]!.finish_reason).toBe("tool_calls");
    expect(res.choices[0]!.message.tool_calls![0]!.type).toBe("function");
  });

  it("maps errors to the SDK's typed errors, each with a receipt", async () => {
    const bad = new OpenAI({ baseURL: h.baseURL, apiKey: "wrong", fetch: h.fetch, maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(openai.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(openai.chat.completions.create({ model: "local", messages: [] })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const raw = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(raw.status).toBe(400);
    expect(raw.headers.get(RECEIPT_HEADER)).toBeTruthy();
  });

  it("refuses a body over the limit, counted on the stream", async () => {
    const big = "x".repeat(11 * 1024 * 1024);
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "local", messages: [{ role: "user", content: big }] }),
    });
    expect(res.status).toBe(413);
  });

  it("lists only configured models", async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["local"]);
  });

  it("serves embeddings and images from the local model", async () => {
    const emb = await openai.embeddings.create({ model: "local", input: ["a", "b"] });
    expect(emb.data).toHaveLength(2);
    const img = await openai.images.generate({ model: "local", prompt: "a square" });
    expect(img.data?.[0]?.b64_json).toBeTruthy();
  });
});
