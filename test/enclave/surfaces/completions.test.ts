import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitStreamReceipt, verifyReceipt, receiptKeyFromSpki } from "../../../attestation/receipt.js";
import { streamSurfaceFor, TerminalEventHolder } from "../../../attestation/client/stream-terminal.js";
import { post, receiptOf } from "../../helpers/gateway-app.js";
import { KINDS, MODEL_OF_KIND, startApisFixture, type ApisFixture } from "./apis-fixture.js";

/** POST /v1/completions (legacy): native on OpenAI-format routes, translated to chat elsewhere; streamed and not. */
let f: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture();
});
afterAll(() => f.close());

describe("legacy completions, every provider kind", () => {
  for (const kind of KINDS) {
    const model = MODEL_OF_KIND[kind];
    it(`${kind}: completions.create, non-streamed`, async () => {
      const result = await f.openai.completions.create({ model, prompt: "Say this is a test", max_tokens: 32 });
      expect(result.object).toBe("text_completion");
      expect(result.choices).toHaveLength(1);
      expect(result.choices[0]!.text.length).toBeGreaterThan(0);
      expect(result.choices[0]!.finish_reason).toBe("stop");
      if (kind === "local") expect(result.choices[0]!.text).toBe("local model (not an LLM): you said: Say this is a test");
      if (kind === "openai" || kind === "openai-compatible") {
        const mock = kind === "openai" ? f.openaiMock : f.compatMock;
        expect(mock.requests.at(-1)!.path).toBe("/v1/completions");
        expect(mock.requests.at(-1)!.body).toMatchObject({ prompt: "Say this is a test", max_tokens: 32 });
        expect(result.choices[0]!.text).toBe(" mock legacy completion");
      }
    });

    it(`${kind}: completions.create, streamed with usage; the stream ends [DONE] then its receipt`, async () => {
      const stream = await f.openai.completions.create({ model, prompt: ["Say this is a test"], stream: true, stream_options: { include_usage: true } });
      let text = "";
      let finish: string | null = null;
      let usage = 0;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage.total_tokens;
      }
      expect(text.length).toBeGreaterThan(0);
      expect(finish).toBe("stop");
      expect(usage).toBeGreaterThan(0);
      const body = JSON.stringify({ model, prompt: "hi there", stream: true });
      const raw = new Uint8Array(await (await post(f.g, "/v1/completions", body)).arrayBuffer());
      const split = splitStreamReceipt(raw)!;
      expect(Buffer.from(split.signed).toString("utf8").endsWith("data: [DONE]\n\n")).toBe(true);
      const claims = verifyReceipt(split.receipt, {
        publicKey: receiptKeyFromSpki(f.g.identity.receipt.publicSpkiDer),
        requestBody: new TextEncoder().encode(body),
        responseBody: split.signed,
      });
      expect(claims).toMatchObject({ surface: "completions", stream: true, status: 200 });
    });
  }

  it("the verifying client holds the legacy stream's [DONE] until the receipt", () => {
    const holder = new TerminalEventHolder(streamSurfaceFor("/v1/completions"));
    expect(streamSurfaceFor("/v1/completions").name).toBe("openai-completions");
    const passed = holder.push(new TextEncoder().encode('data: {"choices":[]}\n\ndata: [DONE]\n\n'));
    expect(Buffer.from(passed).toString()).toBe('data: {"choices":[]}\n\n');
    expect(holder.holding).toBe(true);
  });

  it("translated routes refuse what chat cannot express; native routes pass it on", async () => {
    for (const extra of [{ prompt: ["a", "b"] }, { prompt: [[1, 2, 3]] }, { suffix: "end" }, { echo: true }, { logprobs: 2 }, { best_of: 3 }, { n: 2 }]) {
      const res = await post(f.g, "/v1/completions", { model: "claude", prompt: "x", ...extra });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
    const native = await f.openai.completions.create({ model: "gpt-4o", prompt: ["a", "b"], echo: true });
    expect(native.object).toBe("text_completion");
    expect(f.openaiMock.requests.at(-1)!.body).toMatchObject({ prompt: ["a", "b"], echo: true, model: "gpt-4o" });
  });

  it("bad input and an unknown model: typed errors in OpenAI's shape", async () => {
    for (const body of [{ model: "local" }, { model: "local", prompt: 5 }, { model: "local", prompt: [] }, { model: "local", prompt: "x", stream: "yes" }]) {
      const res = await post(f.g, "/v1/completions", body);
      expect(res.status).toBe(400);
    }
    const err = await f.openai.completions.create({ model: "nope", prompt: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const res = await post(f.g, "/v1/completions", { model: "nope", prompt: "x" });
    await receiptOf(f.g, res, JSON.stringify({ model: "nope", prompt: "x" }));
  });

  it("an upstream 400 on the native route reaches the SDK as BadRequestError with the provider's message", async () => {
    f.openaiMock.queueScenarios({ status: 400, errorMessage: "max_tokens is too large" });
    const err = await f.openai.completions.create({ model: "gpt-4o", prompt: "x", stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain("max_tokens is too large");
  });
});
