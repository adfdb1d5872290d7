import { ApiError, FunctionCallingConfigMode, GoogleGenAI, Type } from "@google/genai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RECEIPT_HEADER, splitStreamReceipt } from "../../../../attestation/receipt.js";
import { hashToken } from "../../../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { startMockAnthropic, type MockAnthropic } from "../../../helpers/mock-anthropic.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";
import { startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";

/**
 * The Gemini-native surface (/v1beta) with @google/genai as the client, over
 * real TLS, on every provider kind: native pass-through on the Gemini route,
 * translated on the OpenAI, Anthropic and local routes.
 */
let h: Harness;
let mocks: { openai: MockOpenAI; compat: MockOpenAI; anthropic: MockAnthropic; gemini: MockGemini };
let ai: GoogleGenAI;
/** What @google/genai put on the wire, request by request. */
const sent: { url: string; body: string; headers: Headers }[] = [];
/** The raw answers, for their receipts. */
const answers: Response[] = [];

beforeAll(async () => {
  mocks = {
    openai: await startMockOpenAI({ scenario: { content: "hello from openai mock" } }),
    compat: await startMockOpenAI({ scenario: { content: "hello from a compatible mock" } }),
    anthropic: await startMockAnthropic({ apiKey: "sk-ant-test" }),
    gemini: await startMockGemini({ apiKey: "gem-test" }),
  };
  const hostOf = (u: string) => new URL(u).host;
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mocks.openai.url, secret: "OPENAI_API_KEY" },
        { name: "compat", kind: "openai-compatible", baseUrl: mocks.compat.url },
        { name: "anthropic", kind: "anthropic", baseUrl: mocks.anthropic.url, secret: "ANTHROPIC_API_KEY" },
        { name: "gemini", kind: "gemini", baseUrl: mocks.gemini.url, secret: "GEMINI_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        "gpt-4o": { provider: "openai", model: "gpt-4o" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
        gemini: { provider: "gemini", model: "gemini-2.5-flash" },
        compat: { provider: "compat", model: "compat-model" },
      },
      prefixRouting: true,
      egressAllowlist: [hostOf(mocks.compat.url), hostOf(mocks.openai.url), hostOf(mocks.anthropic.url), hostOf(mocks.gemini.url)],
      clients: [{ name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
    }),
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-test"],
      ["ANTHROPIC_API_KEY", "sk-ant-test"],
      ["GEMINI_API_KEY", "gem-test"],
    ]),
  });
  const recordingFetch: typeof fetch = async (input, init) => {
    sent.push({ url: String(input), body: typeof init?.body === "string" ? init.body : "", headers: new Headers(init?.headers) });
    const response = await h.fetch(input, init);
    answers.push(response.clone());
    return response;
  };
  ai = new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: h.baseURL.replace(/\/v1$/, ""), fetch: recordingFetch } });
});
afterAll(async () => {
  await h?.close();
  await Promise.all(Object.values(mocks ?? {}).map((m) => m.close()));
});
beforeEach(() => {
  mocks.gemini.setScenario({});
  mocks.openai.setScenario({ content: "hello from openai mock" });
});

const MODELS = ["gemini", "gpt-4o", "compat", "claude", "local"] as const;
const WEATHER = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING } }, required: ["city"] },
};

