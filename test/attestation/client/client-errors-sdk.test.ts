/**
 * What a developer sees in the official SDKs when verification fails, and
 * when the gateway itself answers an error: through createVerifiedFetch
 * (default: a local error Response, attestation/client/error-response.ts)
 * and through `egw proxy`. Real clients: openai, @anthropic-ai/sdk, and the
 * AI SDK (`ai` + @ai-sdk/openai, @ai-sdk/anthropic), each left with its own
 * default retry policy, so a retried refusal would show as extra
 * attestations. Attestation attempts are counted as TCP connections through
 * a loopback forwarder: the verifying client attests each connection once,
 * on that connection, before anything else.
 */
import net from "node:net";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import { ChatOpenAI } from "@langchain/openai";
import { APICallError, generateText, streamText } from "ai";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createVerifiedFetch, isClientErrorResponse, type ClientPolicy, type VerifiedFetch } from "../../../attestation/client/index.js";
import { hashToken } from "../../../enclave/auth.js";
import { startVerifyingProxy, type RunningProxy } from "../../../infra/cli/proxy.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { startMockAnthropic, type MockAnthropic } from "../../helpers/mock-anthropic.js";
import { startMockOpenAI, type MockOpenAI } from "../../helpers/mock-openai.js";
import { PCR0_OTHER, PCR0_TEST, startFakeGateway, type FakeGateway } from "./helpers.js";

const LIMITED_TOKEN = "egw-test-limited-token-0123";
const SLOW_TOKEN = "egw-test-slow-token-01234567";
const MAX_BODY = 4096;

/** A TCP forwarder that counts connections: each one is one attestation by the verifying client. */
interface Counter {
  origin: string;
  connections: number;
  close(): Promise<void>;
}
async function countingForwarder(target: string): Promise<Counter> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const counter: Counter = { origin: "", connections: 0, close: async () => {} };
  const server = net.createServer((client) => {
    counter.connections++;
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  counter.origin = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  counter.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return counter;
}

let h: Harness;
let upstreamOpenAI: MockOpenAI;
let upstreamAnthropic: MockAnthropic;
let counter: Counter;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  upstreamOpenAI = await startMockOpenAI();
  upstreamAnthropic = await startMockAnthropic();
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: upstreamOpenAI.url, secret: "OPENAI_API_KEY" },
        { name: "anthropic", kind: "anthropic", baseUrl: upstreamAnthropic.url, secret: "ANTHROPIC_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        gpt: { provider: "openai", model: "gpt-4o" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
      },
      clients: [
        { name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] },
        { name: "limited", tokenSha256: hashToken(LIMITED_TOKEN), models: ["local"] },
        { name: "slow", tokenSha256: hashToken(SLOW_TOKEN), models: ["*"], rateLimitPerMinute: 1 },
      ],
      // maxRetries 0: the gateway passes an upstream 429/500 on at once instead of retrying it itself.
      limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000, maxBodyBytes: MAX_BODY, maxRetries: 0 },
    }),
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-upstream-openai"],
      ["ANTHROPIC_API_KEY", "sk-ant-upstream"],
    ]),
  });
  counter = await countingForwarder(new URL(h.baseURL).origin);
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await counter?.close();
  await h?.close();
  await upstreamOpenAI?.close();
  await upstreamAnthropic?.close();
});
beforeEach(() => {
  counter.connections = 0;
});

const policyWith = (pcr0: Uint8Array): ClientPolicy => ({ measurements: [{ label: "test build", pcrs: new Map([[0, pcr0]]) }], trust: "any", trustedRoots: [h.anchor] });
function vfetch(pcr0: Uint8Array, extra: { verificationErrors?: "response" | "throw" } = {}): VerifiedFetch {
  const f = createVerifiedFetch({ baseURL: counter.origin, policy: policyWith(pcr0), ...extra });
  closers.push(() => f.close());
  return f;
}
async function proxyWith(pcr0: Uint8Array): Promise<RunningProxy> {
  const p = await startVerifyingProxy({ upstream: counter.origin, policy: policyWith(pcr0), host: "127.0.0.1", port: 0 });
  closers.push(() => p.close());
  return p;
}
async function caught(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error("expected an error");
}

const WRONG_PCR = /^406 ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none of the 1 allowed entr/;

