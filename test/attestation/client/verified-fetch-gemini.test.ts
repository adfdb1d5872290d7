/**
 * The verifying client on the Gemini-native surface: @google/genai with
 * createVerifiedFetch as its fetch against the real gateway (HTTPS,
 * simulated NSM), and the stream-checking stage fed real /v1beta stream
 * bytes cut short. Gemini's stream has no end marker, so the event carrying
 * finishReason is the terminal one (stream-terminal.ts): it is held until
 * the receipt verifies, and a stream cut anywhere ends in genai's ApiError,
 * never in a short success.
 */
import { ApiError, GoogleGenAI } from "@google/genai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkStreamedResponse, createVerifiedFetch, openAttestedConnection, resolvePolicy, type AttestedPeer, type VerifiedFetch } from "../../../attestation/client/index.js";
import { streamSurfaceFor } from "../../../attestation/client/stream-terminal.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST } from "./helpers.js";

let h: Harness;
let f: VerifiedFetch;
let peer: AttestedPeer;
let origin: string;
const PATH = "/v1beta/models/local:streamGenerateContent?alt=sse";
const STREAM_BODY = JSON.stringify({ contents: [{ role: "user", parts: [{ text: "stream these words for the verifier" }] }] });

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  origin = new URL(h.baseURL).origin;
  f = createVerifiedFetch({
    baseURL: h.baseURL,
    policy: { measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [h.anchor] },
    retainStreamBodies: true,
  });
  const attested = await openAttestedConnection({ origin, policy: resolvePolicy({ measurements: "any", trust: "any", trustedRoots: [h.anchor] }), now: () => new Date() });
  attested.socket.destroy();
  peer = attested.peer;
});
afterAll(async () => {
  await f?.close();
  await h?.close();
});

const genai = (fetch: typeof globalThis.fetch) => new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: origin, fetch } });

/** Real gateway bytes of one Gemini stream (receipt block included). */
async function streamedBytes(): Promise<Uint8Array> {
  const res = await h.fetch(`${origin}${PATH}`, { method: "POST", headers: { "x-goog-api-key": CLIENT_TOKEN, "content-type": "application/json" }, body: STREAM_BODY });
  return new Uint8Array(await res.arrayBuffer());
}

/** `bytes` through the stream-checking stage, in small pieces, as a Response genai can read. */
function checked(bytes: Uint8Array): { response: Response; receipt: Promise<unknown> } {
  async function* source() {
    for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
  }
  const { body, receipt } = checkStreamedResponse({
    peer,
    request: { method: "POST", url: `${origin}${PATH}`, body: new TextEncoder().encode(STREAM_BODY) },
    status: 200,
    source: source(),
  });
  return { response: new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } }), receipt };
}

/** A genai stream whose transport answers with `response`; what it yielded and how it ended. */
async function genaiReads(response: Response): Promise<{ texts: string[]; finish: unknown; error: unknown }> {
  const stream = await genai(async () => response).models.generateContentStream({ model: "local", contents: "stream these words for the verifier" });
  const texts: string[] = [];
  let finish: unknown;
  try {
    for await (const chunk of stream) {
      texts.push(chunk.text ?? "");
      finish = chunk.candidates?.[0]?.finishReason ?? finish;
    }
    return { texts, finish, error: undefined };
  } catch (error) {
    return { texts, finish, error };
  }
}

describe("createVerifiedFetch with @google/genai", () => {
  it("the /v1beta paths take the gemini stream surface", () => {
    expect(streamSurfaceFor("/v1beta/models/local:streamGenerateContent").name).toBe("gemini");
  });

  it("generateContent: attested, receipt verified and recorded", async () => {
    const res = await genai(f).models.generateContent({ model: "local", contents: "verify me" });
    expect(res.text).toContain("verify me");
    const r = f.getReceipts().at(-1)!;
    expect(r.claims.path).toBe("/v1beta/models/local:generateContent");
    expect(r.claims.status).toBe(200);
  });

  it("models.list, countTokens and embedContent: each answer's receipt verified", async () => {
    const before = f.getReceipts().length;
    const names: string[] = [];
    for await (const m of await genai(f).models.list()) names.push(m.name!);
    expect(names).toEqual(["models/local"]);
    expect((await genai(f).models.countTokens({ model: "local", contents: "one two three four" })).totalTokens).toBe(5);
    expect((await genai(f).models.embedContent({ model: "local", contents: "embed me" })).embeddings).toHaveLength(1);
    const paths = f
      .getReceipts()
      .slice(before)
      .map((r) => r.claims.path);
    expect(paths).toEqual(["/v1beta/models", "/v1beta/models/local:countTokens", "/v1beta/models/local:batchEmbedContents"]);
  });

  it("a complete stream is accepted: every chunk, the finishReason last, the receipt verified at the end", async () => {
    const stream = await genai(f).models.generateContentStream({ model: "local", contents: "stream these words please" });
    let text = "";
    let finish: unknown;
    for await (const chunk of stream) {
      text += chunk.text ?? "";
      finish = chunk.candidates?.[0]?.finishReason ?? finish;
    }
    expect(text).toContain("stream these words please");
    expect(finish).toBe("STOP");
    await new Promise((r) => setImmediate(r));
    const r = f.getReceipts().at(-1)!;
    expect(r.claims.stream).toBe(true);
    const body = Buffer.from(r.response.body!).toString("utf8");
    expect(body).toContain('"finishReason":"STOP"');
    expect(body).not.toContain("egw-receipt");
  });
});

describe("a Gemini stream cut short never ends in success", () => {
  it("unaltered bytes pass the stage and genai reads them to the finishReason", async () => {
    const { response, receipt } = checked(await streamedBytes());
    const out = await genaiReads(response);
    expect(out.error).toBeUndefined();
    expect(out.finish).toBe("STOP");
    await expect(receipt).resolves.toBeDefined();
  });

  it("cut after the finishReason event, before the receipt: that event is held back and genai throws instead", async () => {
    const bytes = await streamedBytes();
    const text = Buffer.from(bytes).toString("latin1");
    const { response } = checked(bytes.subarray(0, text.lastIndexOf(": egw-receipt ")));
    const out = await genaiReads(response);
    expect(out.finish).toBeUndefined();
    expect(out.error).toBeInstanceOf(ApiError);
    expect((out.error as ApiError).message).toContain("ERR_RECEIPT_MISSING");
  });

  it("cut before the finishReason event: the events before it pass, then genai throws", async () => {
    const bytes = await streamedBytes();
    const text = Buffer.from(bytes).toString("latin1");
    const { response } = checked(bytes.subarray(0, text.indexOf('"finishReason"') - 40));
    const out = await genaiReads(response);
    expect(out.texts.length).toBeGreaterThan(0);
    expect(out.finish).toBeUndefined();
    expect(out.error).toBeInstanceOf(ApiError);
  });

  it("one flipped byte: genai throws ERR_RECEIPT_RESPONSE_MISMATCH in place of the terminal event", async () => {
    const bytes = await streamedBytes();
    // A letter of the answer's text changes case: still JSON, no longer what was signed.
    bytes[Buffer.from(bytes).indexOf("words")]! ^= 0x20;
    const out = await genaiReads(checked(bytes).response);
    expect(out.finish).toBeUndefined();
    expect((out.error as ApiError).message).toContain("ERR_RECEIPT_RESPONSE_MISMATCH");
  });
});
