/**
 * /v1/responses on routes whose provider does not speak Responses
 * (anthropic, gemini, local, openai-compatible without the capability):
 * translated to the canonical request and back, with the official SDK as
 * the client and byte-accurate mocks as upstreams.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayApp, post, receiptOf, TOKEN } from "../../../helpers/gateway-app.js";
import { MODELS, startResponsesFixture, verifiedStream, type ResponsesFixture } from "./responses-fixture.js";

let f: ResponsesFixture;
beforeAll(async () => {
  f = await startResponsesFixture();
});
afterAll(() => f?.close());

const TRANSLATED = [MODELS.anthropic, MODELS.gemini, MODELS.local, MODELS.compat] as const;
const weatherTool: OpenAI.Responses.FunctionTool = {
  type: "function",
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  strict: true,
};

describe("every translated provider kind answers", () => {
  for (const model of TRANSLATED) {
    it(`${model}: non-streamed Response`, async () => {
      const r = await f.openai.responses.create({ model, instructions: "be brief", input: "say hello", metadata: { k: "v" } });
      expect(r.object).toBe("response");
      expect(r.status).toBe("completed");
      expect(r.output[0]).toMatchObject({ type: "message", role: "assistant", status: "completed" });
      expect(r.output_text.length).toBeGreaterThan(0);
      expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + r.usage!.output_tokens);
      expect(r.usage!.total_tokens).toBeGreaterThan(0);
      expect(r).toMatchObject({ model, instructions: "be brief", metadata: { k: "v" }, store: false, previous_response_id: null });
      expect(r.id).toMatch(/^resp_[0-9a-f]{24}$/);
    });

    it(`${model}: streamed, through create({stream:true}) and the responses.stream() helper`, async () => {
      const stream = await f.openai.responses.create({ model, input: "say hello", stream: true });
      let text = "";
      const seq: number[] = [];
      const types: string[] = [];
      for await (const e of stream) {
        seq.push(e.sequence_number);
        types.push(e.type);
        if (e.type === "response.output_text.delta") text += e.delta;
      }
      expect(seq).toEqual(seq.map((_, i) => i));
      expect(types.slice(0, 4)).toEqual(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]);
      expect(types.slice(-4)).toEqual(["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]);
      expect(text.length).toBeGreaterThan(0);
      const final = await f.openai.responses.stream({ model, input: "say hello" }).finalResponse();
      expect(final.output_text.length).toBeGreaterThan(0);
      expect(final.status).toBe("completed");
      expect(final.usage!.total_tokens).toBeGreaterThan(0);
    });
  }

  it("the receipt of a translated stream covers the exact bytes, and names the provider", async () => {
    const body = JSON.stringify({ model: MODELS.anthropic, input: "hi", stream: true });
    const { claims, events } = await verifiedStream(f.g, await post(f.g, "/v1/responses", body), body);
    expect(claims).toMatchObject({ surface: "responses", provider: "anthropic", stream: true, status: 200 });
    expect(events.at(-1)!.type).toBe("response.completed");
  });

  it("openai-compatible: /chat/completions gets only the allowlisted canonical fields", async () => {
    await f.openai.responses.create({
      model: MODELS.compat,
      instructions: "sys",
      input: [{ type: "reasoning", id: "rs_1", summary: [] } as never, { role: "user", content: "hi" }],
      max_output_tokens: 50,
      temperature: 0.5,
      metadata: { a: "b" },
      reasoning: { effort: "high" },
      include: ["reasoning.encrypted_content"],
      truncation: "auto",
    });
    const sent = f.mocks.compat.requests.at(-1)!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers.authorization).toBe("Bearer sk-compat-upstream");
    // The reasoning item is dropped; metadata, reasoning, include, truncation are not sent.
    expect(sent.body).toEqual({
      model: "llama-3",
      messages: [
        { role: "system", content: "sys" },
        { role: "user", content: "hi" },
      ],
      max_tokens: 50,
      temperature: 0.5,
    });
  });
});

describe("tools, structured output, images, limits", () => {
  it("anthropic: a function call and its output round trip", async () => {
    f.mocks.anthropic.enqueue({ content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }], stopReason: "tool_use" });
    const first = await f.openai.responses.create({ model: MODELS.anthropic, input: "weather in Paris?", tools: [weatherTool], tool_choice: "auto" });
    const call = first.output.find((o) => o.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: "function_call", call_id: "toolu_1", name: "get_weather", status: "completed" });
    expect(JSON.parse(call.arguments)).toEqual({ city: "Paris" });
    const sentTools = f.mocks.anthropic.requests.at(-1)!.body.tools;
    expect(sentTools[0]).toMatchObject({ name: "get_weather", input_schema: weatherTool.parameters });
    const second = await f.openai.responses.create({
      model: MODELS.anthropic,
      tools: [weatherTool],
      input: [{ role: "user", content: "weather in Paris?" }, call, { type: "function_call_output", call_id: call.call_id, output: '{"temp_c":21}' }],
    });
    expect(second.output_text.length).toBeGreaterThan(0);
    const messages = f.mocks.anthropic.requests.at(-1)!.body.messages;
    expect(messages[1]).toMatchObject({ role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] });
    expect(messages[2]).toMatchObject({ role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1" }] });
  });

  it("local: streamed function-call arguments reassemble in the SDK's stream helper", async () => {
    const deltas: string[] = [];
    const stream = f.openai.responses.stream({ model: MODELS.local, input: "weather?", tools: [weatherTool] });
    stream.on("response.function_call_arguments.delta", (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    const call = final.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.type).toBe("function_call");
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join("")).toBe(call.arguments);
    expect(JSON.parse(call.arguments)).toHaveProperty("city");
  });

  it("gemini: a streamed function call (function_call_arguments.delta/.done, output_item.done)", async () => {
    f.mocks.gemini.setScenario({ functionCalls: [{ name: "get_weather", args: { city: "Rome" } }] });
    try {
      const stream = await f.openai.responses.create({ model: MODELS.gemini, input: "weather?", tools: [weatherTool], stream: true });
      const events: OpenAI.Responses.ResponseStreamEvent[] = [];
      for await (const e of stream) events.push(e);
      const done = events.find((e) => e.type === "response.function_call_arguments.done") as OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent;
      expect(JSON.parse(done.arguments)).toEqual({ city: "Rome" });
      const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
      expect(completed.response.output.find((o) => o.type === "function_call")).toMatchObject({ name: "get_weather", status: "completed" });
    } finally {
      f.mocks.gemini.setScenario({});
    }
  });

  it("responses.parse with text.format json_schema (local builds the object from the schema; anthropic answers JSON)", async () => {
    const format = {
      type: "json_schema" as const,
      name: "city",
      strict: true,
      schema: { type: "object", properties: { city: { type: "string" }, population: { type: "integer" } }, required: ["city", "population"], additionalProperties: false },
    };
    const local = await f.openai.responses.parse({ model: MODELS.local, input: "a city", text: { format } });
    expect(local.output_parsed).toMatchObject({ city: expect.any(String), population: expect.any(Number) });
    f.mocks.anthropic.enqueue({ content: [{ type: "text", text: '{"city":"Oslo","population":709000}' }] });
    const claude = await f.openai.responses.parse({ model: MODELS.anthropic, input: "a city", text: { format } });
    expect(claude.output_parsed).toEqual({ city: "Oslo", population: 709000 });
    // Anthropic has no JSON mode: the schema went as a system instruction.
    expect(JSON.stringify(f.mocks.anthropic.requests.at(-1)!.body.system)).toContain("population");
    const compat = await f.openai.responses.create({ model: MODELS.compat, input: "x", text: { format: { type: "json_object" } } });
    expect(compat.status).toBe("completed");
    expect((f.mocks.compat.requests.at(-1)!.body as { response_format: unknown }).response_format).toEqual({ type: "json_object" });
  });

  it("images as input reach Gemini as inline data", async () => {
    const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    await f.openai.responses.create({
      model: MODELS.gemini,
      input: [
        {
          role: "user",
          content: [
            { type: "input_text", text: "what is this?" },
            { type: "input_image", image_url: `data:image/png;base64,${png}`, detail: "auto" },
          ],
        },
      ],
    });
    const parts = (f.mocks.gemini.requests.at(-1)!.body as { contents: { parts: Record<string, unknown>[] }[] }).contents[0]!.parts;
    expect(parts).toEqual([{ text: "what is this?" }, { inlineData: { mimeType: "image/png", data: png } }]);
  });

  it("max_output_tokens cut: status incomplete, streamed as response.incomplete", async () => {
    const r = await f.openai.responses.create({ model: MODELS.local, input: "one two three four five six", max_output_tokens: 2 });
    expect(r).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" }, max_output_tokens: 2 });
    const stream = await f.openai.responses.create({ model: MODELS.local, input: "one two three four five six", max_output_tokens: 2, stream: true });
    let lastType = "";
    for await (const e of stream) lastType = e.type;
    expect(lastType).toBe("response.incomplete");
  });
});

describe("refusals, in OpenAI's error shape", () => {
  async function refused(body: unknown, status = 400): Promise<{ error: { message: string; type: string; code: string; param: string | null } }> {
    const res = await post(f.g, "/v1/responses", body);
    expect(res.status).toBe(status);
    return (await res.json()) as never;
  }

  for (const model of TRANSLATED) {
    it(`${model}: previous_response_id → 400 unsupported_parameter, saying the gateway is stateless; nothing sent`, async () => {
      const sent = () => f.mocks.anthropic.requests.length + f.mocks.gemini.requests.length + f.mocks.compat.requests.length;
      const before = sent();
      const err = await f.openai.responses.create({ model, input: "x", previous_response_id: "resp_abc" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e.code).toBe("unsupported_parameter");
      expect(e.param).toBe("previous_response_id");
      expect(e.message).toContain("stateless");
      expect(sent()).toBe(before);
    });
  }

  it("store: true, conversation, background, item_reference: unsupported_parameter", async () => {
    expect((await refused({ model: MODELS.gemini, input: "x", store: true })).error).toMatchObject({ code: "unsupported_parameter", param: "store" });
    expect((await refused({ model: MODELS.gemini, input: "x", conversation: "conv_1" })).error).toMatchObject({ code: "unsupported_parameter", param: "conversation" });
    expect((await refused({ model: MODELS.gemini, input: "x", background: true })).error).toMatchObject({ code: "unsupported_parameter", param: "background" });
    expect((await refused({ model: MODELS.gemini, input: [{ type: "item_reference", id: "msg_1" }] })).error).toMatchObject({ code: "unsupported_parameter", param: "input[0]" });
    // store: false is what a stateless route does anyway.
    expect((await post(f.g, "/v1/responses", { model: MODELS.local, input: "x", store: false })).status).toBe(200);
  });

  it("unknown input item types and content parts: typed 400 naming the field, never its value", async () => {
    const a = await refused({ model: MODELS.local, input: [{ type: "web_search_call_secret_thing", id: "x" }] });
    expect(a.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request", param: "input[0].type" });
    expect(a.error.message).not.toContain("secret_thing");
    const b = await refused({ model: MODELS.local, input: [{ role: "user", content: [{ type: "input_video", url: "x" }] }] });
    expect(b.error.param).toBe("input[0].content[0].type");
    const c = await refused({ model: MODELS.local, input: [{ role: "user", content: [{ type: "input_file", file_id: "file_1" }] }] });
    expect(c.error.code).toBe("unsupported_capability");
    const d = await refused({ model: MODELS.local, input: "x", tools: [{ type: "web_search" }] });
    expect(d.error).toMatchObject({ code: "unsupported_capability", param: "tools[0].type" });
  });

  it("malformed bodies: not JSON, input of the wrong type, stream not a boolean, no model, bad text.format", async () => {
    const res = await f.g.app.request("/v1/responses", { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: "{not json" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error" } });
    expect((await refused({ model: MODELS.local, input: 42 })).error.param).toBe("input");
    expect((await refused({ model: MODELS.local, input: "x", stream: "yes" })).error.param).toBe("stream");
    expect((await refused({ input: "x" })).error.code).toBe("invalid_request");
    expect((await refused({ model: MODELS.local, input: "x", text: { format: { type: "json_schema" } } })).error.param).toBe("text.format.name");
    expect((await refused({ model: MODELS.local, input: [] })).error.param).toBe("input");
    expect((await refused({ model: MODELS.local, input: "x", max_output_tokens: 0 })).error.param).toBe("max_output_tokens");
  });

  it("an oversized body: 413 in OpenAI's shape, signed", async () => {
    const small = await gatewayApp({ config: { limits: { maxBodyBytes: 1024 } } });
    const body = JSON.stringify({ model: "local", input: "x".repeat(4096) });
    const res = await post(small, "/v1/responses", body);
    expect(res.status).toBe(413);
    const { claims } = await receiptOf(small, res);
    expect(claims.status).toBe(413);
  });

  it("upstream 4xx: the provider's message in the SDK's own error; 5xx: 502", async () => {
    f.mocks.anthropic.enqueue({ status: 400, errorMessage: "messages: text content blocks must be non-empty" });
    const bad = await f.openai.responses.create({ model: MODELS.anthropic, input: "x" }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as Error).message).toContain("Provider says: messages: text content blocks must be non-empty");
    f.mocks.anthropic.enqueue({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
    const down = await f.openai.responses.create({ model: MODELS.anthropic, input: "x" }).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(OpenAI.InternalServerError);
    expect((down as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
  });

  it("mid-stream upstream failure: error event (the SDK throws), response.failed last, receipt still signed", async () => {
    f.mocks.compat.queueScenarios({ destroyAfterChunks: 3 });
    const body = JSON.stringify({ model: MODELS.compat, input: "x", stream: true });
    const { events, claims } = await verifiedStream(f.g, await post(f.g, "/v1/responses", body), body);
    expect(claims.status).toBe(200);
    expect(events.map((e) => e.type).slice(-2)).toEqual(["error", "response.failed"]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.at(-2)).toMatchObject({ code: "upstream_error", error: { type: "api_error", code: "upstream_error" } });
    expect(events.at(-1)).toMatchObject({ response: { status: "failed", error: { code: "upstream_error" } } });

    f.mocks.compat.queueScenarios({ destroyAfterChunks: 3 });
    const stream = await f.openai.responses.create({ model: MODELS.compat, input: "x", stream: true });
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
  });
});

describe("fallbacks across the two paths, and what is logged", () => {
  it("a native route that keeps failing falls back to a translated one, streamed and not; the receipt names who answered", async () => {
    const g = await startResponsesFixture({
      models: {
        local: { provider: "local", model: "local" },
        gpt: { provider: "openai", model: "gpt-4.1", fallbacks: ["claude"] },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
      },
    });
    try {
      g.mocks.responses.enqueue(...Array.from({ length: 8 }, () => ({ status: 503 })));
      const body = JSON.stringify({ model: "gpt", input: "fall back please" });
      const res = await post(g.g, "/v1/responses", body);
      const { claims, body: bytes } = await receiptOf(g.g, res, body);
      expect(claims).toMatchObject({ status: 200, provider: "anthropic", model: "gpt" });
      expect(JSON.parse(Buffer.from(bytes).toString("utf8"))).toMatchObject({ object: "response", status: "completed", model: "gpt" });
      const streamBody = JSON.stringify({ model: "gpt", input: "fall back please", stream: true });
      const streamed = await verifiedStream(g.g, await post(g.g, "/v1/responses", streamBody), streamBody);
      expect(streamed.claims.provider).toBe("anthropic");
      expect(streamed.events.at(-1)!.type).toBe("response.completed");
    } finally {
      await g.close();
    }
  });

  it("logs carry sizes, codes and names, never the prompt, the answer or a refused field's value", async () => {
    const secret = "zebra-prompt-7731";
    await f.openai.responses.create({ model: MODELS.anthropic, input: secret });
    await post(f.g, "/v1/responses", { model: MODELS.local, input: [{ type: `unknown-${secret}` }] });
    await post(f.g, "/v1/responses", { model: MODELS.gemini, input: secret, previous_response_id: secret });
    const logs = f.g.logs.join("\n");
    expect(logs).toContain('"surface":"responses"');
    expect(logs).not.toContain("zebra");
    expect(logs).not.toContain("Hello from the mock");
  });
});
