import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { googleSseJson, startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";

// The mock is what the gateway's fault matrix tests against, so its bytes are
// checked here against Google's framing, not only through the adapter.

let mock: MockGemini;
beforeAll(async () => {
  mock = await startMockGemini({ apiKey: "mock-key" });
});
afterAll(async () => {
  await mock.close();
});

const body = { contents: [{ role: "user", parts: [{ text: "two words" }] }] };
function post(path: string, payload: unknown = body, headers: Record<string, string> = { "x-goog-api-key": "mock-key" }) {
  return fetch(`${mock.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(payload) });
}

describe("mock Gemini wire format", () => {
  it("frames alt=sse events as `data: <one-line json>\\r\\n\\r\\n` with Google's spacing and no [DONE]", async () => {
    mock.setScenario({ text: ["Hel", "lo"] });
    const response = await post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const text = await response.text();
    const frames = text.split("\r\n\r\n");
    expect(frames.at(-1)).toBe("");
    expect(frames).toHaveLength(3);
    expect(text).not.toContain("[DONE]");
    expect(text.replace(/\r\n\r\n/g, "")).not.toMatch(/[\r\n]/);
    expect(frames[0]).toMatch(/^data: \{"candidates": \[\{"content": \{"parts": \[\{"text": "Hel"\}\],"role": "model"\},"index": 0\}\],"usageMetadata": \{"promptTokenCount": 2,/);
    const last = JSON.parse(frames[1]!.slice("data: ".length));
    expect(last.candidates[0].finishReason).toBe("STOP");
    expect(last.usageMetadata).toMatchObject({ promptTokenCount: 2, candidatesTokenCount: 1, totalTokenCount: 3 });
  });

  it("answers countTokens as Google does, and @google/genai reads it", async () => {
    const response = await post("/v1beta/models/gemini-2.5-flash:countTokens");
    expect(await response.text()).toBe('{\n  "totalTokens": 2,\n  "promptTokensDetails": [\n    {\n      "modality": "TEXT",\n      "tokenCount": 2\n    }\n  ]\n}\n');
    const mismatched = await post("/v1beta/models/gemini-2.5-flash:countTokens", { generateContentRequest: { model: "models/other", ...body } });
    expect(mismatched.status).toBe(400);
    const { GoogleGenAI } = await import("@google/genai");
    const ai = new GoogleGenAI({ apiKey: "mock-key", httpOptions: { baseUrl: mock.url } });
    expect((await ai.models.countTokens({ model: "gemini-2.5-flash", contents: "three small words" })).totalTokens).toBe(3);
  });

  it("googleSseJson matches the captured spacing of a real event", () => {
    expect(googleSseJson({ a: [{ b: 1, c: "x" }, 2], d: { e: null }, skip: undefined })).toBe('{"a": [{"b": 1,"c": "x"},2],"d": {"e": null}}');
  });

  it("can frame with LF instead, for parser robustness tests", async () => {
    mock.setScenario({ text: ["a"], lineEnding: "\n" });
    const text = await (await post("/v1beta/models/m:streamGenerateContent?alt=sse")).text();
    expect(text.endsWith("}\n\n")).toBe(true);
    expect(text).not.toContain("\r");
  });

  it("without alt=sse streams one JSON array", async () => {
    mock.setScenario({ text: ["a", " b"] });
    const response = await post("/v1beta/models/m:streamGenerateContent");
    expect(response.headers.get("content-type")).toBe("application/json; charset=UTF-8");
    const parsed = JSON.parse(await response.text());
    expect(parsed).toHaveLength(2);
  });

  it("answers generateContent with pretty-printed JSON", async () => {
    mock.setScenario({ text: "Hi there", functionCalls: [{ name: "f", args: { x: 1 } }] });
    const response = await post("/v1beta/models/m:generateContent");
    const text = await response.text();
    expect(text).toMatch(/^\{\n {2}"candidates": \[\n {4}\{\n {6}"content": \{/);
    expect(text.endsWith("}\n")).toBe(true);
    expect(JSON.parse(text).candidates[0].content.parts).toEqual([{ text: "Hi there" }, { functionCall: { name: "f", args: { x: 1 } } }]);
  });

  it("errors use Google's JSON with retry-after and RetryInfo when asked", async () => {
    mock.setScenario({ status: 429, retryAfter: "7" });
    const response = await post("/v1beta/models/m:generateContent");
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("7");
    const json = (await response.json()) as { error: { details: unknown[] } };
    expect(json.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED" });
    expect(json.error.details[0]).toEqual({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "7s" });
  });

  it("refuses a missing (403) or wrong (400) key, as Google does", async () => {
    mock.setScenario({});
    expect((await post("/v1beta/models/m:generateContent", body, {})).status).toBe(403);
    expect((await post("/v1beta/models/m:generateContent", body, { "x-goog-api-key": "nope" })).status).toBe(400);
  });

  it("records method, path, query, headers and parsed body before faults apply", async () => {
    mock.setScenario({ status: 503 });
    const before = mock.requests.length;
    await post("/v1beta/models/gemini-x:streamGenerateContent?alt=sse");
    const recorded = mock.requests[before]!;
    expect(recorded).toMatchObject({
      method: "POST",
      path: "/v1beta/models/gemini-x:streamGenerateContent",
      query: { alt: "sse" },
      body,
      model: "gemini-x",
      rpc: "streamGenerateContent",
    });
    expect(recorded.headers["x-goog-api-key"]).toBe("mock-key");
  });

  it("a scenario list applies one per request, then the default", async () => {
    mock.setScenario([{ status: 500 }, { status: 503 }]);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post("/v1beta/models/m:generateContent")).status);
    expect(statuses).toEqual([500, 503, 200]);
  });

  it("batchEmbedContents enforces Google's 100-request limit and answers deterministic vectors", async () => {
    mock.setScenario({});
    const request = (n: number) => ({ requests: Array.from({ length: n }, (_, i) => ({ model: "models/e", content: { parts: [{ text: `t${i}` }] } })) });
    expect((await post("/v1beta/models/e:batchEmbedContents", request(101))).status).toBe(400);
    type Batch = { embeddings: { values: number[] }[] };
    const a = (await (await post("/v1beta/models/e:batchEmbedContents", request(2))).json()) as Batch;
    const b = (await (await post("/v1beta/models/e:batchEmbedContents", request(2))).json()) as Batch;
    expect(a.embeddings).toHaveLength(2);
    expect(a.embeddings[0]!.values).toHaveLength(8);
    expect(a).toEqual(b);
  });
});
