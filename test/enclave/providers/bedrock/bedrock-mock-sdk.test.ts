import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMockBedrock, type MockBedrock } from "../../../helpers/mock-bedrock.js";

/**
 * The mock's wire format, proved with AWS's own clients: the official
 * @aws-sdk/client-bedrock-runtime (Converse, ConverseStream: JSON and the
 * binary event stream) and @aws-sdk/client-sts (query-protocol XML) read
 * what test/helpers/mock-bedrock.ts sends, and the mock accepts the SDK's
 * SigV4 signatures while refusing a wrong key, as AWS does.
 */
const CREDS = { accessKeyId: "AKIAMOCKBEDROCK00001", secretAccessKey: "mock-secret-access-key-0123456789abcdef", sessionToken: "mock-session-token" };
const REGION = "us-east-1";
const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
let mock: MockBedrock;

beforeAll(async () => {
  mock = await startMockBedrock({ credentials: CREDS, region: REGION });
});
afterAll(() => mock.close());

// HTTP/1.1 (the mock is a node:http server); the client's default for ConverseStream is HTTP/2, which Bedrock also speaks.
const client = (credentials = CREDS) => new BedrockRuntimeClient({ region: REGION, endpoint: mock.url, credentials, maxAttempts: 1, requestHandler: new NodeHttpHandler() });

describe("mock Bedrock against the official AWS SDK", () => {
  it("Converse: text answer, stop reason and usage, with the SDK's SigV4 signature verified", async () => {
    mock.setScenario({ text: "Hi there", usage: { inputTokens: 5, outputTokens: 2 } });
    const out = await client().send(new ConverseCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "hello" }] }] }));
    expect(out.output?.message?.content?.[0]?.text).toBe("Hi there");
    expect(out.stopReason).toBe("end_turn");
    expect(out.usage).toMatchObject({ inputTokens: 5, outputTokens: 2, totalTokens: 7 });
    const seen = mock.requests.at(-1)!;
    expect(seen).toMatchObject({ operation: "converse", modelId: MODEL, signatureValid: true });
    // The SDK percent-encodes the model id as one path segment.
    expect(seen.path).toBe(`/model/${encodeURIComponent(MODEL)}/converse`);
  });

  it("ConverseStream: the binary event stream decodes into the SDK's events, tool use included", async () => {
    mock.setScenario({ text: "Let me check. ", toolUses: [{ toolUseId: "tooluse_1", name: "get_weather", input: { city: "Paris" } }] });
    const out = await client().send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "weather?" }] }] }));
    const kinds: string[] = [];
    let text = "";
    let args = "";
    let stop: string | undefined;
    for await (const event of out.stream!) {
      const kind = Object.keys(event).find((k) => (event as unknown as Record<string, unknown>)[k] !== undefined)!;
      kinds.push(kind);
      if (event.contentBlockDelta?.delta?.text) text += event.contentBlockDelta.delta.text;
      if (event.contentBlockDelta?.delta?.toolUse?.input) args += event.contentBlockDelta.delta.toolUse.input;
      if (event.contentBlockStart?.start?.toolUse) expect(event.contentBlockStart.start.toolUse).toMatchObject({ toolUseId: "tooluse_1", name: "get_weather" });
      if (event.messageStop) stop = event.messageStop.stopReason;
    }
    expect(kinds[0]).toBe("messageStart");
    expect(kinds).toContain("contentBlockStart");
    expect(kinds.slice(-2)).toEqual(["messageStop", "metadata"]);
    expect(text).toBe("Let me check. ");
    expect(JSON.parse(args)).toEqual({ city: "Paris" });
    expect(stop).toBe("tool_use");
  });

  it("a mid-stream exception event reaches the SDK as that exception", async () => {
    mock.setScenario({ text: "one two three", streamException: { afterEvents: 2, type: "throttlingException", message: "Too many tokens, please wait" } });
    const out = await client().send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "x" }] }] }));
    await expect(
      (async () => {
        for await (const _ of out.stream!) void _;
      })(),
    ).rejects.toMatchObject({ name: "ThrottlingException" });
  });

  it("errors carry x-amzn-errortype and the message, as the SDK parses them", async () => {
    mock.setScenario({ error: { status: 400, type: "ValidationException", message: "The provided model identifier is invalid." } });
    await expect(client().send(new ConverseCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "x" }] }] }))).rejects.toMatchObject({
      name: "ValidationException",
      message: "The provided model identifier is invalid.",
      $metadata: { httpStatusCode: 400 },
    });
    mock.setScenario({});
  });

  it("a request signed with another secret key is refused (InvalidSignatureException): the mock really checks SigV4", async () => {
    const wrong = client({ ...CREDS, secretAccessKey: "not-the-secret-0000000000000000000000000" });
    await expect(wrong.send(new ConverseCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "x" }] }] }))).rejects.toMatchObject({
      name: "InvalidSignatureException",
      $metadata: { httpStatusCode: 403 },
    });
    expect(mock.requests.at(-1)!.signatureValid).toBe(false);
  });

  it("STS GetCallerIdentity: the SDK reads the mock's XML identity", async () => {
    mock.setIdentity({ account: "444455556666", arn: "arn:aws:sts::444455556666:assumed-role/other/session" });
    const sts = new STSClient({ region: REGION, endpoint: mock.url, credentials: CREDS, maxAttempts: 1 });
    const who = await sts.send(new GetCallerIdentityCommand({}));
    expect(who).toMatchObject({ Account: "444455556666", Arn: "arn:aws:sts::444455556666:assumed-role/other/session" });
    expect(mock.requests.at(-1)).toMatchObject({ operation: "sts", signatureValid: true });
  });
});