/** The three SDKs, each at its default retry policy, pointed at a base (verified fetch, or the proxy's URL). */
const clients = (origin: string, fetch?: VerifiedFetch) => ({
  openai: new OpenAI({ baseURL: `${origin}/v1`, apiKey: CLIENT_TOKEN, ...(fetch && { fetch }) }),
  anthropic: new Anthropic({ baseURL: origin, apiKey: CLIENT_TOKEN, ...(fetch && { fetch }) }),
  aiOpenAI: createOpenAI({ baseURL: `${origin}/v1`, apiKey: CLIENT_TOKEN, ...(fetch && { fetch }) }),
  aiAnthropic: createAnthropic({ baseURL: `${origin}/v1`, apiKey: CLIENT_TOKEN, ...(fetch && { fetch }) }),
  genai: new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: origin, ...(fetch && { fetch }) } }),
  langchain: new ChatOpenAI({ model: "local", apiKey: CLIENT_TOKEN, configuration: { baseURL: `${origin}/v1`, ...(fetch && { fetch }) } }),
});

for (const via of ["createVerifiedFetch", "egw proxy"] as const) {
  describe(`a wrong PCR, through ${via}: the SDK's API error with the code, one attestation, no retry`, () => {
    const setup = async () => {
      if (via === "createVerifiedFetch") return clients(counter.origin, vfetch(PCR0_OTHER));
      return clients((await proxyWith(PCR0_OTHER)).url);
    };

    it("openai: APIError status 406 (not APIConnectionError), message and code name the check", async () => {
      const { openai } = await setup();
      const err = await caught(openai.chat.completions.create({ model: "local", messages: [{ role: "user", content: "secret prompt" }] }));
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err).not.toBeInstanceOf(OpenAI.APIConnectionError);
      expect(err.status).toBe(406);
      expect(err.message).toMatch(WRONG_PCR);
      expect(err).toMatchObject({ code: "ERR_MEASUREMENTS_NOT_ALLOWED", type: "egw_verification_failed" });
      const headers = err.headers as Headers;
      expect(headers.get("x-egw-client-error")).toBe("ERR_MEASUREMENTS_NOT_ALLOWED");
      expect(headers.get("x-should-retry")).toBe("false");
      expect(headers.get("x-egw-receipt")).toBeNull();
      expect(counter.connections).toBe(1);
    });

    it("anthropic: APIError status 406, the code in the message and apiMessage", async () => {
      const { anthropic } = await setup();
      const err = await caught(anthropic.messages.create({ model: "local", max_tokens: 16, messages: [{ role: "user", content: "secret prompt" }] }));
      expect(err).toBeInstanceOf(Anthropic.APIError);
      expect(err).not.toBeInstanceOf(Anthropic.APIConnectionError);
      expect(err.status).toBe(406);
      expect(err.message).toContain("ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none of the 1 allowed entr");
      expect(err.apiMessage).toMatch(/^ERR_MEASUREMENTS_NOT_ALLOWED: /);
      expect(err.type).toBe("egw_verification_failed");
      expect(counter.connections).toBe(1);
    });

    it("AI SDK (@ai-sdk/openai chat and Responses, @ai-sdk/anthropic): APICallError 406, not retryable, one attestation each", async () => {
      const { aiOpenAI, aiAnthropic } = await setup();
      const a = await caught(generateText({ model: aiOpenAI.chat("local"), prompt: "secret prompt" }));
      expect(APICallError.isInstance(a)).toBe(true);
      expect(a).toMatchObject({ statusCode: 406, isRetryable: false });
      expect(a.message).toMatch(/^ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none/);
      expect(counter.connections).toBe(1);
      const b = await caught(generateText({ model: aiAnthropic("local"), prompt: "secret prompt" }));
      expect(APICallError.isInstance(b)).toBe(true);
      expect(b).toMatchObject({ statusCode: 406, isRetryable: false });
      expect(b.message).toContain("ERR_MEASUREMENTS_NOT_ALLOWED");
      expect(counter.connections).toBe(2);
      // openai(model), the provider's default, speaks the Responses API: refused the same way, before any path matters.
      const c = await caught(generateText({ model: aiOpenAI("local"), prompt: "secret prompt" }));
      expect(c).toMatchObject({ statusCode: 406, isRetryable: false, url: expect.stringMatching(/\/v1\/responses$/) });
      expect(c.message).toMatch(/^ERR_MEASUREMENTS_NOT_ALLOWED: /);
      expect(counter.connections).toBe(3);
    });

    it("LangChain JS (ChatOpenAI, its default six retries): one attestation, the openai APIError 406 with the code", async () => {
      const { langchain } = await setup();
      const err = await caught(langchain.invoke("secret prompt"));
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBe(406);
      expect(err.message).toMatch(/^406 ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none/);
      expect(counter.connections).toBe(1);
    });

    it("@google/genai: ApiError status 406, the Google error body with the code", async () => {
      const { genai } = await setup();
      const err = await caught(genai.models.generateContent({ model: "local", contents: "secret prompt" }));
      expect(err.name).toBe("ApiError");
      expect(err.status).toBe(406);
      expect(JSON.parse(err.message)).toEqual({
        error: { code: 406, message: expect.stringMatching(/^ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none/), status: "EGW_VERIFICATION_FAILED" },
      });
      expect(counter.connections).toBe(1);
    });
  });
}

