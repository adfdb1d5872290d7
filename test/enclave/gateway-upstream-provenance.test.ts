import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeReceipt, MAX_UPSTREAM_REQUEST_ID, RECEIPT_HEADER, splitStreamReceipt, type ReceiptClaims } from "../../attestation/receipt.js";
import { hashToken } from "../../enclave/auth.js";
import { DEFAULT_EGRESS_LIMITS, startEgressProxy } from "../../host/egress/index.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { startMockAnthropic, type MockAnthropic } from "../helpers/mock-anthropic.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";
import { startTlsFront, type TlsFront } from "../helpers/tls-front.js";

/**
 * Receipts name the upstream that answered: the SHA-256 of the TLS leaf's
 * SPKI verified on the connection that carried the answer, and the
 * provider's request id. Upstreams are local mocks behind local TLS fronts,
 * each with its own fresh certificate whose SPKI hash the test computes
 * from the PEM itself.
 */
let openaiMock: MockOpenAI;
let otherMock: MockOpenAI;
let anthropicMock: MockAnthropic;
let fronts: { openai: TlsFront; other: TlsFront; anthropic: TlsFront };
let h: Harness;

const hostOf = (u: string) => new URL(u).host;
const hex = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString("hex"));

beforeAll(async () => {
  openaiMock = await startMockOpenAI();
  otherMock = await startMockOpenAI();
  anthropicMock = await startMockAnthropic({ apiKey: "sk-ant-test" });
  fronts = {
    openai: await startTlsFront(openaiMock.url),
    other: await startTlsFront(otherMock.url),
    anthropic: await startTlsFront(anthropicMock.url),
  };
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: fronts.openai.url, secret: "K" },
        { name: "other", kind: "openai-compatible", baseUrl: fronts.other.url },
        { name: "plain", kind: "openai-compatible", baseUrl: otherMock.url },
        { name: "anthropic", kind: "anthropic", baseUrl: fronts.anthropic.url, secret: "A" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        gpt: { provider: "openai", model: "gpt-4o" },
        other: { provider: "other", model: "other-model" },
        plain: { provider: "plain", model: "plain-model" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
        flaky: { provider: "openai", model: "gpt-4o", fallbacks: ["other"] },
      },
      egressAllowlist: [fronts.openai.host, fronts.other.host, fronts.anthropic.host, hostOf(otherMock.url)],
      clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
      limits: { maxRetries: 0 },
    }),
    secrets: new Map([
      ["K", "sk-openai-test"],
      ["A", "sk-ant-test"],
    ]),
    upstreamCa: fronts.openai.allCertsPem + fronts.other.allCertsPem + fronts.anthropic.certPem,
  });
});
afterAll(async () => {
  await h?.close();
  await Promise.all(Object.values(fronts ?? {}).map((f) => f.close()));
  await Promise.all([openaiMock, otherMock, anthropicMock].map((m) => m?.close()));
});

interface Answer {
  status: number;
  claims: ReceiptClaims;
}

