import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { createGeminiAdapter, geminiModelId, geminiRetryHint } from "../../../../enclave/providers/gemini/gemini-adapter.js";
import { UpstreamError, type ChatCompletionChunk, type ChatRequest, type ProviderAdapter, type ProviderCallContext } from "../../../../enclave/providers/types.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";

const KEY = "AIzaSy-error-suite";
let mock: MockGemini;
let adapter: ProviderAdapter;

function ctx(overrides: Partial<ProviderCallContext> = {}): ProviderCallContext {
  return { fetch: globalThis.fetch, signal: new AbortController().signal, upstreamModel: "gemini-2.5-flash", now: () => new Date("2026-01-01T00:00:00Z"), ...overrides };
}
const chatRequest = (content = "Say hello"): ChatRequest => ({ model: "alias", messages: [{ role: "user", content }] });

async function chatError(c = ctx(), request = chatRequest()): Promise<UpstreamError> {
  try {
    await adapter.chat(request, c);
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error("expected chat() to fail");
}

/** Runs a stream to its end; returns the chunks received before it failed and the error. */
async function streamError(c = ctx(), request = chatRequest()): Promise<{ received: ChatCompletionChunk[]; error: UpstreamError }> {
  const received: ChatCompletionChunk[] = [];
  try {
    for await (const chunk of adapter.chatStream(request, c)) received.push(chunk);
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return { received, error: err as UpstreamError };
  }
  throw new Error("expected chatStream() to fail");
}

beforeAll(async () => {
  mock = await startMockGemini({ apiKey: KEY });
  adapter = createGeminiAdapter({ name: "gemini", baseUrl: mock.url, apiKey: () => KEY });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.setScenario({});
  mock.requests.length = 0;
});

describe("HTTP status errors", () => {
  const rows: [number, string | undefined, number | undefined, boolean][] = [
    [429, "7", 7, true],
    [429, undefined, undefined, true],
    [500, undefined, undefined, true],
    [503, "2", 2, true],
    [400, undefined, undefined, false],
    [403, undefined, undefined, false],
    [404, undefined, undefined, false],
  ];
  it.each(rows)("HTTP %i (retry-after %s) → status error, retryAfterSeconds %s, retryable %s — chat and stream", async (status, retryAfter, seconds, retryable) => {
    mock.setScenario({ status, ...(retryAfter ? { retryAfter } : {}) });
    for (const error of [await chatError(), (await streamError()).error]) {
      expect(error).toMatchObject({ kind: "status", status, retryAfterSeconds: seconds });
      expect(error.retryable).toBe(retryable);
      expect(error.message).toBe(`gemini answered HTTP ${status}`);
    }
  });

  it("a wrong key is Google's 400, surfaced as status 400", async () => {
    const wrongKey = createGeminiAdapter({ name: "gemini", baseUrl: mock.url, apiKey: () => "wrong" });
    await expect(wrongKey.chat(chatRequest(), ctx())).rejects.toMatchObject({ kind: "status", status: 400 });
  });

  it("Google's in-stream error event after some output → status error with its code", async () => {
    mock.setScenario({ text: ["a", "b", "c"], errorEvent: { after: 1, code: 503 } });
    const { received, error } = await streamError();
    expect(received.map((c) => c.choices[0]?.delta.content)).toEqual(["a"]);
    expect(error).toMatchObject({ kind: "status", status: 503 });
  });
});

describe("broken upstream bodies and connections", () => {
  it("a malformed SSE event → malformed, after the chunks before it", async () => {
    mock.setScenario({ text: ["a", "b", "c"], malformedEventAt: 1 });
    const { received, error } = await streamError();
    expect(received.map((c) => c.choices[0]?.delta.content)).toEqual(["a"]);
    expect(error.kind).toBe("malformed");
  });

  it("a non-JSON generateContent body → malformed", async () => {
    mock.setScenario({ rawBody: "<html>oops</html>" });
    expect((await chatError()).kind).toBe("malformed");
  });

  it("a socket destroyed mid-stream → malformed (connection lost, truncated), after the chunks before it", async () => {
    mock.setScenario({ text: ["a", "b", "c"], destroyAfterEvents: 2 });
    const { received, error } = await streamError();
    expect(received.map((c) => c.choices[0]?.delta.content)).toEqual(["a", "b"]);
    // One mapping for every adapter (shared/stream-read-failure.ts): truncated, never retryable.
    expect(error.kind).toBe("malformed");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe("gemini: upstream connection lost mid-stream");
  });

  it("a socket destroyed before any event → connect", async () => {
    mock.setScenario({ destroyAfterEvents: 0 });
    expect((await streamError()).error.kind).toBe("connect");
  });

  it("a stream that ends cleanly without a finish reason → malformed (never a silent truncation)", async () => {
    mock.setScenario({ events: [{ candidates: [{ content: { parts: [{ text: "partial" }], role: "model" }, index: 0 }] }] });
    const { received, error } = await streamError();
    expect(received).toHaveLength(1);
    expect(error.kind).toBe("malformed");
  });

  it("an empty 200 stream → malformed", async () => {
    mock.setScenario({ events: [] });
    expect((await streamError()).error.kind).toBe("malformed");
  });

  it("a stream answer that is not text/event-stream → malformed", async () => {
    const fakeFetch = (async () => new Response("[]", { status: 200, headers: { "content-type": "application/json" } })) as typeof fetch;
    expect((await streamError(ctx({ fetch: fakeFetch }))).error.kind).toBe("malformed");
  });

  it("nothing listening → connect", async () => {
    const dead = await startMockGemini();
    const url = dead.url;
    await dead.close();
    const nowhere = createGeminiAdapter({ name: "gemini", baseUrl: url, apiKey: () => KEY });
    await expect(nowhere.chat(chatRequest(), ctx())).rejects.toMatchObject({ kind: "connect" });
  });
});

describe("aborts and timeouts", () => {
  it("an already aborted signal → aborted, chat and stream", async () => {
    const controller = new AbortController();
    controller.abort();
    expect((await chatError(ctx({ signal: controller.signal }))).kind).toBe("aborted");
    expect((await streamError(ctx({ signal: controller.signal }))).error.kind).toBe("aborted");
  });

  it("abort while waiting for headers → aborted", async () => {
    mock.setScenario({ delayBeforeHeadersMs: 2000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect((await chatError(ctx({ signal: controller.signal }))).kind).toBe("aborted");
  });

  it("abort mid-stream (upstream stalled) → aborted after the first chunk", async () => {
    mock.setScenario({ text: ["a", "b"], stallAfterEvents: 1 });
    const controller = new AbortController();
    const iterator = adapter.chatStream(chatRequest(), ctx({ signal: controller.signal }))[Symbol.asyncIterator]();
    expect((await iterator.next()).value.choices[0].delta.content).toBe("a");
    await mock.waitForStall();
    const next = iterator.next();
    controller.abort();
    await expect(next).rejects.toMatchObject({ name: "UpstreamError", kind: "aborted" });
    mock.release();
  });

  it("a TimeoutError reason → timeout", async () => {
    mock.setScenario({ text: ["a", "b"], stallAfterEvents: 1 });
    const signal = AbortSignal.timeout(150);
    const { error } = await streamError(ctx({ signal }));
    expect(error.kind).toBe("timeout");
    mock.release();
  });
});

describe("model ids", () => {
  const bad = ["..", ".", "../secrets", "a/b", "models/../x", "gemini:generateContent", "a?b=1", "a#b", "a%2Fb", "", " gemini", "gemini pro", "-flag", "é", "a".repeat(129)];
  it.each(bad)("refuses %j with invalid_request before any request", async (model) => {
    expect(() => geminiModelId(model)).toThrow(GatewayError);
    await expect(adapter.chat(chatRequest(), ctx({ upstreamModel: model }))).rejects.toMatchObject({ code: "invalid_request" });
    await expect(
      adapter
        .chatStream(chatRequest(), ctx({ upstreamModel: model }))
        [Symbol.asyncIterator]()
        .next(),
    ).rejects.toMatchObject({ code: "invalid_request" });
    await expect(adapter.embeddings!({ model: "x", input: "a" }, ctx({ upstreamModel: model }))).rejects.toMatchObject({ code: "invalid_request" });
    expect(mock.requests).toHaveLength(0);
  });

  it.each(["gemini-2.5-flash", "gemini-2.0-flash-001", "models/gemini-1.5-pro", "text-embedding-004", "gemini-2.5-flash-preview-05-20", "learnlm_2.0"])("accepts %j", (model) => {
    expect(geminiModelId(model)).toBe(model.replace(/^models\//, ""));
  });
});

describe("no prompt text in errors", () => {
  // V8 quotes only ~10 characters of the input in a JSON.parse error, so the
  // check looks for the canary's distinctive first 8 characters.
  const CANARY = "QZ7f3a9c-canary-do-not-leak";
  const leaks = (err: unknown): boolean => {
    const e = err as Error;
    return [e.message, String(e), String((e.cause as Error | undefined)?.message ?? "")].some((s) => s.includes(CANARY.slice(0, 8)));
  };

  it("an upstream error body that echoes the prompt", async () => {
    mock.setScenario({ status: 400, errorMessage: `Invalid value at 'contents[0]': ${CANARY}` });
    const err = await chatError(ctx(), chatRequest(CANARY));
    expect(leaks(err)).toBe(false);
    expect(leaks((await streamError(ctx(), chatRequest(CANARY))).error)).toBe(false);
  });

  it("a truncated event that holds the answer", async () => {
    mock.setScenario({ text: [`${CANARY} `, "more"], malformedEventAt: 0 });
    const { error } = await streamError(ctx(), chatRequest(CANARY));
    expect(error.kind).toBe("malformed");
    expect(leaks(error)).toBe(false);
  });

  // V8's "Unexpected token 'X', \"<input>\" is not valid JSON" quotes the
  // input it failed on; http.ts / sse.ts keep that SyntaxError as `cause`.
  it("a non-JSON event whose parse error would quote it", async () => {
    mock.setScenario({ events: [`${CANARY} is not JSON`] });
    const { error } = await streamError(ctx(), chatRequest(CANARY));
    expect(error.kind).toBe("malformed");
    expect(leaks(error)).toBe(false);
  });

  it("a non-JSON body whose parse error would quote it", async () => {
    mock.setScenario({ rawBody: `${CANARY}: upstream echoed the prompt` });
    const err = await chatError(ctx(), chatRequest(CANARY));
    expect(err.kind).toBe("malformed");
    expect(leaks(err)).toBe(false);
  });

  it("an in-stream error event that quotes the prompt", async () => {
    mock.setScenario({ text: ["a"], errorEvent: { after: 1, code: 500, message: `failed on ${CANARY}` } });
    expect(leaks((await streamError(ctx(), chatRequest(CANARY))).error)).toBe(false);
  });

  it("the key never appears in a URL the adapter requests", async () => {
    const seen: string[] = [];
    const spy = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      seen.push(String(input));
      return fetch(input, init);
    }) as typeof fetch;
    await adapter.chat(chatRequest(), ctx({ fetch: spy }));
    for await (const _ of adapter.chatStream(chatRequest(), ctx({ fetch: spy }))) void _;
    await adapter.embeddings!({ model: "e", input: "x" }, ctx({ fetch: spy }));
    expect(seen).toHaveLength(3);
    expect(seen.some((u) => u.includes(KEY) || /[?&]key=/.test(u))).toBe(false);
  });
});

describe("Gemini retry hint in the error body", () => {
  it("reads google.rpc.RetryInfo when there is no retry-after header", async () => {
    const mock = await startMockGemini({ scenario: { status: 429, retryDelay: "7s" } as never });
    try {
      const adapter = createGeminiAdapter({ name: "gemini", baseUrl: mock.url, apiKey: () => "k" });
      const ctx = { fetch, signal: new AbortController().signal, upstreamModel: "gemini-2.5-flash", now: () => new Date() };
      await expect(adapter.chat({ model: "x", messages: [{ role: "user", content: "hi" }] }, ctx)).rejects.toMatchObject({ status: 429, retryAfterSeconds: 7 });
    } finally {
      await mock.close();
    }
    expect(geminiRetryHint('{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"0.5s"}]}}')).toBe(1);
    expect(geminiRetryHint('{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9999s"}]}}')).toBe(60);
    expect(geminiRetryHint('{"error":{}}')).toBeUndefined();
  });
});