describe("@google/genai on every provider kind", () => {
  for (const model of MODELS) {
    it(`${model}: generateContent with a system instruction`, async () => {
      const res = await ai.models.generateContent({ model, contents: "say hello", config: { systemInstruction: "be brief", temperature: 0.5, maxOutputTokens: 64 } });
      expect(res.text?.length).toBeGreaterThan(0);
      expect(res.candidates![0]!.finishReason).toBe("STOP");
      expect(res.usageMetadata?.totalTokenCount).toBeGreaterThan(0);
      expect(typeof res.modelVersion).toBe("string");
      expect(sent.at(-1)!.headers.get("x-goog-api-key")).toBe(CLIENT_TOKEN);
      expect(answers.at(-1)!.headers.get(RECEIPT_HEADER)).toMatch(/^[A-Za-z0-9_-]+$/);
    });

    it(`${model}: generateContentStream ends with finishReason and usage, then the receipt`, async () => {
      const stream = await ai.models.generateContentStream({ model, contents: "say hello" });
      let text = "";
      const chunks = [];
      for await (const chunk of stream) {
        text += chunk.text ?? "";
        chunks.push(chunk);
      }
      expect(text.length).toBeGreaterThan(0);
      const last = chunks.at(-1)!;
      expect(last.candidates![0]!.finishReason).toBe("STOP");
      expect(last.usageMetadata?.totalTokenCount).toBeGreaterThan(0);
      expect(chunks.slice(0, -1).every((c) => c.candidates![0]!.finishReason === undefined)).toBe(true);
      const raw = new Uint8Array(await answers.at(-1)!.arrayBuffer());
      const split = splitStreamReceipt(raw);
      expect(split).not.toBeNull();
      expect(Buffer.from(split!.signed).toString("utf8")).toMatch(/^(data: [^\r\n]+\r\n\r\n)+$/);
    });

    it(`${model}: countTokens`, async () => {
      const res = await ai.models.countTokens({ model, contents: "one two three four" });
      expect(res.totalTokens).toBeGreaterThan(0);
      expect(answers.at(-1)!.headers.get("x-egw-token-count")).toBe(model === "gemini" ? "provider" : "estimate");
    });
  }

  it("gemini: the body goes upstream as the SDK sent it, the path names the upstream model, the gateway's key replaces the client's", async () => {
    await ai.models.generateContent({
      model: "gemini",
      contents: [{ role: "user", parts: [{ text: "hi" }] }],
      config: { temperature: 0.2, topK: 3, safetySettings: [{ category: "HARM_CATEGORY_HATE_SPEECH" as never, threshold: "BLOCK_NONE" as never }] },
    });
    const upstream = mocks.gemini.requests.at(-1)!;
    expect(upstream.path).toBe("/v1beta/models/gemini-2.5-flash:generateContent");
    expect(upstream.body).toEqual(JSON.parse(sent.at(-1)!.body));
    expect(upstream.headers["x-goog-api-key"]).toBe("gem-test");
  });

  it("gemini: the stream passes through event by event in Google's framing", async () => {
    mocks.gemini.setScenario({ text: ["one ", "two ", "three"] });
    const stream = await ai.models.generateContentStream({ model: "gemini", contents: "count" });
    const texts: string[] = [];
    for await (const chunk of stream) texts.push(chunk.text ?? "");
    expect(texts).toEqual(["one ", "two ", "three"]);
    expect(mocks.gemini.requests.at(-1)!.query).toEqual({ alt: "sse" });
  });

  it("openai (translated): an upstream cut mid-stream reaches genai as Google's in-stream error, after the text already sent", async () => {
    mocks.openai.setScenario({ content: "one two three four", destroyAfterChunks: 3 });
    const stream = await ai.models.generateContentStream({ model: "gpt-4o", contents: "count" });
    const texts: string[] = [];
    const err = await (async () => {
      for await (const chunk of stream) texts.push(chunk.text ?? "");
    })().catch((e: unknown) => e);
    expect(texts.join("").length).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
    const raw = Buffer.from(await answers.at(-1)!.arrayBuffer()).toString("utf8");
    expect(raw).toMatch(/data: \{"error":\{"code":502,"message":"[^"]+","status":"UNAVAILABLE"\}\}\r\n\r\n: egw-receipt [A-Za-z0-9_-]+\n\n$/);
  });

  it("a prefix-routed name with a slash keeps it: openai/gpt-4o", async () => {
    const res = await ai.models.generateContent({ model: "openai/gpt-4o", contents: "hi" });
    expect(res.text).toBe("hello from openai mock");
    expect(sent.at(-1)!.url).toContain("/v1beta/models/openai/gpt-4o:generateContent");
  });

  it("embedContent: native on gemini, translated on openai, openai-compatible and local, refused on anthropic", async () => {
    const native = await ai.models.embedContent({ model: "gemini", contents: ["a b", "c"], config: { outputDimensionality: 4 } });
    expect(native.embeddings).toHaveLength(2);
    expect(native.embeddings![0]!.values).toHaveLength(4);
    const upstream = mocks.gemini.requests.at(-1)!;
    expect(upstream.rpc).toBe("batchEmbedContents");
    expect((upstream.body as { requests: { model: string }[] }).requests.every((r) => r.model === "models/gemini-2.5-flash")).toBe(true);

    for (const model of ["gpt-4o", "compat", "local"]) {
      const res = await ai.models.embedContent({ model, contents: ["a b", "c"] });
      expect(res.embeddings).toHaveLength(2);
      expect(res.embeddings![0]!.values!.length).toBeGreaterThan(0);
    }
    const err = await ai.models.embedContent({ model: "claude", contents: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).message).toContain("does not offer embeddings");
  });

  it("embedContent with an image part: passed to Gemini as is, refused where it would be translated", async () => {
    const contents = [{ parts: [{ inlineData: { mimeType: "image/png", data: "iVBORw0KGgo=" } }] }];
    const native = await ai.models.embedContent({ model: "gemini", contents });
    expect(native.embeddings).toHaveLength(1);
    expect(JSON.stringify(mocks.gemini.requests.at(-1)!.body)).toContain("iVBORw0KGgo=");
    const err = await ai.models.embedContent({ model: "gpt-4o", contents }).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).message).toContain("only text can be embedded");
  });

  it("models.list and models.get in Google's Model shape", async () => {
    const names: string[] = [];
    for await (const m of await ai.models.list()) names.push(m.name!);
    expect(names.sort()).toEqual(["models/claude", "models/compat", "models/gemini", "models/gpt-4o", "models/local"]);
    const one = await ai.models.get({ model: "claude" });
    expect(one.name).toBe("models/claude");
    const err = await ai.models.get({ model: "nope" }).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(404);
  });
});

