import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { createAnthropicAdapter } from "../../../../enclave/providers/anthropic/anthropic-adapter.js";
import { UpstreamError, type ChatCompletionChunk, type ChatRequest, type ProviderCallContext } from "../../../../enclave/providers/types.js";
import { startMockAnthropic, type MockAnthropic, type MockAnthropicScenario } from "../../../helpers/mock-anthropic.js";

/**
 * Error mapping of the Anthropic adapter. Every prompt carries a canary, the
 * mock echoes it in its error messages (as real providers do), and no
 * UpstreamError may carry it.
 */

const CANARY = "CANARY-4e1f0b-secret-prompt";
const NOW = new Date("2025-03-04T05:06:07Z");
const REQUEST: ChatRequest = { model: "claude-alias", messages: [{ role: "user", content: `Summarise: ${CANARY}` }] };

let mock: MockAnthropic;
const seen: UpstreamError[] = [];

function ctx(signal: AbortSignal = new AbortController().signal): ProviderCallContext {
  return { fetch, signal, upstreamModel: "claude-up", now: () => NOW };
}

function adapter() {
  return createAnthropicAdapter({ name: "anthropic", baseUrl: mock.url, apiKey: () => "sk-ant-test" });
}

async function failure(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    seen.push(err as UpstreamError);
    return err as UpstreamError;
  }
  throw new Error("expected an UpstreamError");
}

async function drain(iterable: AsyncIterable<ChatCompletionChunk>, received: ChatCompletionChunk[] = []): Promise<ChatCompletionChunk[]> {
  for await (const chunk of iterable) received.push(chunk);
  return received;
}

function streamFailure(scenario: MockAnthropicScenario, signal?: AbortSignal, received: ChatCompletionChunk[] = []) {
  mock.setScenario(scenario);
  return failure(drain(adapter().chatStream(REQUEST, ctx(signal)), received));
}

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.requests.length = 0;
});
afterEach(() => {
  // The canary must not appear in any error, its cause chain's messages aside.
  for (const err of seen) {
    expect(err.message).not.toContain(CANARY);
    expect(String(err)).not.toContain(CANARY);
    expect(JSON.stringify({ ...err, message: err.message })).not.toContain(CANARY);
  }
  seen.length = 0;
});

describe("HTTP status errors (chat and chatStream)", () => {
  test.each([
    { status: 429, retryAfter: "7", expectRetryAfter: 7, retryable: true },
    { status: 429, retryAfter: undefined, expectRetryAfter: undefined, retryable: true },
    { status: 500, retryAfter: undefined, expectRetryAfter: undefined, retryable: true },
    { status: 529, retryAfter: "2", expectRetryAfter: 2, retryable: true },
    { status: 400, retryAfter: undefined, expectRetryAfter: undefined, retryable: false },
    { status: 401, retryAfter: undefined, expectRetryAfter: undefined, retryable: false },
    { status: 413, retryAfter: undefined, expectRetryAfter: undefined, retryable: false },
  ])("HTTP $status (retry-after $retryAfter)", async ({ status, retryAfter, expectRetryAfter, retryable }) => {
    const scenario: MockAnthropicScenario = { status, errorMessage: `upstream says: ${CANARY}` };
    if (retryAfter !== undefined) scenario.retryAfter = retryAfter;
    mock.setScenario(scenario);
    for (const err of [await failure(adapter().chat(REQUEST, ctx())), await streamFailure(scenario)]) {
      expect(err.kind).toBe("status");
      expect(err.status).toBe(status);
      expect(err.retryAfterSeconds).toBe(expectRetryAfter);
      expect(err.retryable).toBe(retryable);
    }
  });

  test("retry-after as an HTTP-date", async () => {
    mock.setScenario({ status: 429, retryAfter: new Date(NOW.getTime() + 30_000).toUTCString() });
    expect((await failure(adapter().chat(REQUEST, ctx()))).retryAfterSeconds).toBe(30);
  });

  test("a 200 whose body is not JSON, or not a Message, is malformed", async () => {
    mock.setScenario({ rawBody: `<html>${CANARY}</html>` });
    expect((await failure(adapter().chat(REQUEST, ctx()))).kind).toBe("malformed");
    mock.setScenario({ json: { type: "error", error: { type: "api_error", message: CANARY } } });
    expect((await failure(adapter().chat(REQUEST, ctx()))).kind).toBe("malformed");
  });

  test("connection refused → connect, retryable", async () => {
    const dead = await startMockAnthropic();
    const url = dead.url;
    await dead.close();
    const a = createAnthropicAdapter({ name: "anthropic", baseUrl: url, apiKey: () => "k" });
    const err = await failure(a.chat(REQUEST, ctx()));
    expect(err.kind).toBe("connect");
    expect(err.retryable).toBe(true);
    expect((await failure(drain(a.chatStream(REQUEST, ctx())))).kind).toBe("connect");
  });
});

