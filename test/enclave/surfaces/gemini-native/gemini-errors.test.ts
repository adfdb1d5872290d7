import { ApiError, GoogleGenAI } from "@google/genai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashToken } from "../../../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { gatewayApp, OTHER_TOKEN, receiptOf, TOKEN, type GatewayApp } from "../../../helpers/gateway-app.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";

/**
 * Every refusal on /v1beta in Google's error shape, with the right status,
 * signed like any answer; the client token however it arrives never reaches
 * a log. Then upstream failures through the real server: Google's 4xx
 * message passed on, 5xx as 502, a mid-stream failure as Google's in-stream
 * error, which @google/genai throws as ApiError.
 */
const GEN = "/v1beta/models/local:generateContent";
const HELLO = { contents: [{ role: "user", parts: [{ text: "hello" }] }] };

function request(g: GatewayApp, path: string, body: unknown, headers: Record<string, string> = { "x-goog-api-key": TOKEN }): Promise<Response> {
  return Promise.resolve(
    g.app.request(path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) }),
  );
}

async function googleError(g: GatewayApp, res: Response, status: number, googleStatus: string, requestBody: string) {
  expect(res.status).toBe(status);
  const { body } = await receiptOf(g, res, requestBody);
  const parsed = JSON.parse(Buffer.from(body).toString("utf8")) as { error: { code: number; message: string; status: string } };
  expect(Object.keys(parsed)).toEqual(["error"]);
  expect(parsed.error).toMatchObject({ code: status, status: googleStatus });
  expect(typeof parsed.error.message).toBe("string");
  return parsed.error;
}

