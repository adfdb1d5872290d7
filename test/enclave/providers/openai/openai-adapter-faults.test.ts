/**
 * How the OpenAI(-compatible) adapter fails: every upstream fault becomes an
 * UpstreamError of the right kind, retryable only when a retry can help, and
 * none of them carries upstream text. The mock echoes the prompt in its
 * error bodies, as real providers do, so a canary in the prompt proves the
 * error messages stay clean.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createOpenAIAdapter } from "../../../../enclave/providers/openai/openai-adapter.js";
import { UpstreamError, type ChatCompletionChunk, type ChatRequest, type ProviderCallContext } from "../../../../enclave/providers/types.js";
import { startMockOpenAI, type MockOpenAI, type MockScenario } from "../../../helpers/mock-openai.js";

const NOW = new Date("2031-02-03T04:05:06.000Z");
const CANARY = "CANARY-4f1d9b2e-never-in-errors";

function context(overrides: Partial<ProviderCallContext> = {}): ProviderCallContext {
  return { fetch: globalThis.fetch, signal: new AbortController().signal, upstreamModel: "gpt-upstream", now: () => NOW, ...overrides };
}

const request: ChatRequest = { model: "alias", messages: [{ role: "user", content: `Summarize ${CANARY} please` }] };

let mock: MockOpenAI;
beforeAll(async () => {
  mock = await startMockOpenAI();
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => mock.reset());

const adapter = () => createOpenAIAdapter({ name: "mockai", baseUrl: mock.url, apiKey: () => "sk-test" });

/** Runs a call to completion and returns what it threw. */
async function failure(run: () => Promise<unknown>): Promise<UpstreamError> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    const e = err as UpstreamError;
    expect(e.message).not.toContain(CANARY);
    expect(String(e)).not.toContain(CANARY);
    expect(e.message).not.toContain("sk-test");
    return e;
  }
  throw new Error("expected the call to fail");
}

async function streamFailure(ctx = context()): Promise<{ error: UpstreamError; chunks: ChatCompletionChunk[] }> {
  const chunks: ChatCompletionChunk[] = [];
  const error = await failure(async () => {
    for await (const chunk of adapter().chatStream(request, ctx)) chunks.push(chunk);
  });
  return { error, chunks };
}

describe("HTTP status", () => {
  it("429 with retry-after seconds → status 429, retryAfterSeconds, retryable", async () => {
    mock.setScenario({ status: 429, retryAfter: "7" });
    const err = await failure(() => adapter().chat(request, context()));
    expect(err).toMatchObject({ kind: "status", status: 429, retryAfterSeconds: 7, retryable: true });
    // The mock really did echo the prompt; the adapter dropped it.
    expect(mock.requests).toHaveLength(1);
  });

  it("429 with an HTTP-date retry-after is measured against the injected clock", async () => {
    mock.setScenario({ status: 429, retryAfter: new Date(NOW.getTime() + 12_000).toUTCString() });
    const err = await failure(() => adapter().chat(request, context()));
    expect(err.retryAfterSeconds).toBe(12);
  });

  it("429 on a stream fails before any chunk", async () => {
    mock.setScenario({ status: 429, retryAfter: "3" });
    const { error, chunks } = await streamFailure();
    expect(chunks).toEqual([]);
    expect(error).toMatchObject({ kind: "status", status: 429, retryAfterSeconds: 3 });
  });

  it.each([
    [500, true],
    [503, true],
    [400, false],
    [401, false],
    [404, false],
  ])("HTTP %i → status error, retryable=%s", async (status, retryable) => {
    mock.setScenario({ status });
    const err = await failure(() => adapter().chat(request, context()));
    expect(err).toMatchObject({ kind: "status", status, retryable, retryAfterSeconds: undefined });
    const streamed = await streamFailure();
    expect(streamed.error).toMatchObject({ kind: "status", status });
  });

  it("embeddings and images map statuses the same way", async () => {
    mock.setScenario({ status: 500 });
    expect(await failure(() => adapter().embeddings!({ model: "e", input: CANARY }, context()))).toMatchObject({ kind: "status", status: 500 });
    expect(await failure(() => adapter().images!({ model: "i", prompt: CANARY }, context()))).toMatchObject({ kind: "status", status: 500 });
  });
});

