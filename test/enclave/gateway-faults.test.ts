import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RECEIPT_HEADER } from "../../attestation/receipt.js";
import { hashToken } from "../../enclave/auth.js";
import { createEgressFetch } from "../../enclave/egress.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * The fault matrix: each upstream failure has a defined, tested outcome,
 * and the gateway keeps serving afterwards.
 */
let mock: MockOpenAI;
let h: Harness;
let openai: OpenAI;

beforeAll(async () => {
  mock = await startMockOpenAI();
  const host = new URL(mock.url).host;
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mock.url, secret: "OPENAI_API_KEY" },
      ],
      models: {
        gpt: { provider: "openai", model: "gpt-4o-mini" },
        flaky: { provider: "openai", model: "gpt-4o-mini", fallbacks: ["local"] },
        local: { provider: "local", model: "local" },
      },
      prefixRouting: true,
      egressAllowlist: [host],
      clients: [{ name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
      limits: { maxRetries: 2, retryBaseDelayMs: 5, retryMaxDelayMs: 20, firstByteTimeoutMs: 400, idleTimeoutMs: 400, totalTimeoutMs: 5000 },
    }),
    secrets: new Map([["OPENAI_API_KEY", "sk-test-key"]]),
  });
  openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const post = (body: unknown) =>
  h.fetch(`${h.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const chat = (extra: Record<string, unknown> = {}) => ({ model: "gpt", messages: [{ role: "user", content: "hi" }], ...extra });

async function sse(res: Response): Promise<string> {
  return Buffer.from(await res.arrayBuffer()).toString("utf8");
}

describe("upstream fault matrix", () => {
  it("sends the provider key upstream and passes the answer through", async () => {
    const res = await openai.chat.completions.create(chat() as never);
    expect((res as OpenAI.ChatCompletion).choices[0]!.message.content).toBe("This is a mock reply.");
    expect(mock.requests[0]!.headers.authorization).toBe("Bearer sk-test-key");
    expect((mock.requests[0]!.body as { model: string }).model).toBe("gpt-4o-mini");
  });

  it("429 with retry-after: retried, then 429 to the client with retry-after", async () => {
    mock.setScenario({ status: 429, retryAfter: "0" });
    const res = await post(chat());
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(res.headers.get(RECEIPT_HEADER)).toBeTruthy();
    expect(mock.requests).toHaveLength(3); // 1 + maxRetries
  });

  it("429 then success: the retry is invisible to the client", async () => {
    mock.queueScenarios({ status: 429, retryAfter: "0" });
    const res = await post(chat());
    expect(res.status).toBe(200);
    expect(mock.requests).toHaveLength(2);
  });

  it("500 every time: 502 after retries", async () => {
    mock.setScenario({ status: 500 });
    const res = await post(chat());
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    expect(mock.requests).toHaveLength(3);
  });

  it("400 from the provider is not retried, and the client gets the provider's explanation", async () => {
    mock.setScenario({ status: 400, errorMessage: "max_tokens is too large: 999999" });
    const res = await post(chat());
    expect(res.status).toBe(400);
    expect(mock.requests).toHaveLength(1);
    const body = (await res.json()) as { error: { message: string; code: string } };
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.message).toContain("Provider says: max_tokens is too large: 999999");
    // …but the logs only ever carry the code.
    expect(h.logs.join("\n")).not.toContain("max_tokens is too large");
  });

  it("401 from the provider (the enclave's key is wrong) is a 502, with no provider text", async () => {
    mock.setScenario({ status: 401, errorMessage: "Incorrect API key provided: sk-tes****" });
    const res = await post(chat());
    expect(res.status).toBe(502);
    expect(await res.text()).not.toContain("Incorrect API key");
  });

  it("timeout before the first byte: 504, not retried", async () => {
    mock.setScenario({ headersDelayMs: 1500 });
    const started = Date.now();
    const res = await post(chat());
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(1400);
    expect(mock.requests).toHaveLength(1);
  });

  it("stream timeout before the first chunk: 504 JSON error", async () => {
    mock.setScenario({ firstChunkDelayMs: 1500 });
    const res = await post(chat({ stream: true }));
    expect(res.status).toBe(504);
  });

  it("stall mid-stream: the idle timeout ends the stream with an error event and a receipt", async () => {
    mock.setScenario({ stallAfterChunks: 2 });
    const res = await post(chat({ stream: true }));
    expect(res.status).toBe(200);
    const text = await sse(res);
    expect(text).toContain('"code":"upstream_timeout"');
    expect(text).not.toContain("data: [DONE]");
    expect(text).toMatch(/\n: egw-receipt [A-Za-z0-9_-]+\n\n$/);
    mock.releaseStalled();
  });

  it("disconnect mid-stream: error event and receipt, no retry once bytes were sent", async () => {
    mock.setScenario({ destroyAfterChunks: 2 });
    const res = await post(chat({ stream: true }));
    const text = await sse(res);
    expect(text).toContain('"error"');
    expect(text).toMatch(/\n: egw-receipt [A-Za-z0-9_-]+\n\n$/);
    expect(mock.requests).toHaveLength(1);
  });

  it("malformed SSE event: error event in the stream", async () => {
    mock.setScenario({ malformedChunkAt: 1 });
    const text = await sse(await post(chat({ stream: true })));
    expect(text).toContain('"code":"upstream_error"');
  });

  it("stream without [DONE]: treated as malformed", async () => {
    mock.setScenario({ omitDone: true });
    const text = await sse(await post(chat({ stream: true })));
    expect(text).toContain('"code":"upstream_error"');
  });

  it("malformed JSON answer: 502", async () => {
    mock.setScenario({ rawBody: "this is not json" });
    const res = await post(chat());
    expect(res.status).toBe(502);
  });

  it("fallback: a failing primary falls back to the configured model before any byte is sent", async () => {
    mock.setScenario({ status: 503 });
    const res = await post({ model: "flaky", messages: [{ role: "user", content: "fall back please" }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]!.message.content).toContain("local model");
  });

  it("client abort mid-stream aborts the upstream request", async () => {
    mock.setScenario({ chunkDelayMs: 100, content: Array.from({ length: 50 }, (_, i) => `w${i}`).join(" ") });
    const controller = new AbortController();
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true })),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 150));
    expect(mock.activeStreams()).toBe(1);
    controller.abort();
    await reader.cancel().catch(() => {});
    const deadline = Date.now() + 3000;
    while (mock.activeStreams() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(mock.activeStreams()).toBe(0);
  });

  it("stays healthy after every fault", async () => {
    const res = await openai.chat.completions.create(chat() as never);
    expect((res as OpenAI.ChatCompletion).choices[0]!.message.content).toBe("This is a mock reply.");
    const health = await h.fetch(h.baseURL.replace(/\/v1$/, "/healthz"));
    expect(health.status).toBe(200);
  });
});

describe("limits", () => {
  it("refuses a non-JSON content type with 415", async () => {
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "text/plain" },
      body: JSON.stringify(chat()),
    });
    expect(res.status).toBe(415);
  });

  it("prefix routing reaches a configured provider with any model id", async () => {
    const res = await post({ model: "openai/gpt-4o", messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(200);
    expect((mock.requests[0]!.body as { model: string }).model).toBe("gpt-4o");
  });

  it("egress outside the allowlist is refused by the enclave itself, before any connection", async () => {
    const egress = createEgressFetch({ allowlist: [new URL(mock.url).host], connectTimeoutMs: 1000, headersTimeoutMs: 1000 });
    const other = new URL(mock.url);
    other.port = String(Number(other.port) + 1);
    await expect(egress(`${other.origin}/v1/chat/completions`)).rejects.toMatchObject({ kind: "connect", message: expect.stringContaining("egress denied") });
    await expect(egress("http://169.254.169.254/latest/meta-data/")).rejects.toMatchObject({ kind: "connect" });
    const before = mock.requests.length;
    const ok = await egress(`${mock.url}/models`);
    expect(ok.status).toBe(200);
    expect(mock.requests.length).toBe(before + 1);
  });
});