describe("the option and its control", () => {
  it('verificationErrors: "throw" gives the raw ClientError, which the SDK retries as a connection error (3 attestations)', async () => {
    const openai = new OpenAI({ baseURL: `${counter.origin}/v1`, apiKey: CLIENT_TOKEN, fetch: vfetch(PCR0_OTHER, { verificationErrors: "throw" }) });
    // The SDK's own backoff between attempts is ~0.5-2 s; the control needs it once.
    const err = await caught(openai.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] }, { maxRetries: 2 }));
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect((err.cause as { code?: string }).code).toBe("ERR_MEASUREMENTS_NOT_ALLOWED");
    expect(counter.connections).toBe(3);
  }, 20_000);

  it("healthz(): GET /healthz over an attested connection, without a receipt; a wrong PCR is refused there too", async () => {
    const { response, peer } = await vfetch(PCR0_TEST).healthz();
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
    expect(peer.measurement).toBe("test build");
    await expect(vfetch(PCR0_OTHER).healthz()).rejects.toMatchObject({ code: "ERR_MEASUREMENTS_NOT_ALLOWED" });
  });

  it("an unknown verificationErrors value is refused at creation", () => {
    expect(() => createVerifiedFetch({ baseURL: counter.origin, policy: policyWith(PCR0_TEST), verificationErrors: "ignore" as "throw" })).toThrow(
      expect.objectContaining({ code: "ERR_POLICY_INVALID" }),
    );
  });

  it("the right PCR passes, and the gateway's own answer is never marked as a client error", async () => {
    const f = vfetch(PCR0_TEST);
    const res = await f(`${counter.origin}/v1/models`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(isClientErrorResponse(res)).toBe(false);
    expect(res.headers.get("x-egw-receipt")).not.toBeNull();
  });

  it("a refusal answer is recognisable without an SDK: isClientErrorResponse, no receipt, the body's shape", async () => {
    const f = vfetch(PCR0_OTHER);
    const res = await f(`${counter.origin}/v1/messages`, { method: "POST", headers: { "x-api-key": CLIENT_TOKEN }, body: "{}" });
    expect(res.status).toBe(406);
    expect(isClientErrorResponse(res)).toBe(true);
    expect(res.headers.get("x-egw-receipt")).toBeNull();
    expect(await res.json()).toEqual({
      type: "error",
      error: { type: "egw_verification_failed", code: "ERR_MEASUREMENTS_NOT_ALLOWED", message: expect.stringMatching(/^ERR_MEASUREMENTS_NOT_ALLOWED: /) },
    });
  });

  it("a gateway that cannot be reached is a 502 the SDK may retry (x-should-retry: true), with the code", async () => {
    const closed = await countingForwarder("https://127.0.0.1:1");
    await closed.close();
    const f = createVerifiedFetch({ baseURL: closed.origin, policy: policyWith(PCR0_TEST) });
    closers.push(() => f.close());
    const res = await f(`${closed.origin}/v1/models`);
    expect(res.status).toBe(502);
    expect(res.headers.get("x-should-retry")).toBe("true");
    expect(await res.json()).toMatchObject({ error: { type: "egw_gateway_unavailable", code: "ERR_CONNECT" } });
  });
});

