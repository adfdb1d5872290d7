/**
 * The other clients that speak Responses, unchanged, against the gateway
 * app: the Vercel AI SDK's default `openai(model)` provider (which is the
 * Responses API) and LangChain's ChatOpenAI with `useResponsesApi: true`,
 * over a native route (OpenAI mock), a translated one (Anthropic mock) and
 * the built-in model.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOKEN } from "../../../helpers/gateway-app.js";
import { MOCK_RESPONSES_TEXT } from "../../../helpers/mock-openai-responses.js";
import { MODELS, startResponsesFixture, type ResponsesFixture } from "./responses-fixture.js";

let f: ResponsesFixture;
beforeAll(async () => {
  f = await startResponsesFixture();
});
afterAll(() => f?.close());

const aiProvider = () => createOpenAI({ baseURL: "http://gateway.test/v1", apiKey: TOKEN, fetch: f.fetch });
const langchain = (model: string) =>
  new ChatOpenAI({ model, apiKey: TOKEN, useResponsesApi: true, maxRetries: 0, configuration: { baseURL: "http://gateway.test/v1", fetch: f.fetch } });

describe("ai + @ai-sdk/openai: openai(model) is the Responses API", () => {
  for (const [model, expected] of [
    [MODELS.openai, MOCK_RESPONSES_TEXT],
    [MODELS.anthropic, "Hello from the mock."],
    [MODELS.local, "you said: hello ai sdk"],
  ] as const) {
    it(`${model}: generateText and streamText`, async () => {
      const before = f.g.logs.filter((l) => l.includes('"surface":"responses"')).length;
      const { text, usage, finishReason } = await generateText({ model: aiProvider()(model), prompt: "hello ai sdk" });
      expect(text).toContain(expected);
      expect(finishReason).toBe("stop");
      expect(usage.totalTokens).toBeGreaterThan(0);
      const result = streamText({ model: aiProvider()(model), prompt: "hello ai sdk" });
      let streamed = "";
      for await (const piece of result.textStream) streamed += piece;
      expect(streamed).toContain(expected);
      expect(await result.finishReason).toBe("stop");
      expect((await result.usage).totalTokens).toBeGreaterThan(0);
      // Both went through /v1/responses.
      expect(f.g.logs.filter((l) => l.includes('"surface":"responses"')).length).toBe(before + 2);
    });
  }

  it("local: a tool loop (the model calls the tool, the SDK sends its output back) with store: false", async () => {
    const calls: unknown[] = [];
    const { text, steps } = await generateText({
      model: aiProvider()(MODELS.local),
      prompt: "weather in Paris?",
      tools: {
        get_weather: tool({
          description: "weather",
          inputSchema: jsonSchema<{ city: string }>({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
          execute: async (input) => {
            calls.push(input);
            return { temp_c: 21 };
          },
        }),
      },
      stopWhen: stepCountIs(2),
      // Translated routes are stateless: item references to stored items would be refused.
      providerOptions: { openai: { store: false } },
    });
    expect(calls).toHaveLength(1);
    expect(steps).toHaveLength(2);
    expect(text).toContain("the tool returned");
  });

  it("a mid-stream failure reaches streamText as an error", async () => {
    f.mocks.responses.enqueue({ cutAfterEvents: 4 });
    const errors: unknown[] = [];
    const result = streamText({ model: aiProvider()(MODELS.openai), prompt: "x", onError: ({ error }) => void errors.push(error) });
    for await (const _ of result.textStream);
    expect(errors.length).toBeGreaterThan(0);
    expect(JSON.stringify(errors[0])).toContain("upstream_error");
  });
});

describe("@langchain/openai ChatOpenAI with useResponsesApi", () => {
  for (const [model, expected] of [
    [MODELS.openai, MOCK_RESPONSES_TEXT],
    [MODELS.gemini, "Hello from mock Gemini."],
    [MODELS.local, "you said: hello langchain"],
  ] as const) {
    it(`${model}: invoke and stream`, async () => {
      const answer = await langchain(model).invoke("hello langchain");
      expect(answer.text).toContain(expected);
      expect(answer.usage_metadata?.total_tokens).toBeGreaterThan(0);
      let streamed = "";
      for await (const chunk of await langchain(model).stream("hello langchain")) streamed += chunk.text;
      expect(streamed).toContain(expected);
    });
  }

  it("native: the request reached OpenAI as a Responses request", async () => {
    await langchain(MODELS.openai).invoke("hello langchain");
    const sent = f.mocks.responses.requests.at(-1)!;
    expect(sent.path).toBe("/v1/responses");
    expect((sent.body as { model: string; input: unknown[] }).model).toBe("gpt-4.1");
  });
});
