import { describe, expect, it } from "vitest";
import { concurrencySlot } from "../../../../enclave/http/middleware/concurrency.js";
import { exchangeRecord } from "../../../../enclave/http/middleware/exchange-record.js";
import { jsonBody } from "../../../../enclave/http/middleware/json-body.js";
import { nodeRequest } from "../../../../enclave/http/middleware/node-request.js";
import { ByteBudget } from "../../../../enclave/limits/byte-budget.js";
import { Semaphore } from "../../../../enclave/limits/token-bucket.js";
import { createMetrics } from "../../../../enclave/observability/metrics.js";
import { testClock } from "../../../helpers/gateway-app.js";
import { appAround } from "./helpers.js";

function bodyApp(maxBodyBytes = 64, budget = 1024) {
  const concurrency = new Semaphore(1);
  const app = appAround(
    [
      nodeRequest(),
      exchangeRecord({ name: "t", surface: "openai", readsBody: true, now: testClock().now }),
      concurrencySlot({ concurrency, bodyBytes: new ByteBudget(budget), metrics: createMetrics() }),
      jsonBody({ maxBodyBytes, bodyTimeoutMs: 1000 }),
    ],
    (c) => c.json({ body: c.var.body, bodyRead: c.var.exchange.bodyRead, bytes: c.var.exchange.requestBytes }),
  );
  return { app, concurrency };
}

const json = (body: string, headers: Record<string, string> = { "content-type": "application/json" }) => ({ method: "POST", headers, body });

describe("jsonBody", () => {
  it("reads the body, records it in the exchange, and hands on the parsed object", async () => {
    const { app } = bodyApp();
    expect(await (await app.request("/x", json('{"a":1}'))).json()).toEqual({ body: { a: 1 }, bodyRead: true, bytes: 7 });
  });

  it.each([
    ["a body over maxBodyBytes (declared)", json(`{"a":"${"x".repeat(100)}"}`), 413, "request_too_large"],
    ["a non-JSON content type (after the read)", json('{"a":1}', { "content-type": "text/plain" }), 415, "unsupported_media_type"],
    ["invalid JSON", json("{nope"), 400, "invalid_request"],
    ["a JSON array", json("[1]"), 400, "invalid_request"],
  ])("refuses %s, and gives the slot back at once", async (_name, init, status, code) => {
    const { app, concurrency } = bodyApp();
    const res = await app.request("/x", init);
    expect(res.status).toBe(status);
    expect(await res.json()).toEqual({ code });
    const slot = concurrency.tryAcquire();
    expect(slot).toBeTypeOf("function");
  });

  it("a body beyond the shared in-flight budget is 503 overloaded", async () => {
    const { app } = bodyApp(1024, 16);
    const res = await app.request("/x", json(`{"a":"${"x".repeat(40)}"}`));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ code: "overloaded", retryAfter: 1 });
  });
});
