import { describe, expect, it } from "vitest";
import { exchangeRecord } from "../../../../enclave/http/middleware/exchange-record.js";
import { testClock } from "../../../helpers/gateway-app.js";
import { appAround } from "./helpers.js";

describe("exchangeRecord", () => {
  it("opens one record as the request arrives: id, method, path without query, surface, start time", async () => {
    const clock = testClock();
    const started = clock.now().getTime();
    const app = appAround([exchangeRecord({ name: "chat.completions", surface: "openai", readsBody: true, now: clock.now })], (c) => {
      clock.advance(5);
      const ex = c.var.exchange;
      return c.json({ id: ex.id, method: ex.method, path: ex.path, surface: ex.surface, started: ex.started, errorSurface: c.var.errorSurface, readsBody: c.var.readsBody });
    });
    const res = await app.request("/x?secret=1", { method: "post" });
    const got = (await res.json()) as Record<string, unknown>;
    expect(got).toMatchObject({ method: "POST", path: "/x", surface: "chat.completions", started, errorSurface: "openai", readsBody: true });
    expect(got.id).toMatch(/^egw-[0-9a-f]{24}$/);
  });

  it("each request gets its own record; readsBody defaults to false", async () => {
    const clock = testClock();
    const ids: string[] = [];
    const app = appAround([exchangeRecord({ name: "models", surface: "anthropic", now: clock.now })], (c) => (ids.push(c.var.exchange.id), c.json({ readsBody: c.var.readsBody })));
    expect(await (await app.request("/x")).json()).toEqual({ readsBody: false });
    await app.request("/x");
    expect(new Set(ids).size).toBe(2);
  });

  it("the record starts unrouted and body-less; its claims follow what it was told", async () => {
    const clock = testClock();
    const app = appAround([exchangeRecord({ name: "embeddings", surface: "openai", now: clock.now })], (c) => {
      const ex = c.var.exchange;
      const before = ex.claims(200, new Uint8Array(32), 1);
      ex.bodyWasRead(new TextEncoder().encode("{}"));
      ex.streams();
      const after = ex.claims(200, new Uint8Array(32), 2);
      return c.json({
        before: {
          model: before.model,
          provider: before.provider,
          bodyRead: before.bodyRead,
          stream: before.stream,
          hasHash: "requestSha256" in before,
          label: "(unrouted)" === ex.label,
        },
        after: { bodyRead: after.bodyRead, stream: after.stream, hasHash: after.requestSha256?.length === 32, bytes: ex.requestBytes },
      });
    });
    expect(await (await app.request("/x")).json()).toEqual({
      before: { model: "", provider: "", bodyRead: false, stream: false, hasHash: false, label: true },
      after: { bodyRead: true, stream: true, hasHash: true, bytes: 2 },
    });
  });
});
