import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { post, receiptOf, TOKEN } from "../../helpers/gateway-app.js";
import { startApisFixture, type ApisFixture } from "./apis-fixture.js";

/**
 * A confused or hostile upstream on the new endpoints: answers of the
 * wrong shape or content type, and a speech stream cut mid-way. Each is a
 * signed 502 upstream_error in the surface's shape; none is passed on.
 */
let f: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture();
});
afterAll(() => f.close());

async function expect502(res: Response, requestBody: string | Uint8Array, shape: "openai" | "anthropic"): Promise<void> {
  const { body, claims } = await receiptOf(f.g, res, requestBody);
  expect(res.status).toBe(502);
  expect(claims.status).toBe(502);
  const json = JSON.parse(Buffer.from(body).toString()) as Record<string, unknown>;
  if (shape === "openai") expect(json).toMatchObject({ error: { code: "upstream_error", type: "api_error" } });
  else expect(json).toMatchObject({ type: "error", error: { type: "api_error" } });
}

describe("upstream answers of the wrong shape", () => {
  it("count_tokens: a count that is not a non-negative integer, or not JSON", async () => {
    const body = JSON.stringify({ model: "claude", messages: [{ role: "user", content: "x" }] });
    for (const scenario of [{ json: { input_tokens: "ten" } }, { json: { input_tokens: -1 } }, { json: [1] }, { rawBody: "not json" }]) {
      f.anthropicMock.enqueue(scenario);
      await expect502(await post(f.g, "/v1/messages/count_tokens", body), body, "anthropic");
    }
  });

  it("moderations: results missing or not verdicts", async () => {
    const body = JSON.stringify({ model: "gpt-4o", input: "x" });
    for (const rawBody of [{ id: "modr" }, { results: [{ flagged: "no" }] }, "<html>"]) {
      f.openaiMock.queueScenarios({ rawBody });
      await expect502(await post(f.g, "/v1/moderations", body), body, "openai");
    }
  });

  it("legacy completions: choices without text, an in-band error object", async () => {
    const body = JSON.stringify({ model: "gpt-4o", prompt: "x" });
    for (const rawBody of [{ choices: [{ index: 0 }] }, { choices: "none" }, { error: { message: "upstream echoes the prompt: x" } }]) {
      f.openaiMock.queueScenarios({ rawBody });
      const res = await post(f.g, "/v1/completions", body);
      await expect502(res, body, "openai");
    }
  });

  it("transcriptions: an answer that is neither JSON nor a transcript text type", async () => {
    const form = new FormData();
    form.append("file", new File([new Uint8Array(16)], "a.wav"));
    form.append("model", "whisper-1");
    const encoded = new Response(form);
    const bytes = new Uint8Array(await encoded.arrayBuffer());
    // A transcript type passes with only its media type: the upstream's parameters stay upstream.
    f.openaiMock.queueScenarios({ rawBody: "a transcript\n", contentType: "text/plain; x-upstream=1" });
    const ok = await Promise.resolve(
      f.g.app.request("/v1/audio/transcriptions", {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": encoded.headers.get("content-type")! },
        body: bytes,
      }),
    );
    expect([ok.status, ok.headers.get("content-type"), await ok.text()]).toEqual([200, "text/plain; charset=utf-8", "a transcript\n"]);
    f.openaiMock.queueScenarios({ rawBody: "<html>oops</html>", contentType: "text/html" });
    const res = await Promise.resolve(
      f.g.app.request("/v1/audio/transcriptions", {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": encoded.headers.get("content-type")! },
        body: bytes,
      }),
    );
    await expect502(res, bytes, "openai");
  });

  it("speech: an answer that is not audio; a stream cut after its first chunk", async () => {
    const body = JSON.stringify({ model: "gpt-4o", voice: "alloy", input: "x" });
    f.openaiMock.queueScenarios({ rawBody: { error: "x" }, contentType: "application/json" });
    await expect502(await post(f.g, "/v1/audio/speech", body), body, "openai");
    f.openaiMock.queueScenarios({ destroyAfterChunks: 1 });
    // In-process the audio is collected before anything is sent, so a cut is still a signed 502.
    await expect502(await post(f.g, "/v1/audio/speech", body), body, "openai");
  });
});
