import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import { RECEIPT_HEADER, receiptKeyFromSpki, verifyReceipt } from "../../../../attestation/receipt.js";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../../helpers/enclave-harness.js";
import { startMockBedrock, type MockBedrock } from "../../../helpers/mock-bedrock.js";

/**
 * Bedrock end to end: a real boot (bootEnclave over TLS, the STS identity
 * check, the derived egress allowlist) with a Bedrock provider pointed at
 * the local mock (baseUrl / stsUrl: development only), the official openai
 * and @anthropic-ai/sdk clients in front. Every request the adapter sends
 * is SigV4-signed and the mock verifies the signature with the same
 * credentials.
 */
const CREDS = { accessKeyId: "AKIAMOCKBEDROCK00002", secretAccessKey: "mock-secret-access-key-abcdef0123456789", sessionToken: "mock-session-token-2" };
const REGION = "us-west-2";
const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
let mock: MockBedrock;

beforeAll(async () => {
  mock = await startMockBedrock({ credentials: CREDS, region: REGION, identity: { account: "111122223333", arn: "arn:aws:sts::111122223333:assumed-role/egw-bedrock/i-0abc" } });
});
afterAll(() => mock.close());

function config(pins: Record<string, unknown> = { roleArn: "arn:aws:iam::111122223333:role/service/egw-bedrock" }): string {
  return configJson({
    providers: [{ name: "aws", kind: "bedrock", region: REGION, ...pins, baseUrl: mock.url, stsUrl: mock.url }],
    models: { claude: { provider: "aws", model: MODEL } },
  });
}