describe("gateway refusals on /v1beta, in Google's shape", () => {
  let g: GatewayApp;
  beforeAll(async () => {
    g = await gatewayApp({ config: { limits: { maxBodyBytes: 2048 } } });
  });

  it("the token as x-goog-api-key, Bearer or ?key= is accepted; ?key= never reaches the log", async () => {
    expect((await request(g, GEN, HELLO)).status).toBe(200);
    expect((await request(g, GEN, HELLO, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await request(g, `${GEN}?key=${TOKEN}`, HELLO, {})).status).toBe(200);
    expect(g.logs.join("\n")).not.toContain(TOKEN);
    expect(g.logs.join("\n")).not.toContain("key=");
  });

  it("the receipt names the path without its query: a ?key= token is in no receipt", async () => {
    const body = JSON.stringify(HELLO);
    const res = await request(g, `${GEN}?key=${TOKEN}&alt=json`, body, {});
    const { claims } = await receiptOf(g, res, body);
    expect(claims.path).toBe(GEN);
    expect(JSON.stringify(claims)).not.toContain(TOKEN);
  });

  it("missing and wrong keys: 401 UNAUTHENTICATED (x-api-key is not the Gemini surface's header)", async () => {
    await googleError(g, await request(g, GEN, HELLO, {}), 401, "UNAUTHENTICATED", "");
    await googleError(g, await request(g, GEN, HELLO, { "x-goog-api-key": "wrong" }), 401, "UNAUTHENTICATED", "");
    await googleError(g, await request(g, GEN, HELLO, { "x-api-key": TOKEN }), 401, "UNAUTHENTICATED", "");
    await googleError(g, await request(g, `${GEN}?key=wrong`, HELLO, {}), 401, "UNAUTHENTICATED", "");
  });

  it("unknown model: 404 NOT_FOUND; a model the token may not use: 403 PERMISSION_DENIED", async () => {
    const body = JSON.stringify(HELLO);
    await googleError(g, await request(g, "/v1beta/models/nope:generateContent", body), 404, "NOT_FOUND", body);
    await googleError(g, await request(g, "/v1beta/models/local/x:generateContent", body, { "x-goog-api-key": OTHER_TOKEN }), 403, "PERMISSION_DENIED", body);
  });

  it("unknown method and unknown path: 404 NOT_FOUND in Google's shape", async () => {
    const res = await request(g, "/v1beta/models/local:predict", HELLO);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 404, status: "NOT_FOUND" } });
    const other = await g.app.request("/v1beta/files", { headers: { "x-goog-api-key": TOKEN } });
    expect(await other.json()).toMatchObject({ error: { code: 404, status: "NOT_FOUND" } });
  });

  it("bad bodies: 400 INVALID_ARGUMENT naming the field, never the text", async () => {
    const cases: [string, string][] = [
      ["{not json", "JSON"],
      [JSON.stringify({}), "contents"],
      [JSON.stringify({ contents: [{ role: "system", parts: [{ text: "secret prompt" }] }] }), "contents[0].role"],
      [JSON.stringify({ contents: [{ role: "user", parts: [{ text: 7 }] }] }), "contents[0].parts[0].text"],
      [JSON.stringify({ contents: [{ role: "user", parts: [{ functionResponse: { name: "f", response: {} } }] }] }), "matches no earlier functionCall"],
      [JSON.stringify({ ...HELLO, generationConfig: { temperature: "hot" } }), "temperature"],
    ];
    for (const [body, says] of cases) {
      const error = await googleError(g, await request(g, GEN, body), 400, "INVALID_ARGUMENT", body);
      expect(error.message).toContain(says);
      expect(error.message).not.toContain("secret prompt");
    }
  });

  it("what a translated route cannot do: 400 INVALID_ARGUMENT (unsupported_capability)", async () => {
    const cases = [
      { ...HELLO, tools: [{ googleSearch: {} }] },
      { contents: [{ role: "user", parts: [{ inlineData: { mimeType: "application/pdf", data: "AAAA" } }] }] },
      { contents: [{ role: "user", parts: [{ executableCode: { language: "PYTHON", code: "1" } }] }] },
      { ...HELLO, cachedContent: "cachedContents/x" },
    ];
    for (const c of cases) await googleError(g, await request(g, GEN, c), 400, "INVALID_ARGUMENT", JSON.stringify(c));
  });

  it("streamGenerateContent without alt=sse is refused, not answered in another framing", async () => {
    const body = JSON.stringify(HELLO);
    const error = await googleError(g, await request(g, "/v1beta/models/local:streamGenerateContent", body), 400, "INVALID_ARGUMENT", body);
    expect(error.message).toContain("alt=sse");
  });

  it("oversized body: 413 in Google's shape, connection closed", async () => {
    const body = JSON.stringify({ contents: [{ parts: [{ text: "x".repeat(4096) }] }] });
    const res = await request(g, GEN, body);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 413, status: "INVALID_ARGUMENT" } });
  });

  it("wrong content type: 415", async () => {
    const res = await request(g, GEN, JSON.stringify(HELLO), { "x-goog-api-key": TOKEN, "content-type": "text/plain" });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ error: { code: 415, status: "INVALID_ARGUMENT" } });
  });

  it("models list needs the key too", async () => {
    const res = await g.app.request("/v1beta/models");
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: 401, status: "UNAUTHENTICATED" } });
  });
});