describe("a receipt failure, buffered and mid-stream, reaches the SDK with its code", () => {
  let fake: FakeGateway;
  let proxy: RunningProxy;
  beforeAll(async () => {
    fake = await startFakeGateway();
    const policy: ClientPolicy = { measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [fake.anchor] };
    const f = createVerifiedFetch({ baseURL: fake.baseURL, policy });
    closers.push(() => f.close());
    proxy = await startVerifyingProxy({ upstream: fake.origin, policy, host: "127.0.0.1", port: 0 });
    closers.push(
      () => proxy.close(),
      () => fake.close(),
    );
    fakeFetch = f;
  });
  let fakeFetch: VerifiedFetch;
  const posts = () => fake.requests.filter((r) => r === "POST /v1/chat/completions").length;

  for (const via of ["createVerifiedFetch", "egw proxy"] as const) {
    const sdk = () =>
      via === "createVerifiedFetch" ? new OpenAI({ baseURL: fake.baseURL, apiKey: "t", fetch: fakeFetch }) : new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "t" });

    it(`${via}, non-streamed altered body: APIError 406 ERR_RECEIPT_RESPONSE_MISMATCH, sent once`, async () => {
      fake.tamper = "flip-body";
      const before = posts();
      const err = await caught(sdk().chat.completions.create({ model: "fake", messages: [{ role: "user", content: "x" }] }));
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBe(406);
      expect(err.message).toMatch(/^406 ERR_RECEIPT_RESPONSE_MISMATCH: /);
      expect(posts() - before).toBe(1);
    });

    it(`${via}, streamed altered body: the stream throws an APIError carrying the code`, async () => {
      fake.tamper = "flip-body";
      const before = posts();
      let text = "";
      const err = await caught(
        (async () => {
          for await (const chunk of await sdk().chat.completions.create({ model: "fake", stream: true, messages: [{ role: "user", content: "x" }] })) {
            text += chunk.choices[0]?.delta?.content ?? "";
          }
        })(),
      );
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.message).toMatch(/^ERR_RECEIPT_RESPONSE_MISMATCH: the stream failed verification/);
      expect(err.code).toBe("ERR_RECEIPT_RESPONSE_MISMATCH");
      expect(text).toContain("Hello"); // control: events before the end passed on as they came
      expect(posts() - before).toBe(1);
    });

    it(`${via}, Anthropic stream whose receipt fails: the SDK throws an APIError carrying the code`, async () => {
      const anthropic = via === "createVerifiedFetch" ? new Anthropic({ baseURL: fake.origin, apiKey: "t", fetch: fakeFetch }) : new Anthropic({ baseURL: proxy.url, apiKey: "t" });
      const run = async (): Promise<string> => {
        let text = "";
        const stream = await anthropic.messages.create({ model: "fake", max_tokens: 16, stream: true, messages: [{ role: "user", content: "x" }] });
        for await (const event of stream) if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
        return text;
      };
      fake.tamper = "none";
      expect(await run()).toBe("Hello from the fake"); // control: the honest stream passes
      // A bad signature on the stream's receipt: the events themselves stay well-formed.
      fake.tamper = "flip-receipt";
      const err = await caught(run());
      expect(err).toBeInstanceOf(Anthropic.APIError);
      expect(err.message).toContain("ERR_SIGNATURE_INVALID: the stream failed verification");
    });

    const ai = () => createOpenAI(via === "createVerifiedFetch" ? { baseURL: fake.baseURL, apiKey: "t", fetch: fakeFetch } : { baseURL: `${proxy.url}/v1`, apiKey: "t" });

    it(`${via}, AI SDK: buffered, APICallError 406 not retryable; streamed, the error part carries the code`, async () => {
      fake.tamper = "flip-body";
      const before = posts();
      const err = await caught(generateText({ model: ai().chat("fake"), prompt: "x" }));
      expect(APICallError.isInstance(err)).toBe(true);
      expect(err).toMatchObject({ statusCode: 406, isRetryable: false });
      expect(err.message).toMatch(/^ERR_RECEIPT_RESPONSE_MISMATCH: /);
      expect(posts() - before).toBe(1);
      const errors: unknown[] = [];
      const result = streamText({ model: ai().chat("fake"), prompt: "x", onError: ({ error }) => void errors.push(error) });
      let text = "";
      // The error event becomes an error part (onError), then the cut body ends the stream in a throw.
      await caught(
        (async () => {
          for await (const part of result.textStream) text += part;
        })(),
      );
      expect(text).toContain("Hello");
      expect(JSON.stringify(errors.map((e) => (e instanceof Error ? e.message : e)))).toContain("ERR_RECEIPT_RESPONSE_MISMATCH: the stream failed verification");
      expect(posts() - before).toBe(2);
    });
  }
});

