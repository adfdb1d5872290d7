/**
 * The mock server is only useful if it speaks OpenAI's wire format
 * faithfully: the official `openai` SDK, which parses real OpenAI traffic,
 * must read it without complaint — non-streamed, streamed (with usage and
 * tool-call reassembly), embeddings in base64 (the SDK's default), images
 * and errors. Also pins the raw SSE bytes.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MOCK_DEFAULT_CONTENT, startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";

let mock: MockOpenAI;
let client: OpenAI;
beforeAll(async () => {
  mock = await startMockOpenAI();
  client = new OpenAI({ baseURL: mock.url, apiKey: "sk-sdk", maxRetries: 0 });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => mock.reset());

describe("mock-openai speaks OpenAI to the official SDK", () => {
  it("chat completion", async () => {
    const completion = await client.chat.completions.create({ model: "gpt-x", messages: [{ role: "user", content: "hello world" }] });
    expect(completion.choices[0]!.message.content).toBe(MOCK_DEFAULT_CONTENT);
    expect(completion.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
    expect(mock.requests[0]!.headers.authorization).toBe("Bearer sk-sdk");
    expect(mock.requests[0]!.path).toBe("/v1/chat/completions");
  });

  it("streamed completion with usage", async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-x",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(MOCK_DEFAULT_CONTENT);
    expect(usage).toMatchObject({ completion_tokens: 5 });
  });

  it("streamed tool calls reassemble in the SDK's stream helper", async () => {
    const args = '{"location":"Paris, France","unit":"celsius"}';
    mock.setScenario({
      toolCalls: [
        { name: "get_weather", arguments: args },
        { name: "get_time", arguments: "{}" },
      ],
    });
    const final = await client.chat.completions
      .stream({
        model: "gpt-x",
        messages: [{ role: "user", content: "weather?" }],
        tools: [
          { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } },
          { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
        ],
      })
      .finalChatCompletion();
    const calls = final.choices[0]!.message.tool_calls!;
    expect(calls.map((c) => (c.type === "function" ? [c.function.name, c.function.arguments] : []))).toEqual([
      ["get_weather", args],
      ["get_time", "{}"],
    ]);
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("embeddings (the SDK asks for base64 and decodes it)", async () => {
    const result = await client.embeddings.create({ model: "emb", input: ["a", "b c"], dimensions: 4 });
    expect((mock.requests[0]!.body as { encoding_format?: string }).encoding_format).toBe("base64");
    expect(result.data[1]!.embedding).toEqual([2 / 2, 2 / 3, 2 / 4, 2 / 5].map(Math.fround));
  });

  it("images", async () => {
    const result = await client.images.generate({ model: "img", prompt: "a cat", response_format: "b64_json", n: 2 });
    expect(result.data).toHaveLength(2);
    expect(Buffer.from(result.data![0]!.b64_json!, "base64").subarray(1, 4).toString("ascii")).toBe("PNG");
  });

  it("errors: status, OpenAI error body, retry-after", async () => {
    mock.setScenario({ status: 429, retryAfter: "2" });
    const err = await client.chat.completions.create({ model: "gpt-x", messages: [{ role: "user", content: "secret words" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.code).toBe("rate_limit_exceeded");
    expect(e.headers.get("retry-after")).toBe("2");
    // Like real providers, the mock echoes the input in its error message.
    expect(e.message).toContain("secret words");
  });

  it("raw SSE bytes: one data event per chunk, usage: null while include_usage, [DONE] last", async () => {
    const response = await fetch(`${mock.url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }], stream: true, stream_options: { include_usage: true } }),
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const text = await response.text();
    expect(text.endsWith("\n\ndata: [DONE]\n\n")).toBe(true);
    const events = text.split("\n\n").filter((e) => e !== "");
    expect(events.every((e) => e.startsWith("data: ") && !e.includes("\n"))).toBe(true);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { choices: unknown[]; usage: unknown });
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1)).toBe(true);
    expect(chunks[chunks.length - 1]!.choices).toEqual([]);
  });

  it("unknown paths get a 404 in OpenAI's error shape", async () => {
    const response = await fetch(`${mock.url}/nope`, { method: "POST", body: "{}" });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { type: "invalid_request_error" } });
  });
});