describe("upstream failures through the real server", () => {
  let h: Harness;
  let mock: MockGemini;
  let ai: GoogleGenAI;
  beforeAll(async () => {
    mock = await startMockGemini({ apiKey: "gem-test" });
    h = await startHarness({
      config: JSON.stringify({
        version: 1,
        providers: [{ name: "gemini", kind: "gemini", baseUrl: mock.url, secret: "GEMINI_API_KEY" }],
        models: { gemini: { provider: "gemini", model: "gemini-2.5-flash" } },
        prefixRouting: true,
        egressAllowlist: [new URL(mock.url).host],
        clients: [{ name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
        limits: { maxRetries: 0 },
      }),
      secrets: new Map([["GEMINI_API_KEY", "gem-test"]]),
    });
    ai = new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: h.baseURL.replace(/\/v1$/, ""), fetch: h.fetch } });
  });
  afterAll(async () => {
    await h?.close();
    await mock?.close();
  });
  beforeEach(() => mock.setScenario({}));

  it("a model name that would steer the upstream path (prefix routing) is refused before any upstream request", async () => {
    const before = mock.requests.length;
    for (const path of [
      "/v1beta/models/gemini/x:streamGenerateContent:generateContent",
      "/v1beta/models/gemini%2F..%2F..%2Fv1%2Ffiles:generateContent",
      "/v1beta/models/gemini/a%3Fb:generateContent",
    ]) {
      const res = await h.fetch(`${h.baseURL.replace(/\/v1$/, "")}${path}`, {
        method: "POST",
        headers: { "x-goog-api-key": CLIENT_TOKEN, "content-type": "application/json" },
        body: JSON.stringify(HELLO),
      });
      expect([400, 404]).toContain(res.status);
      expect(await res.json()).toMatchObject({ error: { status: expect.stringMatching(/^(INVALID_ARGUMENT|NOT_FOUND)$/) } });
    }
    expect(mock.requests.length).toBe(before);
  });

  it("Google's 400: ApiError 400 with Google's message passed on", async () => {
    mock.setScenario({ status: 400, errorMessage: "Invalid value at 'generation_config.temperature'" });
    const err = await ai.models.generateContent({ model: "gemini", contents: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).message).toContain("Invalid value at 'generation_config.temperature'");
  });

  it("Google's 404 for the model: 404 NOT_FOUND", async () => {
    mock.setScenario({ status: 404, errorMessage: "models/gemini-2.5-flash is not found" });
    const err = await ai.models.generateContent({ model: "gemini", contents: "x" }).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(404);
  });

  it("Google's 500 and 503: 502, the provider's text withheld", async () => {
    for (const status of [500, 503]) {
      mock.setScenario({ status, errorMessage: "backend exploded near secret words" });
      const err = await ai.models.generateContent({ model: "gemini", contents: "x" }).catch((e: unknown) => e);
      expect((err as ApiError).status).toBe(502);
      expect((err as ApiError).message).not.toContain("secret words");
    }
  });

  it("Google's 429: 429 RESOURCE_EXHAUSTED with retry-after from the RetryInfo detail", async () => {
    mock.setScenario({ status: 429, retryDelay: "7s" });
    const res = await h.fetch(`${h.baseURL.replace(/\/v1$/, "")}/v1beta/models/gemini:generateContent`, {
      method: "POST",
      headers: { "x-goog-api-key": CLIENT_TOKEN, "content-type": "application/json" },
      body: JSON.stringify(HELLO),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(await res.json()).toMatchObject({ error: { code: 429, status: "RESOURCE_EXHAUSTED" } });
  });

  it("an error before the first event is an HTTP error; after it, Google's in-stream error that genai throws", async () => {
    mock.setScenario({ errorEvent: { after: 0, code: 500 } });
    const before = await ai.models.generateContentStream({ model: "gemini", contents: "x" }).catch((e: unknown) => e);
    expect((before as ApiError).status).toBe(502);

    mock.setScenario({ text: ["one ", "two"], errorEvent: { after: 1, code: 503 } });
    const stream = await ai.models.generateContentStream({ model: "gemini", contents: "x" });
    const texts: string[] = [];
    const err = await (async () => {
      for await (const chunk of stream) texts.push(chunk.text ?? "");
    })().catch((e: unknown) => e);
    expect(texts).toEqual(["one "]);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
  });

  it("a stream cut before its finishReason ends in an error, never a short success", async () => {
    mock.setScenario({ text: ["one ", "two"], destroyAfterEvents: 1 });
    const stream = await ai.models.generateContentStream({ model: "gemini", contents: "x" });
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
  });

  it("an upstream stream that ends cleanly without a finishReason is an error too", async () => {
    mock.setScenario({ events: [{ candidates: [{ content: { parts: [{ text: "half" }], role: "model" }, index: 0 }] }] });
    const stream = await ai.models.generateContentStream({ model: "gemini", contents: "x" });
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
  });
});
