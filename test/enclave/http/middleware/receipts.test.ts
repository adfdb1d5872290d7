import { describe, expect, it } from "vitest";
import { gatewayApp, post, receiptOf, TOKEN } from "../../../helpers/gateway-app.js";

/**
 * Refusals are signed where they are thrown (middleware/receipts.ts), in the
 * surface's error shape, with the exchange the request opened; whether a
 * refusal before the body closes the connection is decided there too. The
 * socket side of closing is in test/enclave/gateway-admission.test.ts.
 */
const chat = { model: "local", messages: [{ role: "user", content: "x" }] };

describe("signed errors", () => {
  it("a refusal after the body was read covers the body; one before it says bodyRead: false", async () => {
    const g = await gatewayApp();
    const body = JSON.stringify({ model: "local", messages: [] });
    const afterRead = await post(g, "/v1/chat/completions", body);
    expect(afterRead.status).toBe(400);
    expect((await receiptOf(g, afterRead, body)).claims).toMatchObject({ status: 400, bodyRead: true, surface: "chat.completions" });
    const beforeRead = await post(g, "/v1/chat/completions", body, { authorization: "Bearer nope" });
    expect((await receiptOf(g, beforeRead)).claims).toMatchObject({ status: 401, bodyRead: false });
  });

  it("a refused model call with a large or undeclared unread body closes the connection; a small declared one does not", async () => {
    const g = await gatewayApp();
    const small = await post(g, "/v1/chat/completions", JSON.stringify(chat), { authorization: "Bearer nope", "content-length": String(JSON.stringify(chat).length) });
    expect(small.headers.get("connection")).toBeNull();
    const large = await post(g, "/v1/chat/completions", JSON.stringify(chat), { authorization: "Bearer nope", "content-length": String(1024 * 1024) });
    expect(large.headers.get("connection")).toBe("close");
    const undeclared = await post(g, "/v1/chat/completions", JSON.stringify(chat), { authorization: "Bearer nope" });
    expect(undeclared.headers.get("connection")).toBe("close");
  });

  it("a refusal on a surface without a body never closes for it", async () => {
    const g = await gatewayApp();
    const res = await g.app.request("/v1/models", { headers: { authorization: "Bearer nope" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("connection")).toBeNull();
  });

  it("a routed refusal names the model; the error is in the surface's shape", async () => {
    const g = await gatewayApp();
    const res = await post(g, "/v1/messages", { model: "local", messages: "no" }, { "anthropic-version": "2023-06-01" });
    expect(res.status).toBe(400);
    const { body } = await receiptOf(g, res, JSON.stringify({ model: "local", messages: "no" }));
    expect(JSON.parse(new TextDecoder().decode(body))).toEqual({ type: "error", error: { type: "invalid_request_error", message: "`messages` must be an array." } });
    const unknown = await post(g, "/v1/chat/completions", { ...chat, model: "nope/x" });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()) as unknown).toMatchObject({ error: { code: "model_not_found" } });
  });

  it("a model this token may not use is 403 model_not_allowed, with the model in the receipt", async () => {
    const g = await gatewayApp({
      config: {
        models: { local: { provider: "local", model: "local" }, extra: { provider: "local", model: "x" } },
        clients: [{ name: "t", tokenSha256: (await import("../../../../enclave/auth.js")).hashToken(TOKEN), models: ["local"] }],
      },
    });
    const body = JSON.stringify({ ...chat, model: "extra" });
    const res = await post(g, "/v1/chat/completions", body);
    expect(res.status).toBe(403);
    expect((await receiptOf(g, res, body)).claims).toMatchObject({ model: "", status: 403 });
  });
});
