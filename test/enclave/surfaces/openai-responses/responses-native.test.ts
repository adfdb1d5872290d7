/**
 * /v1/responses on OpenAI routes: a pass-through. The official SDK is the
 * client (its fetch is the app), the upstream the Responses mock, which
 * records what reached "OpenAI".
 */
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { gatewayApp, OTHER_TOKEN, post, receiptOf, TOKEN } from "../../../helpers/gateway-app.js";
import { MOCK_RESPONSES_TEXT } from "../../../helpers/mock-openai-responses.js";
import { MODELS, startResponsesFixture, verifiedStream, type ResponsesFixture } from "./responses-fixture.js";

let f: ResponsesFixture;
beforeAll(async () => {
  f = await startResponsesFixture();
});
afterAll(() => f?.close());
beforeEach(() => f.mocks.responses.reset());

const last = () => f.mocks.responses.requests.at(-1)!;

describe("POST /v1/responses on an OpenAI route (native)", () => {
  it("non-streamed: the SDK gets OpenAI's Response; the body reached OpenAI as sent, model replaced", async () => {
    const response = await f.openai.responses.create({
      model: MODELS.openai,
      instructions: "be brief",
      input: [{ role: "user", content: [{ type: "input_text", text: "hello" }] }],
      metadata: { ticket: "42" },
      store: true,
      reasoning: { effort: "low" },
      include: ["reasoning.encrypted_content"],
    });
    expect(response.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect(response.id).toMatch(/^resp_mock_/);
    expect(response.model).toBe("gpt-4.1-2025-04-14");
    const sent = last();
    expect(sent.path).toBe("/v1/responses");
    expect(sent.headers.authorization).toBe("Bearer sk-openai-upstream");
    expect(sent.body).toEqual({
      model: "gpt-4.1",
      instructions: "be brief",
      input: [{ role: "user", content: [{ type: "input_text", text: "hello" }] }],
      metadata: { ticket: "42" },
      store: true,
      reasoning: { effort: "low" },
      include: ["reasoning.encrypted_content"],
      stream: false,
    });
  });

  it("fields the gateway does not know pass through untouched", async () => {
    const body = { model: MODELS.openai, input: "x", some_future_field: { nested: [1, 2, { deep: true }] }, service_tier: "flex", truncation: "auto" };
    const res = await post(f.g, "/v1/responses", body);
    expect(res.status).toBe(200);
    expect(last().body).toEqual({ ...body, model: "gpt-4.1", stream: false });
  });

  it("OpenAI's headers go upstream as the client sent them; the gateway's key wins over a client authorization", async () => {
    const res = await post(
      f.g,
      "/v1/responses",
      { model: MODELS.openai, input: "x" },
      { "openai-beta": "responses=v9", "openai-organization": "org-abc", "openai-project": "proj_xyz" },
    );
    expect(res.status).toBe(200);
    const h = last().headers;
    expect([h["openai-beta"], h["openai-organization"], h["openai-project"]]).toEqual(["responses=v9", "org-abc", "proj_xyz"]);
    expect(h.authorization).toBe("Bearer sk-openai-upstream");
    // Never logged.
    expect(f.g.logs.join("\n")).not.toMatch(/org-abc|proj_xyz|responses=v9/);
  });

  it("a hostile header (oversized, or not printable ASCII) is refused before anything goes upstream", async () => {
    const before = f.mocks.responses.requests.length;
    for (const value of ["x".repeat(513), "caf\u00e9"]) {
      const res = await post(f.g, "/v1/responses", { model: MODELS.openai, input: "x" }, { "openai-organization": value });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", code: "invalid_request", param: "openai-organization" } });
    }
    expect(f.mocks.responses.requests.length).toBe(before);
  });

  it("streamed: events re-framed as received (event + data), receipt over the exact bytes", async () => {
    const body = JSON.stringify({ model: MODELS.openai, input: "stream please", stream: true });
    const res = await post(f.g, "/v1/responses", body);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { text, claims } = await verifiedStream(f.g, res, body);
    expect(claims).toMatchObject({ stream: true, status: 200, provider: "openai", surface: "responses" });
    const events = text.split("\n\n").filter((e) => e !== "");
    expect(events[0]).toMatch(/^event: response.created\ndata: \{"type":"response.created","sequence_number":0,/);
    expect(events.at(-1)).toMatch(/^event: response.completed\ndata: /);
    // The mock's own bytes (its obfuscation field included) reached the client.
    expect(text).toContain('"obfuscation":"mOck"');
    expect((last().body as { stream: boolean }).stream).toBe(true);
  });

  it("streamed through the SDK: create({stream:true}) and the responses.stream() helper", async () => {
    const stream = await f.openai.responses.create({ model: MODELS.openai, input: "hi", stream: true });
    let text = "";
    const types: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    expect(text).toBe(MOCK_RESPONSES_TEXT);
    expect(types[0]).toBe("response.created");
    expect(types.at(-1)).toBe("response.completed");
    const final = await f.openai.responses.stream({ model: MODELS.openai, input: "hi" }).finalResponse();
    expect(final.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect(final.usage?.total_tokens).toBeGreaterThan(0);
  });

  it("an unknown upstream event type passes through (the SDK ignores it as OpenAI's own would be)", async () => {
    f.mocks.responses.enqueue({ extraEvents: [{ event: "response.future_thing", data: '{"type":"response.future_thing","sequence_number":2,"x":1}' }] });
    const res = await post(f.g, "/v1/responses", { model: MODELS.openai, input: "x", stream: true });
    const text = await res.text();
    expect(text).toContain('event: response.future_thing\ndata: {"type":"response.future_thing","sequence_number":2,"x":1}\n\n');
  });

  it("tools and tool outputs round trip (function_call → function_call_output)", async () => {
    f.mocks.responses.enqueue({ toolCalls: [{ name: "get_weather", arguments: '{"city":"Paris"}', callId: "call_1" }] });
    const tools: OpenAI.Responses.Tool[] = [{ type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } }, strict: false }];
    const first = await f.openai.responses.create({ model: MODELS.openai, input: "weather?", tools });
    const call = first.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: "function_call", name: "get_weather", call_id: "call_1" });
    const second = await f.openai.responses.create({
      model: MODELS.openai,
      tools,
      input: ["weather?" as never, call, { type: "function_call_output", call_id: "call_1", output: '{"temp":21}' }].slice(1) as OpenAI.Responses.ResponseInput,
    });
    expect(second.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect((last().body as { input: unknown[] }).input[1]).toEqual({ type: "function_call_output", call_id: "call_1", output: '{"temp":21}' });
  });

  it("previous_response_id and store go to OpenAI, which keeps the state", async () => {
    const first = await f.openai.responses.create({ model: MODELS.openai, input: "remember 7", store: true });
    const second = await f.openai.responses.create({ model: MODELS.openai, input: "what number?", previous_response_id: first.id });
    expect(second.previous_response_id).toBe(first.id);
    const err = await f.openai.responses.create({ model: MODELS.openai, input: "x", previous_response_id: "resp_nope" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain("Previous response with id 'resp_nope' not found.");
  });

  it("an openai-compatible provider with capabilities.responses is native too", async () => {
    const response = await f.openai.responses.create({ model: MODELS.compatNative, input: "hi" });
    expect(response.id).toMatch(/^resp_mock_/);
    expect(last().headers.authorization).toBe("Bearer sk-compatr-upstream");
    expect((last().body as { model: string }).model).toBe("served-model");
  });

  it("the receipt covers the exact request and response bytes", async () => {
    const body = JSON.stringify({ model: MODELS.openai, input: "signed" });
    const res = await post(f.g, "/v1/responses", body);
    const { claims } = await receiptOf(f.g, res, body);
    expect(claims).toMatchObject({ status: 200, surface: "responses", provider: "openai", model: MODELS.openai, stream: false });
    expect(claims.upstream?.model).toBe("gpt-4.1-2025-04-14");
  });
});

describe("upstream errors on native routes, in OpenAI's shape", () => {
  it("4xx: the provider's message reaches the SDK's own error class", async () => {
    f.mocks.responses.enqueue({ status: 400, errorMessage: "Invalid value for 'text.format'." });
    const err = await f.openai.responses.create({ model: MODELS.openai, input: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain("Provider says: Invalid value for 'text.format'.");
  });

  it("5xx (after the gateway's retries) becomes a 502 upstream_error; 429 a 429", async () => {
    f.mocks.responses.enqueue({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
    const err = await f.openai.responses.create({ model: MODELS.openai, input: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("upstream_error");
    f.mocks.responses.enqueue({ status: 429 }, { status: 429 }, { status: 429 }, { status: 429 });
    const limited = await f.openai.responses.create({ model: MODELS.openai, input: "x" }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("an error event before the first byte is an upstream failure (retried, then 502), not a 200", async () => {
    f.mocks.responses.enqueue({ errorEventAt: 0 }, { errorEventAt: 0 }, { errorEventAt: 0 }, { errorEventAt: 0 });
    const res = await post(f.g, "/v1/responses", { model: MODELS.openai, input: "x", stream: true });
    expect(res.status).toBe(502);
  });

  it("mid-stream failure: the stream ends with an error event (the SDK throws) and response.failed, then the receipt", async () => {
    f.mocks.responses.enqueue({ cutAfterEvents: 5 });
    const body = JSON.stringify({ model: MODELS.openai, input: "x", stream: true });
    const res = await post(f.g, "/v1/responses", body);
    const { events, claims } = await verifiedStream(f.g, res, body);
    expect(claims.status).toBe(200);
    expect(events.map((e) => e.type).slice(-2)).toEqual(["error", "response.failed"]);
    // Numbering continues OpenAI's; response.failed names the response OpenAI started.
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.at(-1)!.response).toMatchObject({ id: (events[0]!.response as { id: string }).id, status: "failed", error: { code: "upstream_error" } });

    f.mocks.responses.enqueue({ cutAfterEvents: 5 });
    const stream = await f.openai.responses.create({ model: MODELS.openai, input: "x", stream: true });
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toContain("upstream");
  });
});

describe("stored responses: GET, DELETE, input_items", () => {
  it("go to the token's one OpenAI Responses provider when ?model= is absent ... and here there are two, so it asks", async () => {
    const created = await f.openai.responses.create({ model: MODELS.openai, input: "keep me" });
    const err = await f.openai.responses.retrieve(created.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("invalid_request");
    expect((err as Error).message).toContain("?model=");
  });

  it("with ?model=, retrieve, input_items and delete reach OpenAI with its headers", async () => {
    const created = await f.openai.responses.create({ model: MODELS.openai, input: "keep me" });
    const q = { query: { model: MODELS.openai }, headers: { "openai-project": "proj_1" } };
    const got = await f.openai.responses.retrieve(created.id, {}, q);
    expect(got.output_text).toBe(MOCK_RESPONSES_TEXT);
    expect(last()).toMatchObject({ method: "GET", path: `/v1/responses/${created.id}` });
    expect(last().headers["openai-project"]).toBe("proj_1");
    expect(last().headers.authorization).toBe("Bearer sk-openai-upstream");
    // The SDK's `query` option replaces the params' query, so the page size goes there too.
    const items = await f.openai.responses.inputItems.list(created.id, {}, { ...q, query: { ...q.query, limit: 5 } });
    expect(items.data[0]).toMatchObject({ type: "message", role: "user" });
    expect(last().path).toBe(`/v1/responses/${created.id}/input_items?limit=5`);
    await f.openai.responses.delete(created.id, q);
    expect(last()).toMatchObject({ method: "DELETE", path: `/v1/responses/${created.id}` });
    expect(f.mocks.responses.stored()).not.toContain(created.id);
    const gone = await f.openai.responses.retrieve(created.id, {}, q).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("?model= naming a translated route (each kind), GET, DELETE and input_items: unsupported_parameter, nothing sent", async () => {
    const before = f.mocks.responses.requests.length;
    for (const model of [MODELS.anthropic, MODELS.gemini, MODELS.local, MODELS.compat]) {
      for (const [method, path] of [
        ["GET", "/v1/responses/resp_1"],
        ["DELETE", "/v1/responses/resp_1"],
        ["GET", "/v1/responses/resp_1/input_items"],
      ] as const) {
        const res = await f.g.app.request(`${path}?model=${model}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.status, `${method} ${path} ${model}`).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: "unsupported_parameter", param: "model", type: "invalid_request_error" } });
      }
    }
    expect(f.mocks.responses.requests.length).toBe(before);
  });

  it("an openai-compatible provider with capabilities.responses serves stored responses too", async () => {
    const created = await f.openai.responses.create({ model: MODELS.compatNative, input: "keep" });
    const got = await f.openai.responses.retrieve(created.id, {}, { query: { model: MODELS.compatNative } });
    expect(got.id).toBe(created.id);
    expect(last().headers.authorization).toBe("Bearer sk-compatr-upstream");
  });

  it("a hostile id or query is refused before it reaches a URL; stream=true is refused", async () => {
    for (const path of ["/v1/responses/..%2F..%2Fadmin?model=gpt", "/v1/responses/resp_1?model=gpt&stream=true", `/v1/responses/${"a".repeat(129)}?model=gpt`]) {
      const res = await f.g.app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status, path).toBe(400);
    }
    expect(f.mocks.responses.requests.length).toBe(0);
  });

  it("unauthenticated: 401 in OpenAI's shape", async () => {
    const res = await f.g.app.request("/v1/responses/resp_1?model=gpt");
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { type: "authentication_error" } });
  });
});

describe("stored responses: which provider, without ?model=", () => {
  it("the token's one native provider is used; a token that reaches none gets unsupported_parameter", async () => {
    const g = await gatewayApp({
      config: {
        providers: [
          { name: "local", kind: "local" },
          { name: "openai", kind: "openai", baseUrl: f.mocks.responses.url, secret: "OPENAI_API_KEY" },
        ],
        models: { local: { provider: "local", model: "local" }, gpt: { provider: "openai", model: "gpt-4.1" } },
      },
      secrets: new Map([["OPENAI_API_KEY", "sk-openai-upstream"]]),
      upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
    });
    const created = (await (await post(g, "/v1/responses", { model: "gpt", input: "keep" })).json()) as { id: string };
    const res = await g.app.request(`/v1/responses/${created.id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(((await receiptOf(g, res)).claims as { provider: string }).provider).toBe("openai");
    expect(last()).toMatchObject({ method: "GET", path: `/v1/responses/${created.id}` });
    // OTHER_TOKEN may use "local" only: no provider it reaches stores responses.
    const none = await g.app.request(`/v1/responses/${created.id}`, { headers: { authorization: `Bearer ${OTHER_TOKEN}` } });
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ error: { code: "unsupported_parameter", param: "response_id" } });
    // ?model= naming a model the token may not use: 403, before anything is sent.
    const before = f.mocks.responses.requests.length;
    const denied = await g.app.request(`/v1/responses/${created.id}?model=gpt`, { headers: { authorization: `Bearer ${OTHER_TOKEN}` } });
    expect(denied.status).toBe(403);
    expect(f.mocks.responses.requests.length).toBe(before);
  });
});