async function call(harness: Harness, path: string, body: Record<string, unknown>): Promise<Answer> {
  const res = await harness.fetch(`${harness.baseURL}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json", "anthropic-version": "2023-06-01" },
    body: JSON.stringify(body),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (body.stream === true) {
    const split = splitStreamReceipt(bytes);
    expect(split, "stream ends with a receipt").not.toBeNull();
    return { status: res.status, claims: decodeReceipt(split!.receipt).claims };
  }
  const header = res.headers.get(RECEIPT_HEADER);
  expect(header).toBeTruthy();
  return { status: res.status, claims: decodeReceipt(new Uint8Array(Buffer.from(header!, "base64url"))).claims };
}

const chat = (model: string, stream = false) => ({ model, stream, messages: [{ role: "user", content: "hello" }] });
const message = (model: string, stream = false) => ({ model, stream, max_tokens: 16, messages: [{ role: "user", content: "hello" }] });

describe("receipt upstream.tls_spki_sha256 and request_id", () => {
  it("OpenAI, non-streamed: the leaf's SPKI hash and x-request-id", async () => {
    openaiMock.queueScenarios({ headers: { "x-request-id": "req_openai_abc" } });
    const { status, claims } = await call(h, "/chat/completions", chat("gpt"));
    expect(status).toBe(200);
    expect(claims.upstream?.origin).toBe(new URL(fronts.openai.url).origin);
    expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.openai.spkiSha256);
    expect(claims.upstream?.requestId).toBe("req_openai_abc");
    // The model the provider reported (the route's upstream model), not the alias asked for.
    expect(claims.model).toBe("gpt");
    expect(claims.upstream?.model).toBe("gpt-4o");
  });

  it("OpenAI, streamed: the same, in the receipt at the stream's end", async () => {
    openaiMock.queueScenarios({ headers: { "x-request-id": "req_openai_stream" } });
    const { status, claims } = await call(h, "/chat/completions", chat("gpt", true));
    expect(status).toBe(200);
    expect(claims.stream).toBe(true);
    expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.openai.spkiSha256);
    expect(claims.upstream?.requestId).toBe("req_openai_stream");
    expect(claims.upstream?.model).toBe("gpt-4o");
  });

  it("Anthropic (native /v1/messages), non-streamed and streamed: the leaf's SPKI hash and request-id", async () => {
    for (const stream of [false, true]) {
      const before = anthropicMock.requests.length;
      const { status, claims } = await call(h, "/messages", message("claude", stream));
      expect(status).toBe(200);
      expect(claims.surface).toBe("messages");
      expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.anthropic.spkiSha256);
      expect(claims.upstream?.requestId).toBe(`req_mock_${before + 1}`);
    }
  });

  it("the messages surface: the model the provider reported, native or translated, streamed or not", async () => {
    for (const stream of [false, true]) {
      anthropicMock.enqueue({ model: "claude-sonnet-4-5-20250929" });
      const native = await call(h, "/messages", message("claude", stream));
      expect(native.claims.model).toBe("claude");
      expect(native.claims.upstream?.model).toBe("claude-sonnet-4-5-20250929");
      const translated = await call(h, "/messages", message("gpt", stream));
      expect(translated.claims.model).toBe("gpt");
      expect(translated.claims.upstream?.model).toBe("gpt-4o");
      expect(hex(translated.claims.upstream?.tlsSpkiSha256)).toBe(fronts.openai.spkiSha256);
    }
  });

  it("Anthropic through the OpenAI surface: the model is the one Anthropic reported", async () => {
    anthropicMock.enqueue({ model: "claude-sonnet-4-5-20250929" }, { model: "claude-sonnet-4-5-20250929" });
    for (const stream of [false, true]) {
      const { claims } = await call(h, "/chat/completions", chat("claude", stream));
      expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.anthropic.spkiSha256);
      expect(claims.upstream?.requestId).toMatch(/^req_mock_\d+$/);
      expect(claims.upstream?.model).toBe("claude-sonnet-4-5-20250929");
    }
  });

  it("two upstreams with different certificates, interleaved over kept-alive connections: each receipt names its own", async () => {
    expect(fronts.openai.spkiSha256).not.toBe(fronts.other.spkiSha256);
    for (let i = 0; i < 3; i++) {
      for (const [model, front] of [
        ["gpt", fronts.openai],
        ["other", fronts.other],
      ] as const) {
        const { claims } = await call(h, "/chat/completions", chat(model, i % 2 === 1));
        expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(front.spkiSha256);
      }
    }
  });

  it("a reconnect after the upstream dropped the connection records the new connection's peer", async () => {
    await call(h, "/chat/completions", chat("other"));
    const before = fronts.other.connections();
    fronts.other.dropConnections();
    const { claims } = await call(h, "/chat/completions", chat("other"));
    expect(fronts.other.connections()).toBeGreaterThan(before);
    expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.other.spkiSha256);
  });

  it("same host, new certificate: the receipt follows the connection, not a record kept by host", async () => {
    const first = await call(h, "/chat/completions", chat("other"));
    const old = fronts.other.spkiSha256;
    expect(hex(first.claims.upstream?.tlsSpkiSha256)).toBe(old);
    fronts.other.rotate();
    expect(fronts.other.spkiSha256).not.toBe(old);
    for (const stream of [false, true]) {
      const { claims } = await call(h, "/chat/completions", chat("other", stream));
      expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.other.spkiSha256);
    }
  });

  it("after a failed attempt, the receipt names the fallback that answered, with its request id", async () => {
    openaiMock.queueScenarios({ status: 503, headers: { "x-request-id": "req_failed" } });
    otherMock.queueScenarios({ headers: { "x-request-id": "req_fallback" } });
    const { status, claims } = await call(h, "/chat/completions", chat("flaky"));
    expect(status).toBe(200);
    expect(claims.provider).toBe("other");
    expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.other.spkiSha256);
    expect(claims.upstream?.requestId).toBe("req_fallback");
  });

  it("a long request id is cut to MAX_UPSTREAM_REQUEST_ID bytes and stripped of control characters", async () => {
    const long = `req\tid-${"x".repeat(400)}`;
    openaiMock.queueScenarios({ headers: { "x-request-id": long } });
    const { claims } = await call(h, "/chat/completions", chat("gpt"));
    const id = claims.upstream?.requestId;
    expect(id).toBeDefined();
    expect(id!.startsWith("reqid-xxx")).toBe(true);
    expect(Buffer.byteLength(id!)).toBe(MAX_UPSTREAM_REQUEST_ID);
    expect(id).not.toMatch(/[\u0000-\u001f\u007f]/);
  });

  it("a request id of control characters only is left out", async () => {
    openaiMock.queueScenarios({ headers: { "x-request-id": "\t\t" } });
    const { claims } = await call(h, "/chat/completions", chat("gpt"));
    expect(claims.upstream).toBeDefined();
    expect(claims.upstream && "requestId" in claims.upstream).toBe(false);
    expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.openai.spkiSha256);
  });

  it("a plain-http upstream: request id, no TLS key", async () => {
    otherMock.queueScenarios({ headers: { "x-request-id": "req_plain" } });
    const { claims } = await call(h, "/chat/completions", chat("plain"));
    expect(claims.upstream?.origin).toBe(new URL(otherMock.url).origin);
    expect(claims.upstream?.requestId).toBe("req_plain");
    expect(claims.upstream && "tlsSpkiSha256" in claims.upstream).toBe(false);
  });

  it("the built-in model: neither", async () => {
    for (const stream of [false, true]) {
      const { claims } = await call(h, "/chat/completions", chat("local", stream));
      expect(claims.upstream?.origin).toBe("local");
      expect(claims.upstream && "tlsSpkiSha256" in claims.upstream).toBe(false);
      expect(claims.upstream && "requestId" in claims.upstream).toBe(false);
    }
  });

  it("an upstream error's receipt claims no upstream", async () => {
    openaiMock.queueScenarios({ status: 500, headers: { "x-request-id": "req_500" } });
    const { status, claims } = await call(h, "/chat/completions", chat("gpt"));
    expect(status).toBe(502);
    expect(claims.upstream).toBeUndefined();
  });
});

describe("through the host's CONNECT proxy", () => {
  let proxied: Harness;
  let proxy: Awaited<ReturnType<typeof startEgressProxy>>;

  beforeAll(async () => {
    proxy = await startEgressProxy({
      listen: { host: "127.0.0.1", port: 0 },
      rules: [{ host: "127.0.0.1", port: Number(new URL(fronts.openai.url).port), allowPrivate: true }],
      limits: DEFAULT_EGRESS_LIMITS,
      registry: new Registry(),
    });
    proxied = await startHarness({
      config: JSON.stringify({
        version: 1,
        providers: [{ name: "openai", kind: "openai", baseUrl: fronts.openai.url, secret: "K" }],
        models: { gpt: { provider: "openai", model: "gpt-4o" } },
        egressAllowlist: [fronts.openai.host],
        clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
        limits: { maxRetries: 0 },
      }),
      secrets: new Map([["K", "sk-proxy"]]),
      egressProxy: `http://127.0.0.1:${proxy.port}`,
      upstreamCa: fronts.openai.certPem,
    });
  });
  afterAll(async () => {
    await proxied?.close();
    await proxy?.close({ drainMs: 100 });
  });

  it("the TLS inside the tunnel is the enclave's: the receipt names the provider's leaf, streamed or not", async () => {
    for (const stream of [false, true]) {
      const before = openaiMock.requests.length;
      openaiMock.queueScenarios({ headers: { "x-request-id": `req_tunnel_${stream}` } });
      const { status, claims } = await call(proxied, "/chat/completions", chat("gpt", stream));
      expect(status).toBe(200);
      expect(openaiMock.requests.length).toBe(before + 1);
      expect(hex(claims.upstream?.tlsSpkiSha256)).toBe(fronts.openai.spkiSha256);
      expect(claims.upstream?.requestId).toBe(`req_tunnel_${stream}`);
    }
  });
});