describe("stream faults", () => {
  test.each([
    ["overloaded_error", 529],
    ["rate_limit_error", 429],
    ["api_error", 502],
  ])("error event %s mid-stream → status %d, after the chunks already received", async (type, status) => {
    const received: ChatCompletionChunk[] = [];
    // message_start, block start, ping, one delta, then the error event.
    const err = await streamFailure(
      { content: [{ type: "text", text: "partial answer here" }], errorEventAfterEvents: { after: 4, type, message: `Overloaded ${CANARY}` } },
      undefined,
      received,
    );
    expect(err.kind).toBe("status");
    expect(err.status).toBe(status);
    expect(err.message).toContain(type);
    expect(received.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("part");
  });

  test("error event before message_start → retryable 529", async () => {
    const err = await streamFailure({ errorEventAfterEvents: { after: 0, type: "overloaded_error" } });
    expect(err.status).toBe(529);
    expect(err.retryable).toBe(true);
  });

  test("malformed JSON event → malformed", async () => {
    const err = await streamFailure({ malformedAfterEvents: 3 });
    expect(err.kind).toBe("malformed");
  });

  test("socket destroyed mid-stream → malformed (connection lost, truncated), after the first chunks", async () => {
    const received: ChatCompletionChunk[] = [];
    const err = await streamFailure({ content: [{ type: "text", text: "will be cut off" }], destroyAfterEvents: 4 }, undefined, received);
    // One mapping for every adapter (shared/stream-read-failure.ts): after a
    // chunk was delivered the answer is truncated, never retryable.
    expect(err.kind).toBe("malformed");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("mid-stream");
    expect(received.length).toBeGreaterThanOrEqual(2);
  });

  test("a stream that ends cleanly without message_stop is truncated → malformed", async () => {
    const err = await streamFailure({ events: [{ event: "message_start", data: { type: "message_start", message: { id: "msg_t", model: "m", usage: {} } } }] });
    expect(err.kind).toBe("malformed");
  });

  test("a 200 JSON body to a stream request is malformed", async () => {
    mock.setScenario({ rawStream: ['{"type":"message"}'] });
    const err = await failure(drain(adapter().chatStream(REQUEST, ctx())));
    expect(err.kind).toBe("malformed");
  });
});

describe("aborts and timeouts", () => {
  test("a signal aborted before the call → aborted, nothing read", async () => {
    const controller = new AbortController();
    controller.abort();
    expect((await failure(adapter().chat(REQUEST, ctx(controller.signal)))).kind).toBe("aborted");
    expect((await failure(drain(adapter().chatStream(REQUEST, ctx(controller.signal))))).kind).toBe("aborted");
  });

  test("abort while waiting for headers → aborted", async () => {
    const controller = new AbortController();
    mock.setScenario({ delayBeforeHeadersMs: 5000 });
    setTimeout(() => controller.abort(), 50);
    expect((await failure(adapter().chat(REQUEST, ctx(controller.signal)))).kind).toBe("aborted");
  });

  test("abort mid-stream while the provider stalls → aborted, upstream connection released", async () => {
    const controller = new AbortController();
    const received: ChatCompletionChunk[] = [];
    const pending = streamFailure({ content: [{ type: "text", text: "stalls after this" }], stall: { afterEvents: 4 } }, controller.signal, received);
    await expect.poll(() => received.length, { timeout: 2000 }).toBeGreaterThanOrEqual(2);
    controller.abort();
    const err = await pending;
    expect(err.kind).toBe("aborted");
    await expect.poll(() => mock.requests[0]!.closed, { timeout: 2000 }).toBe(true);
  });

  test("a timeout signal before the first event → timeout, not retryable", async () => {
    const err = await streamFailure({ delayBeforeFirstEventMs: 5000 }, AbortSignal.timeout(100));
    expect(err.kind).toBe("timeout");
    expect(err.retryable).toBe(false);
  });
});
