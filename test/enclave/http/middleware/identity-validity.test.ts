import { describe, expect, it } from "vitest";
import type { EnclaveIdentity } from "../../../../enclave/identity.js";
import { receiptKeyValidity, requireValidIdentity } from "../../../../enclave/http/middleware/identity-validity.js";
import { createIdentity } from "../../../../enclave/identity.js";
import { gatewayApp, post, receiptOf, testClock } from "../../../helpers/gateway-app.js";
import { appAround } from "./helpers.js";

const NOT_AFTER = Date.parse("2026-06-01T13:00:00Z");

function windowed(identity: EnclaveIdentity): EnclaveIdentity {
  return { ...identity, receipt: { ...identity.receipt, window: { notBefore: NOT_AFTER - 86_400_000, notAfter: NOT_AFTER } } };
}

describe("identity validity", () => {
  it("an ephemeral identity (no window) never expires", async () => {
    const clock = testClock();
    const validity = receiptKeyValidity(await createIdentity({ now: clock.now }), clock.now);
    clock.advance(10 * 365 * 86_400_000);
    expect(validity.expired()).toBe(false);
  });

  it("a sealed identity's key expires at notAfter, not a millisecond later", async () => {
    const clock = testClock(NOT_AFTER - 1);
    const validity = receiptKeyValidity(windowed(await createIdentity({ now: clock.now })), clock.now);
    expect(validity.expired()).toBe(false);
    clock.advance(1);
    expect(validity.expired()).toBe(true);
  });

  it("past the window, requests are refused identity_expired before the handler runs", async () => {
    let ran = false;
    const app = appAround([requireValidIdentity({ expired: () => true })], (c) => ((ran = true), c.json({})));
    const res = await app.request("/x", { method: "POST" });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ code: "identity_expired" });
    expect(ran).toBe(false);
  });

  it("through the gateway: model calls get a signed 503 and /healthz fails, so the replica is replaced", async () => {
    const clock = testClock(NOT_AFTER - 1000);
    const g = await gatewayApp({ clock, identity: windowed(await createIdentity({ now: clock.now })) });
    expect((await g.app.request("/healthz")).status).toBe(200);
    clock.advance(1000);
    const res = await post(g, "/v1/chat/completions", { model: "local", messages: [{ role: "user", content: "x" }] });
    expect(res.status).toBe(503);
    expect((await receiptOf(g, res)).claims).toMatchObject({ status: 503, bodyRead: false });
    const health = await g.app.request("/healthz");
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: "identity_expired" });
  });
});
