import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { post, receiptOf } from "../../helpers/gateway-app.js";
import { mockTokenCount } from "../../helpers/mock-anthropic.js";
import { startApisFixture, type ApisFixture } from "./apis-fixture.js";

/**
 * POST /v1/messages/count_tokens on every provider kind, and the client's
 * anthropic-version / anthropic-beta headers: forwarded on native routes,
 * bounded, and refused on translated routes.
 */
let f: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture();
});
afterAll(() => f.close());
beforeEach(() => {
  f.anthropicMock.requests.length = 0;
  f.geminiMock.requests.length = 0;
});

const MESSAGES = [{ role: "user" as const, content: "count these five words" }];

describe("count_tokens", () => {
  it("anthropic: passed through to Anthropic's count_tokens, body exactly {input_tokens}", async () => {
    const count = await f.anthropic.messages.countTokens({ model: "claude", messages: MESSAGES, system: "be brief" });
    expect(count).toEqual({ input_tokens: mockTokenCount({ system: "be brief", messages: MESSAGES }) });
    const sent = f.anthropicMock.requests.at(-1)!;
    expect(sent.path).toBe("/v1/messages/count_tokens");
    expect(sent.body.model).toBe("claude-sonnet-4-5");
    const raw = await post(f.g, "/v1/messages/count_tokens", { model: "claude", messages: MESSAGES }, { "anthropic-version": "2023-06-01" });
    expect(raw.headers.get("x-egw-token-count")).toBe("provider");
    const { claims } = await receiptOf(f.g, raw, JSON.stringify({ model: "claude", messages: MESSAGES }));
    expect(claims.upstream?.origin).toBe(new URL(f.anthropicMock.url).origin);
  });

  it("gemini: Gemini's own countTokens over the translated request", async () => {
    const count = await f.anthropic.messages.countTokens({ model: "gemini", messages: MESSAGES });
    expect(count).toEqual({ input_tokens: 4 });
    const sent = f.geminiMock.requests.at(-1)!;
    expect(sent.rpc).toBe("countTokens");
    expect((sent.body as { generateContentRequest: { model: string } }).generateContentRequest.model).toBe("models/gemini-2.5-flash");
    const raw = await post(f.g, "/v1/messages/count_tokens", { model: "gemini", messages: MESSAGES });
    expect(raw.headers.get("x-egw-token-count")).toBe("provider");
  });

  for (const model of ["local", "gpt-4o", "compat"]) {
    it(`${model}: an estimate, marked as such, no upstream call, no upstream in the receipt`, async () => {
      const before = f.openaiMock.requests.length + f.compatMock.requests.length;
      const count = await f.anthropic.messages.countTokens({ model, messages: MESSAGES });
      // "count these five words" is 22 characters: ceil(22 / 4) + 4 for the one turn.
      expect(count.input_tokens).toBe(10);
      const raw = await post(f.g, "/v1/messages/count_tokens", { model, messages: MESSAGES });
      expect(raw.headers.get("x-egw-token-count")).toBe("estimate");
      const { claims } = await receiptOf(f.g, raw, JSON.stringify({ model, messages: MESSAGES }));
      expect(claims.upstream).toBeUndefined();
      expect(f.openaiMock.requests.length + f.compatMock.requests.length).toBe(before);
    });
  }

  it("beta.messages.countTokens works on a translated route (its token-counting beta changes nothing there)", async () => {
    expect((await f.anthropic.beta.messages.countTokens({ model: "local", messages: MESSAGES })).input_tokens).toBe(10);
  });

  it("on a translated route count_tokens refuses any other beta, as /v1/messages does", async () => {
    for (const model of ["local", "gemini"]) {
      const err = await f.anthropic.beta.messages.countTokens({ model, messages: MESSAGES, betas: ["files-api-2025-04-14"] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect((err as Error).message).toContain("files-api-2025-04-14");
    }
  });

  it("bad input: a typed 400 in Anthropic's shape", async () => {
    const res = await post(f.g, "/v1/messages/count_tokens", { model: "claude" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    const unknown = await f.anthropic.messages.countTokens({ model: "nope", messages: MESSAGES }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
  });
});

describe("anthropic-beta and anthropic-version", () => {
  it("native: beta.messages.create's betas reach Anthropic, with the client's anthropic-version", async () => {
    const message = await f.anthropic.beta.messages.create(
      {
        model: "claude",
        max_tokens: 64,
        messages: [{ role: "user", content: "hi" }],
        betas: ["context-management-2025-06-27", "files-api-2025-04-14"],
      },
      { headers: { "anthropic-version": "2024-01-01" } },
    );
    expect(message.type).toBe("message");
    const sent = f.anthropicMock.requests.at(-1)!;
    expect(sent.headers["anthropic-beta"]).toBe("context-management-2025-06-27,files-api-2025-04-14");
    expect(sent.headers["anthropic-version"]).toBe("2024-01-01");
  });

  it("native, streamed: the beta header goes upstream too", async () => {
    const stream = f.anthropic.beta.messages.stream({ model: "claude", max_tokens: 64, messages: [{ role: "user", content: "hi" }], betas: ["interleaved-thinking-2025-05-14"] });
    await stream.finalMessage();
    expect(f.anthropicMock.requests.at(-1)!.headers["anthropic-beta"]).toBe("interleaved-thinking-2025-05-14");
  });

  it("native count_tokens forwards the betas", async () => {
    await f.anthropic.beta.messages.countTokens({ model: "claude", messages: MESSAGES, betas: ["files-api-2025-04-14"] });
    expect(f.anthropicMock.requests.at(-1)!.headers["anthropic-beta"]).toBe("files-api-2025-04-14,token-counting-2024-11-01");
  });

  it("without a beta header none is sent upstream", async () => {
    await f.anthropic.messages.create({ model: "claude", max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
    expect(f.anthropicMock.requests.at(-1)!.headers["anthropic-beta"]).toBeUndefined();
  });

  for (const model of ["local", "gpt-4o", "compat", "gemini"]) {
    it(`${model} (translated): a beta is refused, 400 unsupported_capability, nothing sent upstream`, async () => {
      const before = f.openaiMock.requests.length + f.compatMock.requests.length + f.geminiMock.requests.length;
      const err = await f.anthropic.beta.messages
        .create({ model, max_tokens: 16, messages: [{ role: "user", content: "hi" }], betas: ["context-management-2025-06-27"] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect((err as Error).message).toContain("context-management-2025-06-27");
      const streamed = await post(f.g, "/v1/messages", { model, max_tokens: 16, stream: true, messages: [{ role: "user", content: "hi" }] }, { "anthropic-beta": "x-2025-01-01" });
      expect(streamed.status).toBe(400);
      expect(f.openaiMock.requests.length + f.compatMock.requests.length + f.geminiMock.requests.length).toBe(before);
    });
  }

  it("hostile headers: oversized, too many, or malformed betas and versions are refused before routing", async () => {
    const body = { model: "claude", max_tokens: 16, messages: [{ role: "user", content: "hi" }] };
    const cases: Record<string, string>[] = [
      { "anthropic-beta": "a".repeat(2049) },
      { "anthropic-beta": Array.from({ length: 33 }, (_, i) => `b${i}`).join(",") },
      { "anthropic-beta": "ok-1, bad name" },
      { "anthropic-beta": "x\u00e9" },
      { "anthropic-version": "latest" },
    ];
    const before = f.anthropicMock.requests.length;
    for (const headers of cases) {
      const res = await post(f.g, "/v1/messages", body, headers);
      expect(res.status, JSON.stringify(headers).slice(0, 40)).toBe(400);
      expect(await res.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    }
    expect(f.anthropicMock.requests.length).toBe(before);
  });
});