describe("function calling round trip", () => {
  const config = { tools: [{ functionDeclarations: [WEATHER] }], toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.AUTO } } };

  async function roundTrip(model: string) {
    const first = await ai.models.generateContent({ model, contents: "weather in Oslo?", config });
    const call = first.functionCalls![0]!;
    expect(call.name).toBe("get_weather");
    const second = await ai.models.generateContent({
      model,
      contents: [
        { role: "user", parts: [{ text: "weather in Oslo?" }] },
        { role: "model", parts: [{ functionCall: call }] },
        { role: "user", parts: [{ functionResponse: { name: "get_weather", response: { forecast: "sunny" } } }] },
      ],
      config,
    });
    return { call, second };
  }

  it("gemini (native): functionDeclarations as sent, functionCall back", async () => {
    mocks.gemini.setScenario([{ functionCalls: [{ name: "get_weather", args: { city: "Oslo" } }] }, { text: "sunny" }]);
    const { call, second } = await roundTrip("gemini");
    expect(call.args).toEqual({ city: "Oslo" });
    expect(second.text).toBe("sunny");
    const body = mocks.gemini.requests.at(-1)!.body as { tools: unknown; contents: { parts: Record<string, unknown>[] }[] };
    expect(body.tools).toEqual([{ functionDeclarations: [WEATHER] }]);
    expect(body.contents[2]!.parts[0]!.functionResponse).toEqual({ name: "get_weather", response: { forecast: "sunny" } });
  });

  it("openai (translated): tools out as JSON Schema, tool_calls back as functionCall, functionResponse as a tool message", async () => {
    mocks.openai.setScenario({ toolCalls: [{ name: "get_weather", arguments: '{"city":"Oslo"}', id: "call_abc" }] });
    const first = await ai.models.generateContent({ model: "gpt-4o", contents: "weather in Oslo?", config });
    const call = first.functionCalls![0]!;
    expect(call).toEqual({ id: "call_abc", name: "get_weather", args: { city: "Oslo" } });
    const out = mocks.openai.requests.at(-1)!.body as { tools: { function: { parameters: unknown } }[]; tool_choice: unknown };
    expect(out.tools[0]!.function.parameters).toEqual({ type: "object", properties: { city: { type: "string" } }, required: ["city"] });
    expect(out.tool_choice).toBe("auto");
    mocks.openai.setScenario({ content: "sunny in Oslo" });
    const second = await ai.models.generateContent({
      model: "gpt-4o",
      contents: [
        { role: "user", parts: [{ text: "weather in Oslo?" }] },
        { role: "model", parts: [{ functionCall: call }] },
        { role: "user", parts: [{ functionResponse: { name: "get_weather", response: { forecast: "sunny" } } }] },
      ],
      config,
    });
    expect(second.text).toBe("sunny in Oslo");
    const messages = (mocks.openai.requests.at(-1)!.body as { messages: Record<string, unknown>[] }).messages;
    expect(messages[1]).toMatchObject({ role: "assistant", tool_calls: [{ id: "call_abc", function: { name: "get_weather" } }] });
    expect(messages[2]).toEqual({ role: "tool", tool_call_id: "call_abc", content: '{"forecast":"sunny"}' });
  });

  it("anthropic (translated): tool_use back as functionCall, functionResponse as tool_result", async () => {
    mocks.anthropic.enqueue({ content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }] });
    const { call } = await roundTrip("claude");
    expect(call).toEqual({ id: "toolu_1", name: "get_weather", args: { city: "Oslo" } });
    const last = mocks.anthropic.requests.at(-1)!.body as { messages: { role: string; content: { type: string; tool_use_id?: string }[] }[] };
    expect(last.messages.at(-1)!.content[0]).toMatchObject({ type: "tool_result", tool_use_id: "toolu_1" });
  });

  it("local (translated): a call built from the schema, then the tool result echoed", async () => {
    const { call, second } = await roundTrip("local");
    expect(call.name).toBe("get_weather");
    expect(typeof call.args!.city).toBe("string");
    expect(second.text).toContain("the tool returned");
  });

  it("a streamed function call on a translated route comes whole in the last event", async () => {
    mocks.openai.setScenario({ toolCalls: [{ name: "get_weather", arguments: '{"city":"Oslo"}', id: "call_s" }] });
    const stream = await ai.models.generateContentStream({ model: "gpt-4o", contents: "weather?", config });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)!.functionCalls).toEqual([{ id: "call_s", name: "get_weather", args: { city: "Oslo" } }]);
    expect(chunks.at(-1)!.candidates![0]!.finishReason).toBe("STOP");
  });
});

