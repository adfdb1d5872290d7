import { describe, expect, it } from "vitest";
import { createBedrockAdapter, bedrockModelPath } from "../../../../enclave/providers/bedrock/bedrock-adapter.js";
import { toConverseRequest } from "../../../../enclave/providers/bedrock/convert-to-converse-request.js";
import type { ChatRequest, ProviderCallContext } from "../../../../enclave/providers/types.js";
import { bedrockEvent, bedrockException, bedrockRawEvent } from "../../../helpers/mock-bedrock.js";

/**
 * The Bedrock adapter against a hostile or broken upstream, byte by byte:
 * the event stream is cut, corrupted, oversized or ends early, and every
 * case ends as a typed UpstreamError, never a hang or a clean finish. Plus
 * the request mapping's refusals. The fetch here answers STS with the
 * pinned identity and Bedrock with the bytes each test chooses.
 */
const PINS = { region: "us-east-1", accountId: "111122223333", stsUrl: "https://sts.us-east-1.amazonaws.com" };
const CREDS = { accessKeyId: "AKIATEST", secretAccessKey: "secret" };
const STS_XML =
  '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::111122223333:assumed-role/r/s</Arn><UserId>AROA:s</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>';

function ctxWith(answer: (url: string) => Response): ProviderCallContext & { urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    fetch: async (url: string) => {
      urls.push(url);
      return url.startsWith(PINS.stsUrl) ? new Response(STS_XML, { status: 200, headers: { "content-type": "text/xml" } }) : answer(url);
    },
    signal: new AbortController().signal,
    upstreamModel: "anthropic.claude-3-haiku-20240307-v1:0",
    now: () => new Date("2026-06-01T12:00:00Z"),
  };
}

const stream = (...parts: Uint8Array[]) =>
  new Response(new Blob(parts.map((p) => new Uint8Array(p))).stream(), { status: 200, headers: { "content-type": "application/vnd.amazon.eventstream" } });
const request: ChatRequest = { model: "m", messages: [{ role: "user", content: "hi" }], stream: true };
const adapter = () => createBedrockAdapter({ name: "aws", baseUrl: "https://bedrock-runtime.us-east-1.amazonaws.com", pins: PINS, credentials: CREDS });

async function drain(ctx: ProviderCallContext): Promise<string> {
  let text = "";
  for await (const c of adapter().chatStream(request, ctx)) text += c.choices[0]?.delta.content ?? "";
  return text;
}

describe("bedrock stream, hostile upstream", () => {
  const start = bedrockEvent("messageStart", { role: "assistant" });
  const delta = bedrockEvent("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "hi" } });
  const stop = bedrockEvent("messageStop", { stopReason: "end_turn" });

  it("a well-formed stream, split at every byte boundary, still decodes", async () => {
    const all = Buffer.concat([start, delta, stop]);
    const ctx = ctxWith(() => stream(...[...all].map((b) => new Uint8Array([b]))));
    expect(await drain(ctx)).toBe("hi");
    expect(ctx.urls.map((u) => new URL(u).host)).toEqual(["sts.us-east-1.amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com"]);
    expect(ctx.urls[1]).toBe("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
  });

  it.each([
    ["ends before messageStop", () => stream(start, delta), "before messageStop"],
    ["ends inside a message", () => stream(start, delta.subarray(0, 20)), "inside a message"],
    ["a corrupted byte (CRC fails)", () => stream(start, Buffer.from(delta).fill(0x41, 20, 24)), "checksum"],
    ["a prelude claiming 64 MiB", () => stream(Buffer.from([0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), "outside"],
    ["a non-JSON payload", () => stream(start, bedrockRawEvent("contentBlockDelta", "not json")), "not a JSON object"],
    ["an event after messageStop", () => stream(start, stop, delta), "after messageStop"],
    [
      "a toolUse delta for no started block",
      () => stream(start, bedrockEvent("contentBlockDelta", { contentBlockIndex: 3, delta: { toolUse: { input: "{" } } })),
      "no started tool block",
    ],
  ])("%s → malformed", async (_what, body, message) => {
    await expect(drain(ctxWith(body))).rejects.toMatchObject({ code: "ERR_UPSTREAM_MALFORMED", message: expect.stringContaining(message) });
  });

  it("a mid-stream exception → an UpstreamError with Bedrock's status for it, never its message", async () => {
    const err = await drain(ctxWith(() => stream(start, delta, bedrockException("validationException", "prompt said: secret")))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_UPSTREAM_STATUS", status: 400 });
    expect(String((err as Error).message)).not.toContain("secret");
  });

  it("an answer that is not an event stream is refused", async () => {
    await expect(drain(ctxWith(() => new Response("{}", { status: 200, headers: { "content-type": "application/json" } })))).rejects.toMatchObject({
      code: "ERR_UPSTREAM_MALFORMED",
    });
  });
});

describe("bedrock request mapping refusals", () => {
  it.each([
    [
      "a remote image URL (Bedrock fetches none; the enclave will not)",
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }] },
      "unsupported_capability",
    ],
    [
      "an image type Bedrock does not take",
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/tiff;base64,AAAA" } }] }] },
      "unsupported_capability",
    ],
    ["n > 1", { messages: [{ role: "user", content: "x" }], n: 2 }, "unsupported_capability"],
    ["a JSON response_format", { messages: [{ role: "user", content: "x" }], response_format: { type: "json_object" } }, "unsupported_capability"],
    ["a conversation starting with the assistant", { messages: [{ role: "assistant", content: "x" }] }, "invalid_request"],
    [
      "tool arguments that are not JSON",
      {
        messages: [
          { role: "user", content: "x" },
          { role: "assistant", tool_calls: [{ id: "a", type: "function", function: { name: "f", arguments: "{" } }] },
        ],
      },
      "invalid_request",
    ],
    ["a temperature out of range", { messages: [{ role: "user", content: "x" }], temperature: 3 }, "invalid_request"],
  ])("%s", (_what, req, code) => {
    expect(() => toConverseRequest({ model: "m", ...req } as ChatRequest)).toThrow(expect.objectContaining({ code }));
  });

  it("adjacent turns of one role are merged (Converse wants them alternating); parallel tool results become one user turn", () => {
    const out = toConverseRequest({
      model: "m",
      tools: [{ type: "function", function: { name: "f" } }],
      messages: [
        { role: "user", content: "a" },
        { role: "user", content: "b" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "1", type: "function", function: { name: "f", arguments: "{}" } },
            { id: "2", type: "function", function: { name: "f", arguments: "{}" } },
          ],
        },
        { role: "tool", tool_call_id: "1", content: "r1" },
        { role: "tool", tool_call_id: "2", content: "r2" },
      ],
    } as ChatRequest);
    expect(out.messages.map((m) => [m.role, m.content.length])).toEqual([
      ["user", 2],
      ["assistant", 2],
      ["user", 2],
    ]);
    expect(out.toolConfig?.tools[0]).toEqual({ toolSpec: { name: "f", inputSchema: { json: { type: "object", properties: {} } } } });
  });

  it("model ids: one encoded path segment; traversal and stray characters refused", () => {
    expect(bedrockModelPath("arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0")).toBe(
      "arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20241022-v2%3A0",
    );
    for (const bad of ["..", ".", "a b", "a?b", "a#b", "a%2e", ""]) expect(() => bedrockModelPath(bad), bad).toThrow(expect.objectContaining({ code: "invalid_request" }));
  });
});
