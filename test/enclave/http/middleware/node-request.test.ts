import { describe, expect, it } from "vitest";
import { readBody } from "../../../../enclave/http/body.js";
import { nodeRequest } from "../../../../enclave/http/middleware/node-request.js";
import { appAround } from "./helpers.js";

describe("nodeRequest", () => {
  it("without Node bindings (app.request), the view reads the WHATWG Request: headers, body, signal", async () => {
    const app = appAround([nodeRequest()], async (c) => {
      const view = c.var.view;
      const bytes = await readBody(view, { maxBytes: 1024, timeoutMs: 1000 });
      return c.json({ incoming: view.incoming !== undefined, auth: view.headers.get("Authorization"), body: new TextDecoder().decode(bytes), aborted: view.signal.aborted });
    });
    const res = await app.request("/x", { method: "POST", headers: { authorization: "Bearer t" }, body: "abc" });
    expect(await res.json()).toEqual({ incoming: false, auth: "Bearer t", body: "abc", aborted: false });
  });

  it("with bindings lacking a Node request, it still falls back rather than trusting them", async () => {
    const app = appAround([nodeRequest()], (c) => c.json({ incoming: c.var.view.incoming !== undefined }));
    const res = await app.request("/x", { method: "POST", body: "" }, { relayAddress: "192.0.2.1" });
    expect(await res.json()).toEqual({ incoming: false });
  });
});