describe("bedrock through the gateway", () => {
  let h: Harness;
  let openai: OpenAI;
  let anthropic: Anthropic;
  beforeAll(async () => {
    mock.requests.length = 0;
    h = await startHarness({ config: config(), awsCredentials: CREDS });
    openai = new OpenAI({ baseURL: h.baseURL, apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: h.baseURL.replace(/\/v1$/, ""), apiKey: CLIENT_TOKEN, fetch: h.fetch, maxRetries: 0 });
  });
  afterAll(() => h.close());

  it("boots after STS confirmed the pinned role, and the egress allowlist holds the Bedrock and STS origins it derived", () => {
    expect(mock.requests[0]).toMatchObject({ operation: "sts", signatureValid: true });
    expect(h.enclave.config.egressAllowlist).toContain(new URL(mock.url).host);
  });

  it("chat, non-streamed: Converse with system, inferenceConfig, signed; the answer in OpenAI's shape", async () => {
    mock.setScenario({ text: "Bonjour", usage: { inputTokens: 9, outputTokens: 1 } });
    const out = await openai.chat.completions.create({
      model: "claude",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Say hello in French" },
      ],
      max_tokens: 50,
      temperature: 0.2,
    });
    expect(out.choices[0]).toMatchObject({ message: { role: "assistant", content: "Bonjour" }, finish_reason: "stop" });
    expect(out.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 });
    const seen = mock.requests.at(-1)!;
    expect(seen).toMatchObject({ operation: "converse", modelId: MODEL, signatureValid: true });
    expect(seen.headers["x-amz-security-token"]).toBe(CREDS.sessionToken);
    expect(seen.body).toEqual({
      messages: [{ role: "user", content: [{ text: "Say hello in French" }] }],
      system: [{ text: "Be brief." }],
      inferenceConfig: { maxTokens: 50, temperature: 0.2 },
    });
  });

  it("chat, streamed: ConverseStream's event stream becomes OpenAI chunks, usage last", async () => {
    mock.setScenario({ text: ["Un ", "deux ", "trois"] });
    const stream = await openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "count" }], stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null | undefined;
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("Un deux trois");
    expect(finish).toBe("stop");
    expect(usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 3 });
    expect(mock.requests.at(-1)).toMatchObject({ operation: "converse-stream", signatureValid: true });
  });

  it("tools: function tools become toolConfig; toolUse comes back as tool_calls, streamed and not; tool results go back as toolResult", async () => {
    const tools = [
      { type: "function" as const, function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } },
    ];
    mock.setScenario({ text: "", toolUses: [{ toolUseId: "tooluse_A", name: "get_weather", input: { city: "Oslo" } }] });
    const out = await openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "weather in Oslo" }], tools, tool_choice: "required" });
    expect(out.choices[0]!.finish_reason).toBe("tool_calls");
    expect(out.choices[0]!.message.tool_calls).toEqual([{ id: "tooluse_A", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }]);
    expect((mock.requests.at(-1)!.body as { toolConfig: unknown }).toolConfig).toEqual({
      tools: [{ toolSpec: { name: "get_weather", description: "Weather", inputSchema: { json: tools[0]!.function.parameters } } }],
      toolChoice: { any: {} },
    });

    const stream = await openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "weather in Oslo" }], tools, stream: true });
    let args = "";
    let id: string | undefined;
    for await (const chunk of stream) {
      const call = chunk.choices[0]?.delta.tool_calls?.[0];
      if (call?.id) id = call.id;
      args += call?.function?.arguments ?? "";
    }
    expect(id).toBe("tooluse_A");
    expect(JSON.parse(args)).toEqual({ city: "Oslo" });

    mock.setScenario({ text: "It is 3°C." });
    await openai.chat.completions.create({
      model: "claude",
      tools,
      messages: [
        { role: "user", content: "weather in Oslo" },
        { role: "assistant", content: null, tool_calls: [{ id: "tooluse_A", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
        { role: "tool", tool_call_id: "tooluse_A", content: "3°C" },
      ],
    });
    expect((mock.requests.at(-1)!.body as { messages: unknown }).messages).toEqual([
      { role: "user", content: [{ text: "weather in Oslo" }] },
      { role: "assistant", content: [{ toolUse: { toolUseId: "tooluse_A", name: "get_weather", input: { city: "Oslo" } } }] },
      { role: "user", content: [{ toolResult: { toolUseId: "tooluse_A", content: [{ text: "3°C" }] } }] },
    ]);
  });

  it("images: a data URL goes as bytes; a remote URL is refused before anything goes upstream", async () => {
    mock.setScenario({ text: "A pixel." });
    await openai.chat.completions.create({
      model: "claude",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${PNG_1PX}` } },
          ],
        },
      ],
    });
    expect((mock.requests.at(-1)!.body as { messages: { content: unknown[] }[] }).messages[0]!.content[1]).toEqual({ image: { format: "png", source: { bytes: PNG_1PX } } });
    const before = mock.requests.length;
    await expect(
      openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }),
    ).rejects.toMatchObject({ status: 400, code: "unsupported_capability" });
    expect(mock.requests.length).toBe(before);
  });

  it("errors: throttling → 429 RateLimitError; validation → 400 with Bedrock's message", async () => {
    mock.setScenario({ error: { status: 429, type: "ThrottlingException", message: "Too many requests, please wait before trying again." } });
    await expect(openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    mock.setScenario({ error: { status: 400, type: "ValidationException", message: "The model returned the following errors: max_tokens too large" } });
    const err = await openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain("max_tokens too large");
    mock.setScenario({});
  });

  it("a mid-stream exception event ends the OpenAI stream with an error, not a clean finish", async () => {
    mock.setScenario({ text: "one two three four", streamException: { afterEvents: 3, type: "throttlingException", message: "slow down" } });
    const stream = await openai.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "x" }], stream: true });
    let text = "";
    const consumed = (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    })();
    await expect(consumed).rejects.toBeDefined();
    expect(text).toBe("one two ");
    mock.setScenario({});
  });

  it("Anthropic messages surface (translated): create and stream, tools included", async () => {
    mock.setScenario({ text: "Hello from Bedrock" });
    const msg = await anthropic.messages.create({ model: "claude", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
    expect(msg.content).toMatchObject([{ type: "text", text: "Hello from Bedrock" }]);
    expect(msg.stop_reason).toBe("end_turn");
    mock.setScenario({ text: ["Hel", "lo"] });
    const stream = anthropic.messages.stream({ model: "claude", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
    let text = "";
    stream.on("text", (t) => {
      text += t;
    });
    const final = await stream.finalMessage();
    expect(text).toBe("Hello");
    expect(final.stop_reason).toBe("end_turn");
    mock.setScenario({ text: "", toolUses: [{ toolUseId: "tooluse_B", name: "lookup", input: { q: "x" } }] });
    const tooled = await anthropic.messages.create({
      model: "claude",
      max_tokens: 64,
      tools: [{ name: "lookup", input_schema: { type: "object", properties: { q: { type: "string" } } } }],
      messages: [{ role: "user", content: "look it up" }],
    });
    expect(tooled.stop_reason).toBe("tool_use");
    expect(tooled.content).toContainEqual(expect.objectContaining({ type: "tool_use", id: "tooluse_B", name: "lookup", input: { q: "x" } }));
    mock.setScenario({});
  });

  it("Gemini-native surface (translated): @google/genai generateContent and its stream, and embedContent refused (Bedrock serves no embeddings)", async () => {
    const ai = new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: h.baseURL.replace(/\/v1$/, ""), fetch: h.fetch } });
    mock.setScenario({ text: "Hallo" });
    const res = await ai.models.generateContent({ model: "claude", contents: "say hello", config: { systemInstruction: "be brief" } });
    expect(res.text).toBe("Hallo");
    expect(res.candidates![0]!.finishReason).toBe("STOP");
    expect((mock.requests.at(-1)!.body as { system: unknown }).system).toEqual([{ text: "be brief" }]);
    mock.setScenario({ text: ["Hal", "lo"] });
    let text = "";
    for await (const chunk of await ai.models.generateContentStream({ model: "claude", contents: "say hello" })) text += chunk.text ?? "";
    expect(text).toBe("Hallo");
    const before = mock.requests.length;
    await expect(ai.models.embedContent({ model: "claude", contents: "x" })).rejects.toMatchObject({ status: 400 });
    expect(mock.requests.length).toBe(before);
    mock.setScenario({});
  });

  it("the receipt covers the exact bytes and names Bedrock's origin and request id", async () => {
    mock.setScenario({ text: "receipted" });
    const body = JSON.stringify({ model: "claude", messages: [{ role: "user", content: "x" }] });
    const res = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" }, body });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const claims = verifyReceipt(new Uint8Array(Buffer.from(res.headers.get(RECEIPT_HEADER)!, "base64url")), {
      publicKey: receiptKeyFromSpki(h.enclave.identity.receipt.publicSpkiDer),
      requestBody: new TextEncoder().encode(body),
      responseBody: bytes,
    });
    expect(claims.upstream?.origin).toBe(new URL(mock.url).origin);
    expect(claims.upstream?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    mock.setScenario({});
  });

  it("every request the adapter sent carried a valid SigV4 signature", () => {
    expect(mock.requests.length).toBeGreaterThan(5);
    expect(mock.requests.every((r) => r.signatureValid)).toBe(true);
  });
});

describe("a hostile host and Bedrock credentials", () => {
  const converseCalls = () => mock.requests.filter((r) => r.operation === "converse" || r.operation === "converse-stream").length;

  it("credentials of another account → the boot stops (ERR_BEDROCK_IDENTITY) before any prompt leaves", async () => {
    mock.setIdentity({ account: "444455556666", arn: "arn:aws:sts::444455556666:assumed-role/egw-bedrock/i-0host" });
    const before = converseCalls();
    await expect(startHarness({ config: config({ accountId: "111122223333" }), awsCredentials: CREDS })).rejects.toMatchObject({
      code: "ERR_BEDROCK_IDENTITY",
      message: expect.stringContaining("444455556666"),
    });
    expect(converseCalls()).toBe(before);
  });

  it("a session of another role in the pinned account → refused when the policy pins the role", async () => {
    mock.setIdentity({ account: "111122223333", arn: "arn:aws:sts::111122223333:assumed-role/host-admin/i-0host" });
    await expect(startHarness({ config: config(), awsCredentials: CREDS })).rejects.toMatchObject({
      code: "ERR_BEDROCK_IDENTITY",
      message: expect.stringContaining("egw-bedrock"),
    });
  });

  it("no credentials handed in → the boot stops (ERR_BEDROCK_CREDENTIALS_MISSING)", async () => {
    await expect(startHarness({ config: config() })).rejects.toMatchObject({ code: "ERR_BEDROCK_CREDENTIALS_MISSING" });
  });

  it("credentials STS does not accept (wrong secret: SignatureDoesNotMatch) → the boot stops (ERR_BEDROCK_IDENTITY_UNCHECKED)", async () => {
    mock.setIdentity({ account: "111122223333", arn: "arn:aws:sts::111122223333:assumed-role/egw-bedrock/i-0abc" });
    await expect(startHarness({ config: config(), awsCredentials: { ...CREDS, secretAccessKey: "wrong-secret-000000000000000000000000000" } })).rejects.toMatchObject({
      code: "ERR_BEDROCK_IDENTITY_UNCHECKED",
    });
  });
});
