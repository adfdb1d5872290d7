import { describe, expect, it } from "vitest";
import { RECEIPT_HEADER, receiptKeyFromSpki, splitStreamReceipt, verifyReceipt } from "../../../attestation/receipt.js";
import { gatewayApp, OTHER_TOKEN, post, receiptOf, TOKEN } from "../../helpers/gateway-app.js";

/**
 * createGatewayApp through `app.request()`, no port: each surface mounted
 * by enclave/gateway.ts answers, signs, and refuses as over TLS (the
 * end-to-end files under test/enclave/gateway-*.test.ts keep the socket
 * behaviour). Here the request view runs its WHATWG Request fallback.
 */
const chat = { model: "local", messages: [{ role: "user", content: "hello" }] };

describe("createGatewayApp through app.request()", () => {
  it("answers a chat completion with a receipt over the exact request and response bytes", async () => {
    const g = await gatewayApp();
    const body = JSON.stringify(chat);
    const res = await post(g, "/v1/chat/completions", body);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^egw-[0-9a-f]{24}$/);
    const { claims, body: bytes } = await receiptOf(g, res, body);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ object: "chat.completion", model: "local" });
    expect(claims).toMatchObject({
      method: "POST",
      path: "/v1/chat/completions",
      surface: "chat.completions",
      model: "local",
      provider: "local",
      status: 200,
      stream: false,
      bodyRead: true,
    });
    expect(claims.upstream).toEqual({ origin: "local", model: "local" });
    expect(claims.id).toBe(res.headers.get("x-request-id"));
    expect(claims.time).toBe(g.clock.now().getTime());
  });

  it("streams a chat completion and signs the bytes before the receipt block", async () => {
    const g = await gatewayApp();
    const body = JSON.stringify({ ...chat, stream: true });
    const res = await post(g, "/v1/chat/completions", body);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const all = new Uint8Array(await res.arrayBuffer());
    const split = splitStreamReceipt(all)!;
    expect(new TextDecoder().decode(split.signed)).toMatch(/data: \[DONE\]\n\n$/);
    const claims = verifyReceipt(split.receipt, {
      publicKey: receiptKeyFromSpki(g.identity.receipt.publicSpkiDer),
      requestBody: new TextEncoder().encode(body),
      responseBody: split.signed,
    });
    expect(claims).toMatchObject({ surface: "chat.completions", stream: true, status: 200, bodyRead: true });
  });

  it("the route's upstream model reaches the adapter once, through the call context", async () => {
    const seen: { requestModel: unknown; ctxModel: string }[] = [];
    const g = await gatewayApp({
      config: { models: { local: { provider: "local", model: "local" }, alias: { provider: "local", model: "local-upstream" } } },
      wrapAdapter: (a) => ({
        ...a,
        chat: (request, ctx) => {
          seen.push({ requestModel: request.model, ctxModel: ctx.upstreamModel });
          return a.chat(request, ctx);
        },
      }),
    });
    const body = JSON.stringify({ ...chat, model: "alias" });
    const res = await post(g, "/v1/chat/completions", body);
    // The request passes through as the client sent it; the route's model is in the context only.
    expect(seen).toEqual([{ requestModel: "alias", ctxModel: "local-upstream" }]);
    const { claims, body: bytes } = await receiptOf(g, res, body);
    // The local model answers with ctx.upstreamModel; the exposed name stays the client's.
    expect(JSON.parse(new TextDecoder().decode(bytes)).model).toBe("local-upstream");
    expect(claims.model).toBe("alias");
    expect(claims.upstream?.model).toBe("local-upstream");
  });

  it("serves the Anthropic Messages surface with x-api-key, and answers its errors in its own shape", async () => {
    const g = await gatewayApp();
    const body = JSON.stringify({ model: "local", max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
    const ok = await g.app.request("/v1/messages", { method: "POST", headers: { "x-api-key": TOKEN, "content-type": "application/json" }, body });
    expect(ok.status).toBe(200);
    const { claims, body: bytes } = await receiptOf(g, ok, body);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ type: "message", role: "assistant" });
    expect(claims.surface).toBe("messages");
    const bad = await g.app.request("/v1/messages", { method: "POST", headers: { "x-api-key": "wrong", "content-type": "application/json" }, body });
    expect(bad.status).toBe(401);
    const refused = await receiptOf(g, bad);
    expect(JSON.parse(new TextDecoder().decode(refused.body))).toEqual({ type: "error", error: { type: "authentication_error", message: "Invalid API key." } });
    expect(refused.claims).toMatchObject({ surface: "messages", status: 401, bodyRead: false, model: "" });
  });

  it("x-api-key is not a credential on the OpenAI surfaces", async () => {
    const g = await gatewayApp();
    const res = await g.app.request("/v1/chat/completions", { method: "POST", headers: { "x-api-key": TOKEN, "content-type": "application/json" }, body: JSON.stringify(chat) });
    expect(res.status).toBe(401);
    expect((await res.json()) as unknown).toMatchObject({ error: { code: "invalid_api_key" } });
  });

  it("serves embeddings and images from the local model, each under its own surface name", async () => {
    const g = await gatewayApp();
    const e = await post(g, "/v1/embeddings", { model: "local", input: "x" });
    expect(e.status).toBe(200);
    expect((await receiptOf(g, e, JSON.stringify({ model: "local", input: "x" }))).claims.surface).toBe("embeddings");
    const i = await post(g, "/v1/images/generations", { model: "local", prompt: "x" });
    expect(i.status).toBe(200);
    expect((await receiptOf(g, i, JSON.stringify({ model: "local", prompt: "x" }))).claims.surface).toBe("images");
  });

  it("lists only the models a token may use", async () => {
    const g = await gatewayApp({ config: { models: { local: { provider: "local", model: "local" }, extra: { provider: "local", model: "x" } } } });
    const all = await g.app.request("/v1/models", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(((await all.json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(["local", "extra"]);
    const some = await g.app.request("/v1/models", { headers: { authorization: `Bearer ${OTHER_TOKEN}` } });
    const { claims, body } = await receiptOf(g, some);
    expect(JSON.parse(new TextDecoder().decode(body)).data.map((m: { id: string }) => m.id)).toEqual(["local"]);
    expect(claims).toMatchObject({ surface: "models", method: "GET", bodyRead: false });
    // The Anthropic SDK lists models with x-api-key and anthropic-version.
    const anthropic = await g.app.request("/v1/models", { headers: { "x-api-key": TOKEN, "anthropic-version": "2023-06-01" } });
    expect(anthropic.status).toBe(200);
    expect((await g.app.request("/v1/models", { headers: { "x-api-key": TOKEN } })).status).toBe(401);
  });

  it("serves the trust policy's exact bytes and the attestation document before authentication, each with a receipt", async () => {
    const g = await gatewayApp();
    const policy = await g.app.request("/v1/attestation/policy");
    const { claims, body } = await receiptOf(g, policy);
    expect(Buffer.from(body).equals(Buffer.from(g.trustPolicyBytes))).toBe(true);
    expect(policy.headers.get("x-egw-policy-sha256")).toMatch(/^[0-9a-f]{64}$/);
    expect(claims).toMatchObject({ surface: "attestation", path: "/v1/attestation/policy" });
    const doc = await g.app.request("/v1/attestation");
    expect(doc.headers.get("content-type")).toBe("application/cbor");
    expect((await receiptOf(g, doc)).claims.surface).toBe("attestation");
    const json = await g.app.request("/v1/attestation?format=json");
    expect((await json.json()) as unknown).toMatchObject({ format: "cose_sign1", fresh: false });
    const badNonce = await g.app.request("/v1/attestation?nonce=zz");
    expect(badNonce.status).toBe(400);
  });

  it("unknown paths and methods are a signed not_found, in the Anthropic shape under /v1/messages", async () => {
    const g = await gatewayApp();
    const openai = await g.app.request("/v1/nope");
    expect(openai.status).toBe(404);
    const { claims, body } = await receiptOf(g, openai);
    expect(JSON.parse(new TextDecoder().decode(body))).toMatchObject({ error: { code: "not_found" } });
    expect(claims).toMatchObject({ surface: "unknown", path: "/v1/nope" });
    const anthropic = await g.app.request("/v1/messages/batches");
    expect((await anthropic.json()) as unknown).toEqual({ type: "error", error: { type: "not_found_error", message: "Unknown path." } });
    // No admission for a method the route does not serve: 404 before any credential check.
    const get = await g.app.request("/v1/chat/completions");
    expect(get.status).toBe(404);
  });

  it("the receipt path drops the query", async () => {
    const g = await gatewayApp();
    const res = await post(g, "/v1/chat/completions?x=secret", chat);
    expect((await receiptOf(g, res, JSON.stringify(chat))).claims.path).toBe("/v1/chat/completions");
  });

  it("health and metrics sit outside /v1, without receipts", async () => {
    const g = await gatewayApp();
    const health = await g.app.request("/healthz");
    expect(health.status).toBe(200);
    expect(health.headers.get(RECEIPT_HEADER)).toBeNull();
    await post(g, "/v1/chat/completions", chat);
    const metrics = await (await g.app.request("/metrics")).text();
    expect(metrics).toContain('egw_requests_total{surface="chat.completions",model="local",provider="local",status="200"} 1');
    expect(metrics).toContain("egw_requests_in_flight 0");
  });

  it("logs one content-free line per request", async () => {
    const g = await gatewayApp();
    await post(g, "/v1/chat/completions", { ...chat, messages: [{ role: "user", content: "canary-3f9a" }] });
    const lines = g.logs.filter((l) => l.includes('"request"'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"surface":"chat.completions"');
    expect(g.logs.join("\n")).not.toContain("canary-3f9a");
  });
});
