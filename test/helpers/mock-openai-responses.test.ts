/**
 * The Responses mock is useful only if it speaks OpenAI's wire format: the
 * official `openai` SDK, which parses real OpenAI traffic (and rebuilds a
 * Response from the stream's events in its own accumulator), must read it
 * without complaint, streamed and not, stored responses and errors too.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MOCK_RESPONSES_TEXT, startMockOpenAIResponses, type MockOpenAIResponses } from "./mock-openai-responses.js";

let mock: MockOpenAIResponses;
let client: OpenAI;
beforeAll(async () => {
  mock = await startMockOpenAIResponses();
  client = new OpenAI({ baseURL: mock.url, apiKey: "sk-direct", maxRetries: 0 });
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

describe("mock-openai-responses speaks Responses to the official SDK", () => {
  it("create, streamed and not; the stream helper rebuilds the same Response", async () => {
    const r = await client.responses.create({ model: "gpt-x", input: "hi" });
    expect(r.output_text).toBe(MOCK_RESPONSES_TEXT);
    const s = await client.responses.stream({ model: "gpt-x", input: "hi" }).finalResponse();
    expect(s.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect(s.usage).toEqual(r.usage);
    expect(mock.requests[0]!.headers.authorization).toBe("Bearer sk-direct");
  });

  it("function calls, streamed: arguments reassemble", async () => {
    mock.enqueue({ toolCalls: [{ name: "w", arguments: '{"city":"Paris, France"}' }] });
    const s = await client.responses.stream({ model: "gpt-x", input: "hi" }).finalResponse();
    expect(s.output[0]).toMatchObject({ type: "function_call", name: "w", arguments: '{"city":"Paris, France"}' });
  });

  it("raw bytes: event and data lines, sequence numbers from 0, no [DONE]", async () => {
    const res = await fetch(`${mock.url}/responses`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", input: "x", stream: true }),
    });
    const text = await res.text();
    const events = text.split("\n\n").filter((e) => e !== "");
    expect(events.every((e) => /^event: [a-z._]+\ndata: \{[^\n]*\}$/.test(e))).toBe(true);
    expect(events.map((e) => (JSON.parse(e.split("\ndata: ")[1]!) as { sequence_number: number }).sequence_number)).toEqual(events.map((_, i) => i));
    expect(text).not.toContain("[DONE]");
  });

  it("stored: retrieve, input items, delete, previous_response_id; errors in OpenAI's shape", async () => {
    const r = await client.responses.create({ model: "gpt-x", input: "keep" });
    expect((await client.responses.retrieve(r.id)).id).toBe(r.id);
    expect((await client.responses.inputItems.list(r.id)).data[0]).toMatchObject({ type: "message", role: "user" });
    const next = await client.responses.create({ model: "gpt-x", input: "more", previous_response_id: r.id });
    expect(next.previous_response_id).toBe(r.id);
    await client.responses.delete(r.id);
    await expect(client.responses.retrieve(r.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    mock.enqueue({ status: 429 });
    await expect(client.responses.create({ model: "gpt-x", input: "x" })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });
});
