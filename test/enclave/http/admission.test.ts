import { describe, expect, it } from "vitest";
import type { ChatCompletion } from "../../../enclave/providers/types.js";
import { gatewayApp, OTHER_TOKEN, post, receiptOf, TOKEN } from "../../helpers/gateway-app.js";

/**
 * The order of admission (enclave/http/admission.ts), cheapest refusal
 * first: per-address limit → auth from the headers → per-token limit →
 * concurrency slot → body. Each test shows one step runs before the next.
 */
const chat = { model: "local", messages: [{ role: "user", content: "x" }] };
const from = (relayAddress: string) => ({ relayAddress });

describe("admission order", () => {
  it("the per-address limit comes before auth: unauthenticated requests spend their address's budget", async () => {
    const g = await gatewayApp({ config: { proxyProtocol: true, limits: { ipRateLimitPerMinute: 2 } } });
    expect((await post(g, "/v1/chat/completions", chat, { authorization: "Bearer wrong" }, from("192.0.2.1"))).status).toBe(401);
    expect((await post(g, "/v1/chat/completions", chat, { authorization: "Bearer wrong" }, from("192.0.2.1"))).status).toBe(401);
    const res = await post(g, "/v1/chat/completions", chat, {}, from("192.0.2.1"));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("30");
    expect((await res.json()) as unknown).toMatchObject({ error: { code: "rate_limited", message: "Rate limit reached for this client address." } });
    expect((await post(g, "/v1/chat/completions", chat, {}, from("192.0.2.2"))).status).toBe(200);
  });

  it("without proxyProtocol, a relay address in the bindings is ignored", async () => {
    const g = await gatewayApp({ config: { limits: { ipRateLimitPerMinute: 1 } } });
    for (let i = 0; i < 3; i++) expect((await post(g, "/v1/chat/completions", chat, {}, from("192.0.2.1"))).status).toBe(200);
  });

  it("auth comes before the per-token limit: a wrong token spends no client's budget", async () => {
    const g = await gatewayApp({ config: { limits: { rateLimitPerMinute: 1 } } });
    for (let i = 0; i < 3; i++) expect((await post(g, "/v1/chat/completions", chat, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post(g, "/v1/chat/completions", chat)).status).toBe(200);
    const limited = await post(g, "/v1/chat/completions", chat);
    expect(limited.status).toBe(429);
    expect((await limited.json()) as unknown).toMatchObject({ error: { message: "Rate limit reached for this API key." } });
    // Per token: the other client still has its own.
    expect((await post(g, "/v1/chat/completions", chat, { authorization: `Bearer ${OTHER_TOKEN}` })).status).toBe(200);
  });

  it("the per-token limit comes before the concurrency slot, and the slot before the body", async () => {
    let unblock: () => void = () => {};
    const blocked = new Promise<void>((r) => (unblock = r));
    const g = await gatewayApp({
      config: { limits: { maxConcurrentRequests: 1, rateLimitPerMinute: 2 } },
      wrapAdapter: (a) => ({
        ...a,
        chat: async (request, ctx): Promise<ChatCompletion> => {
          await blocked;
          return a.chat(request, ctx);
        },
      }),
    });
    const holder = post(g, "/v1/chat/completions", chat, { authorization: `Bearer ${OTHER_TOKEN}` });
    await new Promise((r) => setImmediate(r));
    // TOKEN has budget: refused for the slot, without its body being read.
    const body = JSON.stringify(chat);
    const overloaded = await post(g, "/v1/chat/completions", body);
    expect(overloaded.status).toBe(429);
    expect(overloaded.headers.get("retry-after")).toBe("1");
    const { claims, body: bytes } = await receiptOf(g, overloaded);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ error: { code: "overloaded" } });
    expect(claims.bodyRead).toBe(false);
    // TOKEN's second request spends its budget; its third is refused by the token limit, not the slot.
    await post(g, "/v1/chat/completions", body);
    const limited = await post(g, "/v1/chat/completions", body);
    expect((await limited.json()) as unknown).toMatchObject({ error: { code: "rate_limited" } });
    unblock();
    expect((await holder).status).toBe(200);
  });

  it("a GET on a model-call path is not admitted at all (404, no credential checked)", async () => {
    const g = await gatewayApp();
    for (const path of ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/images/generations"]) {
      expect((await g.app.request(path, { headers: { authorization: "Bearer wrong" } })).status).toBe(404);
    }
    expect((await g.app.request("/v1/models", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
  });
});