describe("structured output", () => {
  const schema = { type: Type.OBJECT, properties: { answer: { type: Type.STRING }, score: { type: Type.NUMBER, nullable: true } }, required: ["answer"] };

  it("gemini (native): responseSchema reaches Google as sent", async () => {
    mocks.gemini.setScenario({ text: '{"answer":"yes"}' });
    const res = await ai.models.generateContent({ model: "gemini", contents: "ok?", config: { responseMimeType: "application/json", responseSchema: schema } });
    expect(JSON.parse(res.text!)).toEqual({ answer: "yes" });
    expect((mocks.gemini.requests.at(-1)!.body as { generationConfig: unknown }).generationConfig).toEqual({ responseMimeType: "application/json", responseSchema: schema });
  });

  it("openai (translated): responseSchema becomes a json_schema response_format", async () => {
    mocks.openai.setScenario({ content: '{"answer":"yes"}' });
    const res = await ai.models.generateContent({ model: "gpt-4o", contents: "ok?", config: { responseMimeType: "application/json", responseSchema: schema } });
    expect(JSON.parse(res.text!)).toEqual({ answer: "yes" });
    expect((mocks.openai.requests.at(-1)!.body as { response_format: unknown }).response_format).toEqual({
      type: "json_schema",
      json_schema: {
        name: "response",
        schema: { type: "object", properties: { answer: { type: "string" }, score: { type: ["number", "null"] } }, required: ["answer"] },
      },
    });
  });

  it("local (translated): responseJsonSchema answers with an object of that schema", async () => {
    const res = await ai.models.generateContent({
      model: "local",
      contents: "ok?",
      config: { responseMimeType: "application/json", responseJsonSchema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] } },
    });
    expect(typeof (JSON.parse(res.text!) as { answer: unknown }).answer).toBe("string");
  });
});
