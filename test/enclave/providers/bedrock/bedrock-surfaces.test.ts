import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { startMockBedrock, type MockBedrock } from "../../../helpers/mock-bedrock.js";

/**
 * The Bedrock column of PROTOCOL.md §4's endpoint × provider table: every
 * surface other than chat (bedrock-gateway.test.ts) on a real boot with a
 * Bedrock route at the local mock, through the official SDKs. Translated
 * surfaces reach Converse (the mock sees each call); refused ones answer
 * 400 unsupported_capability (or the documented code) and send nothing.
 */
const CREDS = { accessKeyId: "AKIAMOCKBEDROCK00003", secretAccessKey: "mock-secret-access-key-surfaces-0123456", sessionToken: "mock-session-token-3" };
const REGION = "eu-west-1";
const MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0";

let mock: MockBedrock;
let h: Harness;
let openai: OpenAI;
let anthropic: Anthropic;

const converseCalls = () => mock.requests.filter((r) => r.operation === "converse" || r.operation === "converse-stream").length;

beforeAll(async () => {
  mock = await startMockBedrock({ credentials: CREDS, region: REGION, identity: { account: "444455556666", arn: "arn:aws:sts::444455556666:assumed-role/egw/i-1" } });
  h = await startHarness({
    config: configJson({
      providers: [{ name: "aws", kind: "bedrock", region: REGION, accountId: "444455556666", baseUrl: mock.url, stsUrl: mock.url }],
      models: { claude: { provider: "aws", model: MODEL } },
    }),
    awsCredentials: CREDS,
  });
  openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});

describe("bedrock on the translated surfaces", () => {
  it("POST /v1/responses: translated through Converse, streamed and not", async () => {
    mock.setScenario({ text: "Hallo", usage: { inputTokens: 4, outputTokens: 1 } });
    const before = converseCalls();
    const out = await openai.responses.create({ model: "claude", input: "Say hello in German", instructions: "Be brief." });
    expect(out.output_text).toBe("Hallo");
    expect(out.status).toBe("completed");
    expect(out.usage).toMatchObject({ input_tokens: 4, output_tokens: 1 });
    mock.setScenario({ text: ["Ein", "s"] });
    const stream = await openai.responses.create({ model: "claude", input: "count", stream: true });
    let text = "";
    let completed = false;
    for await (const e of stream) {
      if (e.type === "response.output_text.delta") text += e.delta;
      if (e.type === "response.completed") completed = true;
    }
    expect(text).toBe("Eins");
    expect(completed).toBe(true);
    expect(converseCalls()).toBe(before + 2);
  });

  it("POST /v1/responses with previous_response_id: 400 unsupported_parameter, nothing sent", async () => {
    const before = converseCalls();
    const err = await openai.responses.create({ model: "claude", input: "x", previous_response_id: "resp_1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_parameter");
    expect(converseCalls()).toBe(before);
  });

  it("POST /v1/completions (legacy): translated through chat", async () => {
    mock.setScenario({ text: " world" });
    const out = await openai.completions.create({ model: "claude", prompt: "hello" });
    expect(out.choices[0]!.text).toBe(" world");
  });

  it("POST /v1/messages/count_tokens: an estimate, marked as one, nothing sent", async () => {
    const before = converseCalls();
    const { data, response } = await anthropic.messages.countTokens({ model: "claude", messages: [{ role: "user", content: "How many tokens is this?" }] }).withResponse();
    expect(data.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get("x-egw-token-count")).toBe("estimate");
    expect(converseCalls()).toBe(before);
  });

  it("anthropic-beta on /v1/messages: refused (the beta cannot be honoured by translation), nothing sent", async () => {
    const before = converseCalls();
    const err = await anthropic.beta.messages
      .create({ model: "claude", max_tokens: 10, messages: [{ role: "user", content: "x" }], betas: ["interleaved-thinking-2025-05-14"] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(JSON.stringify((err as InstanceType<typeof Anthropic.BadRequestError>).error)).toContain("interleaved-thinking-2025-05-14");
    expect(converseCalls()).toBe(before);
  });
});

describe("bedrock on the refused surfaces: 400 unsupported_capability, nothing sent", () => {
  const refusedWith = async (call: Promise<unknown>) => {
    const before = mock.requests.length;
    const err = await call.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_capability");
    expect(mock.requests.length).toBe(before);
  };

  it("embeddings", () => refusedWith(openai.embeddings.create({ model: "claude", input: "x" })));
  it("images", () => refusedWith(openai.images.generate({ model: "claude", prompt: "a cat" })));
  it("moderations", () => refusedWith(openai.moderations.create({ model: "claude", input: "x" })));
  it("audio transcriptions (multipart as the SDK builds it, sent with the harness's fetch)", async () => {
    // The openai SDK refuses a custom fetch for uploads under Node 20's FormData, so the bytes are made by the same classes and posted directly.
    const form = new FormData();
    form.set("model", "claude");
    form.set("file", new File([new Uint8Array(await (await toFile(Buffer.from("RIFF0000WAVE"), "a.wav")).arrayBuffer())], "a.wav", { type: "audio/wav" }));
    const encoded = new Response(form);
    const before = mock.requests.length;
    const res = await h.fetch(`${h.baseURL}/audio/transcriptions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": encoded.headers.get("content-type")! },
      body: new Uint8Array(await encoded.arrayBuffer()),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_capability");
    expect(mock.requests.length).toBe(before);
  });
  it("audio speech", () => refusedWith(openai.audio.speech.create({ model: "claude", voice: "alloy", input: "hello" })));
  it("stored responses (GET /v1/responses/{id}): no provider stores them", async () => {
    const before = mock.requests.length;
    const err = await openai.responses.retrieve("resp_1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_parameter");
    expect(mock.requests.length).toBe(before);
  });
});
