import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { createGeminiAdapter } from "../../../../enclave/providers/gemini/gemini-adapter.js";
import type { NativeGemini, ProviderCallContext } from "../../../../enclave/providers/types.js";
import { UpstreamError } from "../../../../enclave/providers/types.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";

/** The Gemini adapter's native pass-through (NativeGemini) against the byte-accurate mock. */
const KEY = "AIzaSy-native-test";
let mock: MockGemini;
let native: NativeGemini;

const ctx = (upstreamModel = "gemini-2.5-flash"): ProviderCallContext => ({ fetch: globalThis.fetch, signal: new AbortController().signal, upstreamModel, now: () => new Date(0) });
const decode = (b: Uint8Array) => JSON.parse(Buffer.from(b).toString("utf8")) as Record<string, unknown>;
async function collect(stream: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const s of stream) out.push(s);
  return out;
}

beforeAll(async () => {
  mock = await startMockGemini({ apiKey: KEY });
  native = createGeminiAdapter({ name: "gemini", baseUrl: mock.url, apiKey: () => KEY }).nativeGemini!;
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.setScenario({});
  mock.requests.length = 0;
});

describe("NativeGemini.call", () => {
  it("generateContent: the body as given, to the upstream model, with the provider key; the answer kept field for field", async () => {
    const body = { contents: [{ role: "user", parts: [{ text: "hi" }] }], safetySettings: [{ category: "X", threshold: "Y" }], futureField: { a: 1 } };
    mock.setScenario({ text: "hello", responseId: "r1", modelVersion: "gemini-2.5-flash-001" });
    const out = await native.call("generateContent", body, ctx());
    expect(mock.requests[0]!.path).toBe("/v1beta/models/gemini-2.5-flash:generateContent");
    expect(mock.requests[0]!.body).toEqual(body);
    expect(mock.requests[0]!.headers["x-goog-api-key"]).toBe(KEY);
    expect(mock.requests[0]!.query).toEqual({});
    expect(out.model).toBe("gemini-2.5-flash-001");
    expect(decode(out.bytes)).toMatchObject({ responseId: "r1", candidates: [{ content: { parts: [{ text: "hello" }] }, finishReason: "STOP" }] });
  });

  it("the model named again in the body is the upstream model: batchEmbedContents, embedContent, countTokens", async () => {
    await native.call("batchEmbedContents", { requests: [{ model: "models/alias", content: { parts: [{ text: "a" }] } }] }, ctx());
    expect((mock.requests[0]!.body as { requests: { model: string }[] }).requests[0]!.model).toBe("models/gemini-2.5-flash");
    await native.call("embedContent", { model: "models/alias", content: { parts: [{ text: "a" }] } }, ctx());
    expect((mock.requests[1]!.body as { model: string }).model).toBe("models/gemini-2.5-flash");
    const counted = await native.call("countTokens", { generateContentRequest: { model: "models/alias", contents: [{ parts: [{ text: "one two" }] }] } }, ctx());
    expect(decode(counted.bytes).totalTokens).toBe(2);
  });

  it("an upstream model that could leave the path is refused before any request", async () => {
    for (const model of ["../other", "a:streamGenerateContent", "a/b", "a?x", "a#x", "%2e%2e"]) {
      await expect(native.call("generateContent", { contents: [] }, ctx(model))).rejects.toBeInstanceOf(GatewayError);
    }
    expect(mock.requests).toHaveLength(0);
  });

  it("an answer that is not a JSON object is malformed; a 4xx keeps its status", async () => {
    mock.setScenario({ rawBody: "[1,2]" });
    await expect(native.call("generateContent", { contents: [] }, ctx())).rejects.toMatchObject({ kind: "malformed" });
    mock.setScenario({ status: 400, errorMessage: "bad field" });
    await expect(native.call("generateContent", { contents: [] }, ctx())).rejects.toMatchObject({ kind: "status", status: 400 });
  });
});

describe("NativeGemini.stream", () => {
  const body = { contents: [{ role: "user", parts: [{ text: "hi" }] }] };

  it("each upstream event re-framed as Google frames it, data untouched, whatever line endings upstream used", async () => {
    for (const lineEnding of ["\r\n", "\n"] as const) {
      mock.setScenario({ text: ["a ", "b"], lineEnding, modelVersion: "v9" });
      let model: unknown;
      const out = await collect(native.stream(body, ctx(), (m) => (model = m)));
      expect(out).toHaveLength(2);
      expect(out.every((e) => /^data: \{.*\}\r\n\r\n$/s.test(e))).toBe(true);
      expect(out[0]).toContain('"text": "a "');
      expect(out[1]).toContain('"finishReason": "STOP"');
      expect(model).toBe("v9");
      expect(mock.requests.at(-1)!.query).toEqual({ alt: "sse" });
    }
  });

  it("Google's in-stream error, a malformed event, a cut, or an end without finishReason: UpstreamError", async () => {
    const failing = [
      { text: ["a ", "b"], errorEvent: { after: 1, code: 503 } },
      { text: ["a ", "b"], malformedEventAt: 1 },
      { text: ["a ", "b"], destroyAfterEvents: 1 },
      { events: [{ candidates: [{ content: { parts: [{ text: "a" }] }, index: 0 }] }] },
      { events: ["[1]"] },
    ];
    for (const scenario of failing) {
      mock.setScenario(scenario);
      await expect(collect(native.stream(body, ctx()))).rejects.toBeInstanceOf(UpstreamError);
    }
  });

  it("a blocked prompt is a complete stream", async () => {
    mock.setScenario({ blockReason: "SAFETY" });
    const out = await collect(native.stream(body, ctx()));
    expect(out[0]).toContain("blockReason");
  });
});
