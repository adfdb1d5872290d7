/**
 * The OpenAI adapter's Responses pass-through (openai-native-responses.ts)
 * against the Responses mock, and against hostile upstreams: which
 * adapters have it, what reaches the wire, and how answers that are not
 * OpenAI's fail.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createOpenAIAdapter } from "../../../../enclave/providers/openai/openai-adapter.js";
import { frameSse } from "../../../../enclave/providers/openai/openai-native-responses.js";
import type { ProviderCallContext } from "../../../../enclave/providers/types.js";
import { startMockOpenAIResponses, type MockOpenAIResponses } from "../../../helpers/mock-openai-responses.js";

let mock: MockOpenAIResponses;
beforeAll(async () => {
  mock = await startMockOpenAIResponses();
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

const ctx = (overrides: Partial<ProviderCallContext> = {}): ProviderCallContext => ({
  fetch: globalThis.fetch,
  signal: new AbortController().signal,
  upstreamModel: "gpt-up",
  now: () => new Date("2031-01-01T00:00:00Z"),
  ...overrides,
});
const collect = async (it: AsyncIterable<string>) => {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out;
};

describe("which adapters speak Responses", () => {
  it("kind openai does; openai-compatible only with capabilities.responses", () => {
    expect(createOpenAIAdapter({ name: "o", kind: "openai", baseUrl: mock.url }).nativeResponses).toBeDefined();
    expect(createOpenAIAdapter({ name: "c", baseUrl: mock.url }).nativeResponses).toBeUndefined();
    expect(createOpenAIAdapter({ name: "c", baseUrl: mock.url, capabilities: { responses: false } }).nativeResponses).toBeUndefined();
    expect(createOpenAIAdapter({ name: "c", baseUrl: mock.url, capabilities: { responses: true } }).nativeResponses).toBeDefined();
  });
});

describe("the pass-through", () => {
  const native = () => createOpenAIAdapter({ name: "o", kind: "openai", baseUrl: mock.url, apiKey: () => "sk-up", extraHeaders: { "x-extra": "1" } }).nativeResponses!;

  it("client headers go along, the adapter's own win (authorization cannot be overridden)", async () => {
    await native().create({ model: "alias", input: "x" }, { "openai-beta": "b", authorization: "Bearer stolen", "x-extra": "client" }, ctx());
    const h = mock.requests[0]!.headers;
    expect([h["openai-beta"], h.authorization, h["x-extra"]]).toEqual(["b", "Bearer sk-up", "1"]);
    expect(mock.requests[0]!.body).toEqual({ model: "gpt-up", input: "x", stream: false });
  });

  it("a stream: every event framed as received, stopping at the terminal event; observe sees each", async () => {
    const seen: unknown[] = [];
    const events = await collect(native().createStream({ model: "alias", input: "x" }, {}, ctx(), (e) => seen.push(e.type)));
    expect(events[0]).toMatch(/^event: response.created\ndata: \{"type":"response.created","sequence_number":0,/);
    expect(events.at(-1)).toMatch(/^event: response.completed\n/);
    expect(seen).toHaveLength(events.length);
  });

  it("frames multi-line data as several data lines and strips line breaks from the event name", () => {
    expect(frameSse("a\r\nb", "x\ny")).toBe("event: ab\ndata: x\ndata: y\n\n");
  });
});

describe("hostile or broken upstreams", () => {
  let server: http.Server;
  let url: string;
  let reply: (res: http.ServerResponse) => void = () => {};
  beforeAll(async () => {
    server = http.createServer((_req, res) => reply(res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  const native = () => createOpenAIAdapter({ name: "o", kind: "openai", baseUrl: url }).nativeResponses!;

  it("a 200 that is not a Response object: malformed", async () => {
    reply = (res) => res.writeHead(200, { "content-type": "application/json" }).end('{"object":"chat.completion"}');
    await expect(native().create({ input: "x" }, {}, ctx())).rejects.toMatchObject({ kind: "malformed" });
  });

  it("a stream that is not SSE, one with non-JSON data, one that ends without a terminal event: malformed", async () => {
    reply = (res) => res.writeHead(200, { "content-type": "application/json" }).end("{}");
    await expect(collect(native().createStream({ input: "x" }, {}, ctx()))).rejects.toMatchObject({ kind: "malformed" });
    reply = (res) => res.writeHead(200, { "content-type": "text/event-stream" }).end("event: response.created\ndata: {nope\n\n");
    await expect(collect(native().createStream({ input: "x" }, {}, ctx()))).rejects.toMatchObject({ kind: "malformed" });
    reply = (res) => res.writeHead(200, { "content-type": "text/event-stream" }).end('event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n');
    await expect(collect(native().createStream({ input: "x" }, {}, ctx()))).rejects.toMatchObject({
      kind: "malformed",
      message: expect.stringContaining("before response.completed"),
    });
  });

  it("an error event first: a retryable status (rate limit → 429, else 500), never passed as a 200", async () => {
    reply = (res) => res.writeHead(200, { "content-type": "text/event-stream" }).end('event: error\ndata: {"type":"error","code":"rate_limit_exceeded","message":"slow down"}\n\n');
    await expect(collect(native().createStream({ input: "x" }, {}, ctx()))).rejects.toMatchObject({ kind: "status", status: 429 });
    reply = (res) => res.writeHead(200, { "content-type": "text/event-stream" }).end('event: error\ndata: {"type":"error","error":{"type":"server_error"}}\n\n');
    await expect(collect(native().createStream({ input: "x" }, {}, ctx()))).rejects.toMatchObject({ kind: "status", status: 500 });
  });

  it("a stored-response 404 keeps the provider's message for the client; an error body is read bounded", async () => {
    reply = (res) =>
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "Response with id 'r' not found.", type: "invalid_request_error" } }));
    await expect(native().stored("GET", "/r", {}, ctx())).rejects.toMatchObject({ kind: "status", status: 404 });
    reply = (res) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end("x".repeat(1024 * 1024));
    };
    await expect(native().stored("DELETE", "/r", {}, ctx())).rejects.toMatchObject({ kind: "status", status: 400 });
  });
});