describe("the gateway's own errors reach the SDKs' own classes, with the message passed on", () => {
  const chatBody = (model: string, content = "hi") => ({ model, messages: [{ role: "user" as const, content }] });
  const f = () => vfetch(PCR0_TEST);
  const oa = (token = CLIENT_TOKEN) => new OpenAI({ baseURL: `${counter.origin}/v1`, apiKey: token, fetch: f(), maxRetries: 0 });
  const an = (token = CLIENT_TOKEN) => new Anthropic({ baseURL: counter.origin, apiKey: token, fetch: f(), maxRetries: 0 });
  const msg = (model: string, content = "hi") => ({ model, max_tokens: 16, messages: [{ role: "user" as const, content }] });

  it("401: AuthenticationError", async () => {
    const a = await caught(oa("wrong-token-0000000000").chat.completions.create(chatBody("local")));
    expect(a).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((a.headers as Headers).get("x-egw-receipt")).not.toBeNull();
    expect((a.headers as Headers).get("x-egw-client-error")).toBeNull();
    expect(await caught(an("wrong-token-0000000000").messages.create(msg("local")))).toBeInstanceOf(Anthropic.AuthenticationError);
  });

  it("403 (model not allowed for this token): PermissionDeniedError", async () => {
    expect(await caught(oa(LIMITED_TOKEN).chat.completions.create(chatBody("gpt")))).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(await caught(an(LIMITED_TOKEN).messages.create(msg("claude")))).toBeInstanceOf(Anthropic.PermissionDeniedError);
  });

  it("404 (unknown model): NotFoundError", async () => {
    expect(await caught(oa().chat.completions.create(chatBody("no-such-model")))).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await caught(an().messages.create(msg("no-such-model")))).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it("413 (body over the limit): APIError with status 413", async () => {
    const big = "x".repeat(MAX_BODY * 2);
    const a = await caught(oa().chat.completions.create(chatBody("local", big)));
    expect(a).toBeInstanceOf(OpenAI.APIError);
    expect(a.status).toBe(413);
    const b = await caught(an().messages.create(msg("local", big)));
    expect(b).toBeInstanceOf(Anthropic.APIError);
    expect(b.status).toBe(413);
  });

  it("429 (client rate limit): RateLimitError", async () => {
    const client = oa(SLOW_TOKEN);
    await client.chat.completions.create(chatBody("local"));
    expect(await caught(client.chat.completions.create(chatBody("local")))).toBeInstanceOf(OpenAI.RateLimitError);
    expect(await caught(an(SLOW_TOKEN).messages.create(msg("local")))).toBeInstanceOf(Anthropic.RateLimitError);
  });

  it("an upstream 400: BadRequestError with the provider's own explanation", async () => {
    upstreamOpenAI.queueScenarios({ status: 400, errorMessage: "Invalid value for 'temperature': must be at most 2." });
    const a = await caught(oa().chat.completions.create(chatBody("gpt")));
    expect(a).toBeInstanceOf(OpenAI.BadRequestError);
    expect(a.message).toContain("Invalid value for 'temperature': must be at most 2.");
    upstreamAnthropic.enqueue({ status: 400, errorMessage: "max_tokens: must be at most 64000" });
    const b = await caught(an().messages.create(msg("claude")));
    expect(b).toBeInstanceOf(Anthropic.BadRequestError);
    expect(b.message).toContain("max_tokens: must be at most 64000");
  });

  it("an upstream 429 is RateLimitError, an upstream 500 InternalServerError (both the gateway's, with receipts)", async () => {
    upstreamOpenAI.queueScenarios({ status: 429, retryAfter: "1" }, { status: 500 });
    const limited = await caught(oa().chat.completions.create(chatBody("gpt")));
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect((limited.headers as Headers).get("x-egw-receipt")).not.toBeNull();
    const failed = await caught(oa().chat.completions.create(chatBody("gpt")));
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect((failed.headers as Headers).get("x-egw-client-error")).toBeNull();
    upstreamAnthropic.enqueue({ status: 429, retryAfter: "1" }, { status: 500 });
    expect(await caught(an().messages.create(msg("claude")))).toBeInstanceOf(Anthropic.RateLimitError);
    expect(await caught(an().messages.create(msg("claude")))).toBeInstanceOf(Anthropic.InternalServerError);
  });
});
