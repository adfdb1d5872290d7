import { describe, expect, it } from "vitest";
import { ClientDirectory, hashToken } from "../../../../enclave/auth.js";
import { authenticate } from "../../../../enclave/http/middleware/auth.js";
import { nodeRequest } from "../../../../enclave/http/middleware/node-request.js";
import { appAround } from "./helpers.js";

const clients = new ClientDirectory([{ name: "a", tokenSha256: hashToken("tok-a"), models: ["*"] }]);
const whoami = appAround([nodeRequest(), authenticate(clients, "openai")], (c) => c.json({ client: c.var.client.name }));
const anthropic = appAround([nodeRequest(), authenticate(clients, "anthropic")], (c) => c.json({ client: c.var.client.name }));

describe("authenticate", () => {
  it("puts the client a Bearer token names in c.var.client", async () => {
    expect(await (await whoami.request("/x", { method: "POST", headers: { authorization: "Bearer tok-a" } })).json()).toEqual({ client: "a" });
  });

  it.each([
    ["no credential", {}],
    ["a wrong token", { authorization: "Bearer tok-b" }],
    ["a malformed header", { authorization: "Basic dG9rLWE=" }],
    ["x-api-key on the OpenAI surface", { "x-api-key": "tok-a" }],
  ])("refuses %s with invalid_api_key", async (_name, headers) => {
    const res = await whoami.request("/x", { method: "POST", headers });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: "invalid_api_key" });
  });

  it("accepts x-api-key on the Anthropic surface", async () => {
    expect(await (await anthropic.request("/x", { method: "POST", headers: { "x-api-key": "tok-a" } })).json()).toEqual({ client: "a" });
  });

  it("the surface may depend on the request", async () => {
    const either = appAround([nodeRequest(), authenticate(clients, (c) => (c.req.header("anthropic-version") ? "anthropic" : "openai"))], (c) =>
      c.json({ client: c.var.client.name }),
    );
    expect((await either.request("/x", { headers: { "x-api-key": "tok-a", "anthropic-version": "2023-06-01" } })).status).toBe(200);
    expect((await either.request("/x", { headers: { "x-api-key": "tok-a" } })).status).toBe(401);
  });
});
