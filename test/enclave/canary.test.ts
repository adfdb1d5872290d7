import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../enclave/auth.js";
import { startHarness, type Harness } from "../helpers/enclave-harness.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * No content in logs or metrics: canaries in prompts, answers, provider
 * keys and client tokens go through every path, error paths included, and
 * none may show up in any log line or metric — in plaintext, base64 or hex.
 * A control assertion proves the canaries really went through.
 */
const PROMPT = "CANARYPROMPT7f3a9";
const ANSWER = "CANARYANSWER2b8c4";
const PROVIDER_KEY = "sk-CANARYPROVIDERKEY91d2";
const TOKEN = "CANARYCLIENTTOKEN55e1";
const CANARIES = [PROMPT, ANSWER, PROVIDER_KEY, TOKEN];

function encodings(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString("base64"), b.toString("base64url"), b.toString("hex"), s.toLowerCase()];
}

let mock: MockOpenAI;
let h: Harness;

beforeAll(async () => {
  mock = await startMockOpenAI({ scenario: { content: `here is ${ANSWER} for you` } });
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mock.url, secret: "OPENAI_API_KEY" },
      ],
      models: { gpt: { provider: "openai", model: "gpt-4o-mini" }, local: { provider: "local", model: "local" } },
      prefixRouting: true,
      egressAllowlist: [new URL(mock.url).host],
      clients: [{ name: "canary", tokenSha256: hashToken(TOKEN), models: ["*"] }],
      limits: { maxRetries: 1, retryBaseDelayMs: 1, retryMaxDelayMs: 2, idleTimeoutMs: 300, firstByteTimeoutMs: 500, maxBodyBytes: 4096 },
    }),
    secrets: new Map([["OPENAI_API_KEY", PROVIDER_KEY]]),
  });
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});

describe("canaries never reach logs or metrics", () => {
  it("after every path: success, stream, tools, and each error path", async () => {
    const client = new OpenAI({ baseURL: h.baseURL, apiKey: TOKEN, fetch: h.fetch, maxRetries: 0 });
    const messages = [{ role: "user" as const, content: `please repeat ${PROMPT}` }];
    const post = (body: string, token = TOKEN) =>
      h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });

    // Success, non-streamed and streamed, upstream and local.
    const ok = await client.chat.completions.create({ model: "gpt", messages });
    expect(ok.choices[0]!.message.content).toContain(ANSWER); // control: the answer canary went through
    expect(mock.requests.at(-1)!.rawBody.toString()).toContain(PROMPT); // control: the prompt reached upstream
    expect(mock.requests.at(-1)!.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`); // control: the key was used
    let streamed = "";
    for await (const chunk of await client.chat.completions.create({ model: "gpt", messages, stream: true })) streamed += chunk.choices[0]?.delta?.content ?? "";
    expect(streamed).toContain(ANSWER);
    await client.chat.completions.create({ model: "local", messages });
    await client.chat.completions.create({
      model: "local",
      messages,
      tools: [{ type: "function", function: { name: "echo", parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } } }],
    });

    // Error paths.
    expect((await post(JSON.stringify({ model: "gpt", messages }), `wrong-${TOKEN}`)).status).toBe(401);
    expect((await post(JSON.stringify({ model: `model-${PROMPT}`, messages }))).status).toBe(404);
    expect((await post(`{"model": "gpt", "messages": "${PROMPT}"`)).status).toBe(400);
    expect((await post(JSON.stringify({ model: "gpt", messages: [{ role: "user", content: PROMPT.repeat(400) }] }))).status).toBe(413);
    mock.setScenario({ status: 500, errorMessage: `upstream failed on ${PROMPT} with key ${PROVIDER_KEY}` });
    expect((await post(JSON.stringify({ model: "gpt", messages }))).status).toBe(502);
    mock.setScenario({ status: 429, retryAfter: "0", errorMessage: `rate limited ${PROMPT}` });
    expect((await post(JSON.stringify({ model: "gpt", messages }))).status).toBe(429);
    mock.setScenario({ content: `${ANSWER} ${ANSWER} ${ANSWER}`, destroyAfterChunks: 2 });
    const cut = await post(JSON.stringify({ model: "gpt", messages, stream: true }));
    expect(await cut.text()).toContain("error");
    mock.setScenario({ content: `${ANSWER} x y z`, malformedChunkAt: 1 });
    await (await post(JSON.stringify({ model: "gpt", messages, stream: true }))).text();
    mock.setScenario({ content: `${ANSWER} x y z`, stallAfterChunks: 1 });
    await (await post(JSON.stringify({ model: "gpt", messages, stream: true }))).text();
    mock.releaseStalled();

    // The Anthropic surface, x-api-key auth included.
    mock.setScenario({ content: `here is ${ANSWER} for you` });
    const ant = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: TOKEN, fetch: h.fetch, maxRetries: 0 });
    const msg = await ant.messages.create({ model: "gpt", max_tokens: 50, messages: [{ role: "user", content: `repeat ${PROMPT}` }] });
    expect(JSON.stringify(msg.content)).toContain(ANSWER);
    await ant.messages.stream({ model: "gpt", max_tokens: 50, messages: [{ role: "user", content: `repeat ${PROMPT}` }] }).finalMessage();
    const antBad = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: `x${TOKEN}`, fetch: h.fetch, maxRetries: 0 });
    await expect(antBad.messages.create({ model: "gpt", max_tokens: 5, messages: [{ role: "user", content: PROMPT }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    mock.setScenario({ status: 500, errorMessage: `failed ${PROMPT}` });
    await expect(ant.messages.create({ model: "gpt", max_tokens: 5, messages: [{ role: "user", content: PROMPT }] })).rejects.toBeInstanceOf(Anthropic.InternalServerError);
    mock.setScenario(undefined);

    const metrics = await (await h.fetch(h.baseURL.replace(/\/v1$/, "/metrics"))).text();
    expect(metrics).toContain("egw_requests_total"); // control: metrics exist
    expect(h.logs.length).toBeGreaterThan(10); // control: logs exist
    const haystack = `${h.logs.join("\n")}\n${metrics}`;
    for (const canary of CANARIES) {
      for (const form of encodings(canary)) expect(haystack).not.toContain(form);
    }
  });
});
