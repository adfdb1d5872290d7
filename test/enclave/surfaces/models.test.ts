import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayApp, OTHER_TOKEN, receiptOf, TOKEN } from "../../helpers/gateway-app.js";
import { startApisFixture, type ApisFixture } from "./apis-fixture.js";

/**
 * GET /v1/models and /v1/models/{id}: OpenAI's shape, or Anthropic's when
 * the request carries anthropic-version; the token's allowlist decides what
 * is listed and retrievable, and a hidden model is the same 404 as an
 * unknown one.
 */
let f: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture();
});
afterAll(() => f.close());

describe("models", () => {
  it("openai SDK: models.list and models.retrieve, signed", async () => {
    const list = await f.openai.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual(["claude", "compat", "gemini", "gpt-4o", "local", "transcriber", "whisper-1"]);
    const model = await f.openai.models.retrieve("claude");
    expect(model).toMatchObject({ id: "claude", object: "model", owned_by: "anthropic" });
    const raw = await f.g.app.request("/v1/models/gpt-4o", { headers: { authorization: `Bearer ${TOKEN}` } });
    const { claims } = await receiptOf(f.g, raw);
    expect(claims).toMatchObject({ method: "GET", path: "/v1/models/gpt-4o", status: 200 });
  });

  it("an unknown id, and one the token may not use, are the same 404 model_not_found in OpenAI's shape", async () => {
    const unknown = await f.openai.models.retrieve("no-such-model").catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("model_not_found");
    const limited = new OpenAI({ baseURL: "http://gateway.test/v1", apiKey: OTHER_TOKEN, fetch: f.fetch, maxRetries: 0 });
    expect((await limited.models.list()).data.map((m) => m.id)).toEqual(["local"]);
    const hidden = await f.g.app.request("/v1/models/claude", { headers: { authorization: `Bearer ${OTHER_TOKEN}` } });
    const unknownRaw = await f.g.app.request("/v1/models/no-such-model", { headers: { authorization: `Bearer ${OTHER_TOKEN}` } });
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual(await unknownRaw.json());
    // Prefix-routed ids are not listed, so not retrievable: the gateway cannot vouch for the upstream.
    expect((await f.g.app.request("/v1/models/openai%2Fgpt-4o", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    expect((await f.g.app.request("/v1/models/local")).status).toBe(401);
  });

  it("Anthropic SDK: models.list and models.retrieve get Anthropic's shape (x-api-key accepted)", async () => {
    const page = await f.anthropic.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toContain("claude");
    expect(page.data[0]).toMatchObject({ type: "model", display_name: expect.any(String), created_at: "2026-06-01T12:00:00Z" });
    const raw = (await (await f.g.app.request("/v1/models", { headers: { "x-api-key": TOKEN, "anthropic-version": "2023-06-01" } })).json()) as Record<string, unknown>;
    expect(raw).toMatchObject({ has_more: false, first_id: ids[0], last_id: ids.at(-1) });
    expect(await f.anthropic.models.retrieve("gemini")).toMatchObject({ type: "model", id: "gemini" });
    const missing = await f.anthropic.models.retrieve("nope").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf((await import("@anthropic-ai/sdk")).default.NotFoundError);
    const body = await (await f.g.app.request("/v1/models/nope", { headers: { "x-api-key": TOKEN, "anthropic-version": "2023-06-01" } })).json();
    expect(body).toMatchObject({ type: "error", error: { type: "not_found_error" } });
  });

  it("an alias with a slash is retrievable, encoded (as the SDKs send it) or not", async () => {
    const g = await gatewayApp({ config: { models: { local: { provider: "local", model: "local" }, "local/echo": { provider: "local", model: "local" } } } });
    for (const path of ["/v1/models/local%2Fecho", "/v1/models/local/echo"]) {
      const res = await g.app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status, path).toBe(200);
      expect(await res.json()).toMatchObject({ id: "local/echo", object: "model", owned_by: "local" });
    }
  });
});
