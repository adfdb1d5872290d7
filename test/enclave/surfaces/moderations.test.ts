import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { post, receiptOf } from "../../helpers/gateway-app.js";
import { startApisFixture, type ApisFixture } from "./apis-fixture.js";

/** POST /v1/moderations: native on OpenAI, deterministic on local, refused elsewhere. */
let f: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture({
    models: {
      "omni-moderation-latest": { provider: "openai", model: "omni-moderation-latest" },
      local: { provider: "local", model: "local" },
      compat: { provider: "compat", model: "c" },
      claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
      gemini: { provider: "gemini", model: "gemini-2.5-flash" },
    },
  });
});
afterAll(() => f.close());

describe("moderations", () => {
  it("openai: native, the SDK reads OpenAI's answer, the upstream sees the route's model", async () => {
    const result = await f.openai.moderations.create({ model: "omni-moderation-latest", input: ["a kind word", "kill it"] });
    expect(result.results.map((r) => r.flagged)).toEqual([false, true]);
    expect(result.results[1]!.categories.violence).toBe(true);
    const sent = f.openaiMock.requests.at(-1)!;
    expect(sent.path).toBe("/v1/moderations");
    expect(sent.body).toMatchObject({ model: "omni-moderation-latest", input: ["a kind word", "kill it"] });
  });

  it("local: deterministic, flagged exactly on [flag], signed", async () => {
    const result = await f.openai.moderations.create({ model: "local", input: ["fine", "please [FLAG] this"] });
    expect(result.results.map((r) => r.flagged)).toEqual([false, true]);
    expect(result.results[1]!.categories.harassment).toBe(true);
    expect(result.results[1]!.category_scores.harassment).toBe(1);
    expect(result.results[0]!.category_scores.violence).toBe(0);
    const body = JSON.stringify({ model: "local", input: "fine" });
    const raw = await post(f.g, "/v1/moderations", body);
    const { claims } = await receiptOf(f.g, raw, body);
    expect(claims).toMatchObject({ surface: "moderations", provider: "local", status: 200 });
  });

  for (const model of ["compat", "claude", "gemini"]) {
    it(`${model}: refused, 400 unsupported_capability in OpenAI's shape, nothing sent upstream`, async () => {
      const before = f.compatMock.requests.length + f.anthropicMock.requests.length + f.geminiMock.requests.length;
      const err = await f.openai.moderations.create({ model, input: "hello" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_capability");
      expect(f.compatMock.requests.length + f.anthropicMock.requests.length + f.geminiMock.requests.length).toBe(before);
    });
  }

  it("bad input: no model, no input, a hostile input shape", async () => {
    for (const body of [{ input: "x" }, { model: "local" }, { model: "local", input: [{ type: "audio" }] }, { model: "local", input: [] }]) {
      const res = await post(f.g, "/v1/moderations", body);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request", type: "invalid_request_error" } });
    }
  });
});
