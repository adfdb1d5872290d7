import { describe, expect, it } from "vitest";
import { concurrencySlot } from "../../../../enclave/http/middleware/concurrency.js";
import { ByteBudget } from "../../../../enclave/limits/byte-budget.js";
import { Semaphore } from "../../../../enclave/limits/token-bucket.js";
import { createMetrics } from "../../../../enclave/observability/metrics.js";
import { appAround } from "./helpers.js";

async function inFlight(metrics: ReturnType<typeof createMetrics>): Promise<number> {
  return (await metrics.inFlight.get()).values[0]!.value;
}

describe("concurrencySlot", () => {
  it("holds a slot for the request and gives it back when the handler returns", async () => {
    const metrics = createMetrics();
    const concurrency = new Semaphore(1);
    let during = -1;
    const app = appAround([concurrencySlot({ concurrency, bodyBytes: new ByteBudget(1024), metrics })], async (c) => {
      during = await inFlight(metrics);
      return c.json({});
    });
    expect((await app.request("/x", { method: "POST" })).status).toBe(200);
    expect(during).toBe(1);
    expect(await inFlight(metrics)).toBe(0);
    expect((await app.request("/x", { method: "POST" })).status).toBe(200);
  });

  it("answers 429 overloaded with retry-after 1 while every slot is held, and gives it back after a failing handler", async () => {
    const metrics = createMetrics();
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const app = appAround([concurrencySlot({ concurrency: new Semaphore(1), bodyBytes: new ByteBudget(1024), metrics })], async (c) => {
      if (c.req.query("fail") !== undefined) throw new Error("boom");
      await held;
      return c.json({});
    });
    const first = app.request("/x", { method: "POST" });
    await new Promise((r) => setImmediate(r));
    const second = await app.request("/x", { method: "POST" });
    expect(second.status).toBe(429);
    expect(await second.json()).toEqual({ code: "overloaded", retryAfter: 1 });
    release();
    expect((await first).status).toBe(200);
    expect((await app.request("/x?fail", { method: "POST" })).status).toBe(500);
    expect(await inFlight(metrics)).toBe(0);
  });

  it("a handed-off slot outlives the request until its holder gives it back, once", async () => {
    const metrics = createMetrics();
    const concurrency = new Semaphore(1);
    let giveBack: () => void = () => {};
    const app = appAround([concurrencySlot({ concurrency, bodyBytes: new ByteBudget(1024), metrics })], (c) => {
      giveBack = c.var.slot.handOff();
      return c.json({});
    });
    expect((await app.request("/x", { method: "POST" })).status).toBe(200);
    expect(await inFlight(metrics)).toBe(1);
    expect((await app.request("/x", { method: "POST" })).status).toBe(429);
    giveBack();
    giveBack();
    expect(await inFlight(metrics)).toBe(0);
    expect(concurrency.tryAcquire()).toBeTypeOf("function");
  });

  it("the slot carries the body's reservation in the shared byte budget, released with it", async () => {
    const bodyBytes = new ByteBudget(100);
    const app = appAround([concurrencySlot({ concurrency: new Semaphore(2), bodyBytes, metrics: createMetrics() })], (c) =>
      c.json({ reserved: c.var.slot.reservation.ensure(80) }),
    );
    expect(await (await app.request("/x", { method: "POST" })).json()).toEqual({ reserved: true });
    // Released: the whole budget is free again.
    expect(bodyBytes.reservation().ensure(100)).toBe(true);
  });
});
