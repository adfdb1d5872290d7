import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { generateText, jsonSchema, streamText, tool } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";
import { startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";

/** The Vercel AI SDK's Google provider pointed at the gateway's /v1beta: native on Gemini, translated on OpenAI and local. */
let h: Harness;
let gemini: MockGemini;
let openai: MockOpenAI;
let google: ReturnType<typeof createGoogleGenerativeAI>;

beforeAll(async () => {
  gemini = await startMockGemini({ apiKey: "gem-test" });
  openai = await startMockOpenAI({ scenario: { content: "hello from openai mock" } });
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: openai.url, secret: "OPENAI_API_KEY" },
        { name: "gemini", kind: "gemini", baseUrl: gemini.url, secret: "GEMINI_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        "gpt-4o": { provider: "openai", model: "gpt-4o" },
        gemini: { provider: "gemini", model: "gemini-2.5-flash" },
      },
      egressAllowlist: [new URL(openai.url).host, new URL(gemini.url).host],
      clients: [{ name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
    }),
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-test"],
      ["GEMINI_API_KEY", "gem-test"],
    ]),
  });
  google = createGoogleGenerativeAI({ baseURL: `${h.baseURL.replace(/\/v1$/, "")}/v1beta`, apiKey: CLIENT_TOKEN, fetch: h.fetch });
});
afterAll(async () => {
  await h?.close();
  await gemini?.close();
  await openai?.close();
});

describe("ai + @ai-sdk/google through the gateway", () => {
  for (const model of ["gemini", "gpt-4o", "local"]) {
    it(`${model}: generateText`, async () => {
      const result = await generateText({ model: google(model), system: "be brief", prompt: "say hello", maxRetries: 0 });
      expect(result.text.length).toBeGreaterThan(0);
      expect(result.finishReason).toBe("stop");
      expect(result.usage.totalTokens).toBeGreaterThan(0);
    });

    it(`${model}: streamText`, async () => {
      const result = streamText({ model: google(model), prompt: "say hello", maxRetries: 0 });
      let text = "";
      for await (const delta of result.textStream) text += delta;
      expect(text.length).toBeGreaterThan(0);
      expect(await result.finishReason).toBe("stop");
      expect((await result.usage).totalTokens).toBeGreaterThan(0);
    });
  }

  it("gpt-4o: a tool call comes back to the AI SDK as a tool call", async () => {
    openai.setScenario({ toolCalls: [{ name: "get_weather", arguments: '{"city":"Oslo"}', id: "call_ai" }] });
    const result = await generateText({
      model: google("gpt-4o"),
      prompt: "weather?",
      tools: {
        get_weather: tool({ description: "weather", inputSchema: jsonSchema<{ city: string }>({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }) }),
      },
      maxRetries: 0,
    });
    expect(result.toolCalls).toHaveLength(1);
    expect(result.toolCalls[0]).toMatchObject({ toolName: "get_weather", input: { city: "Oslo" } });
    expect(result.finishReason).toBe("tool-calls");
    openai.setScenario({ content: "hello from openai mock" });
  });
});