describe("malformed upstream", () => {
  const completionWith = (patch: Record<string, unknown>) => ({
    id: "c",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: CANARY }, finish_reason: "stop" }],
    ...patch,
  });

  it.each<[string, unknown]>([
    ["not JSON", `{"choices": [${CANARY}`],
    ["an array", [CANARY]],
    ["null", "null"],
    ["no choices", completionWith({ choices: undefined })],
    ["choices not an array", completionWith({ choices: CANARY })],
    ["choice without message", completionWith({ choices: [{ index: 0, finish_reason: "stop" }] })],
    ["content a number", completionWith({ choices: [{ index: 0, message: { role: "assistant", content: 5 }, finish_reason: "stop" }] })],
    [
      "tool call without arguments",
      completionWith({
        choices: [
          { index: 0, message: { role: "assistant", content: null, tool_calls: [{ id: "x", type: "function", function: { name: CANARY } }] }, finish_reason: "tool_calls" },
        ],
      }),
    ],
    ["missing id", completionWith({ id: undefined })],
    ["created a string", completionWith({ created: CANARY })],
    ["usage without numbers", completionWith({ usage: { prompt_tokens: CANARY } })],
  ])("a completion that is %s → malformed", async (_, rawBody) => {
    mock.setScenario({ rawBody });
    const err = await failure(() => adapter().chat(request, context()));
    expect(err.kind).toBe("malformed");
    expect(err.retryable).toBe(false);
  });

  it("an in-band error object with HTTP 200 is an upstream error, its text dropped", async () => {
    mock.setScenario({ rawBody: { error: { message: `bad ${CANARY}`, type: "server_error" } } });
    const err = await failure(() => adapter().chat(request, context()));
    expect(err.kind).toBe("status");
  });

  it("a malformed JSON chunk ends the stream with malformed, after the good chunks", async () => {
    mock.setScenario({ malformedChunkAt: 2 });
    const { error, chunks } = await streamFailure();
    expect(chunks).toHaveLength(2);
    expect(error.kind).toBe("malformed");
  });

  it("a chunk of the wrong shape → malformed", async () => {
    for (const event of [
      JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m" }),
      JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: CANARY }] }),
      JSON.stringify({ id: "c", created: 1, model: "m", choices: [{ index: 0, delta: { tool_calls: [{ function: { arguments: CANARY } }] } }] }),
      JSON.stringify([CANARY]),
    ]) {
      mock.setScenario({ rawEvents: [event] });
      const { error } = await streamFailure();
      expect(error.kind).toBe("malformed");
    }
  });

  it("an error event mid-stream is an upstream error, its text dropped", async () => {
    mock.setScenario({
      rawEvents: [
        JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: { content: "a" }, finish_reason: null }] }),
        JSON.stringify({
          id: "c",
          object: "chat.completion.chunk",
          created: 1,
          model: "m",
          error: { message: CANARY, code: 502 },
          choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }],
        }),
      ],
    });
    const { error, chunks } = await streamFailure();
    expect(chunks).toHaveLength(1);
    expect(error.kind).toBe("status");
  });

  it("a stream that ends without [DONE] → malformed, after every chunk it did send", async () => {
    mock.setScenario({ omitDone: true });
    const { error, chunks } = await streamFailure();
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("stop");
    expect(error.kind).toBe("malformed");
    expect(error.message).toMatch(/\[DONE\]/);
  });

  it("a streamed answer that is not SSE → malformed", async () => {
    mock.setScenario({ contentType: "application/json" });
    const { error, chunks } = await streamFailure();
    expect(chunks).toEqual([]);
    expect(error.kind).toBe("malformed");
  });
});

describe("connection faults", () => {
  it("socket destroyed mid-stream → malformed (truncated), after the chunks that arrived", async () => {
    mock.setScenario({ destroyAfterChunks: 2 });
    const { error, chunks } = await streamFailure();
    expect(chunks).toHaveLength(2);
    expect(error.kind).toBe("malformed");
    expect(error.retryable).toBe(false);
  });

  it("socket destroyed before the first event → connect (nothing reached the client, retryable)", async () => {
    mock.setScenario({ destroyAfterChunks: 0 });
    const { error, chunks } = await streamFailure();
    expect(chunks).toEqual([]);
    expect(error.kind).toBe("connect");
    expect(error.retryable).toBe(true);
  });

  it("socket destroyed before the headers → connect", async () => {
    const server = http.createServer((req) => req.socket.destroy());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    try {
      const a = createOpenAIAdapter({ name: "x", baseUrl: `http://127.0.0.1:${port}/v1` });
      expect(await failure(() => a.chat(request, context()))).toMatchObject({ kind: "connect", retryable: true });
    } finally {
      server.close();
    }
  });

  it("connection refused (closed port) → connect, retryable", async () => {
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    const a = createOpenAIAdapter({ name: "x", baseUrl: `http://127.0.0.1:${port}/v1` });
    expect(await failure(() => a.chat(request, context()))).toMatchObject({ kind: "connect", status: undefined, retryable: true });
    const chunks: unknown[] = [];
    const err = await failure(async () => {
      for await (const chunk of a.chatStream(request, context())) chunks.push(chunk);
    });
    expect(err.kind).toBe("connect");
    expect(chunks).toEqual([]);
  });
});

describe("abort and timeout", () => {
  it("an already-aborted signal → aborted, nothing sent", async () => {
    const controller = new AbortController();
    controller.abort();
    expect(await failure(() => adapter().chat(request, context({ signal: controller.signal })))).toMatchObject({ kind: "aborted", retryable: false });
    expect(mock.requests).toHaveLength(0);
  });

  it("abort while waiting for headers → aborted", async () => {
    mock.setScenario({ headersDelayMs: 5_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const started = Date.now();
    expect(await failure(() => adapter().chat(request, context({ signal: controller.signal })))).toMatchObject({ kind: "aborted" });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("abort mid-stream (provider stalled) → aborted, promptly, after the first chunk", async () => {
    mock.setScenario({ stallAfterChunks: 1 });
    const controller = new AbortController();
    const chunks: ChatCompletionChunk[] = [];
    const err = await failure(async () => {
      for await (const chunk of adapter().chatStream(request, context({ signal: controller.signal }))) {
        chunks.push(chunk);
        setTimeout(() => controller.abort(), 20);
      }
    });
    expect(chunks).toHaveLength(1);
    expect(err.kind).toBe("aborted");
  });

  it("a timeout signal → timeout (first byte never comes)", async () => {
    const scenarios: MockScenario[] = [{ headersDelayMs: 5_000 }, { firstChunkDelayMs: 5_000 }];
    for (const scenario of scenarios) {
      mock.setScenario(scenario);
      const err = await failure(async () => {
        for await (const _ of adapter().chatStream(request, context({ signal: AbortSignal.timeout(50) }))) void _;
      });
      expect(err.kind).toBe("timeout");
    }
  });
});
