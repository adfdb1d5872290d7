/**
 * The upstream call's timers (enclave/upstream.ts) under vitest's fake
 * timers: the first-byte, idle and total timeouts and the retry backoff are
 * judged on a clock the test moves, so each boundary is checked to the
 * millisecond (one tick before: still waiting; at it: refused) with no real
 * wait. The socket-level versions of these (a mock upstream that stalls) are
 * in gateway-faults.test.ts; this file pins the arithmetic.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Route } from "../../enclave/router.js";
import { UpstreamError, type ProviderAdapter, type ProviderCallContext } from "../../enclave/providers/types.js";
import { callOnce, defaultSleep, openStream, type UpstreamDeps, type UpstreamPolicy } from "../../enclave/upstream.js";

const POLICY: UpstreamPolicy = {
  firstByteTimeoutMs: 1_000,
  idleTimeoutMs: 500,
  totalTimeoutMs: 10_000,
  maxRetries: 2,
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 1_000,
};

function route(name = "p"): Route {
  const adapter = { info: { name, kind: "openai-compatible", baseUrl: "https://p.example" } } as unknown as ProviderAdapter;
  return { exposed: "m", label: "m", adapter, upstreamModel: "m-up", fallbacks: [] };
}

function deps(overrides: Partial<UpstreamDeps> = {}): UpstreamDeps {
  return {
    fetch: () => Promise.reject(new Error("no fetch in this test")),
    now: () => new Date(Date.now()),
    random: () => 1, // no jitter: the backoff is exactly base × 2^attempt
    sleep: defaultSleep,
    ...overrides,
  };
}

/** What a real adapter does while the provider is silent: wait until its signal aborts. */
function silentUntilAborted(ctx: ProviderCallContext): Promise<never> {
  return new Promise((_, reject) => {
    ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
  });
}

/** Settles the promise's state without waiting: "pending", or what it settled to. */
async function state<T>(p: Promise<T>): Promise<"pending" | { value: T } | { error: unknown }> {
  const marker = Symbol("pending");
  const r = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    Promise.resolve().then(() => marker),
  ]);
  return r === marker ? "pending" : (r as { value: T } | { error: unknown });
}

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2026-06-01T12:00:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("first-byte timeout", () => {
  it("waits exactly firstByteTimeoutMs, then refuses with a timeout (not retried)", async () => {
    let calls = 0;
    const call = callOnce([route()], new AbortController().signal, { ...POLICY, maxRetries: 0 }, deps(), (_r, ctx) => (calls++, silentUntilAborted(ctx)));
    call.catch(() => {});
    await vi.advanceTimersByTimeAsync(999);
    expect(await state(call)).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    const settled = await state(call);
    expect(settled).toMatchObject({ error: expect.any(UpstreamError) });
    expect((settled as { error: UpstreamError }).error.kind).toBe("timeout");
    expect(calls).toBe(1);
  });

  it("never outlasts the total budget, even when first-byte allows more", async () => {
    const call = callOnce([route()], new AbortController().signal, { ...POLICY, totalTimeoutMs: 300, maxRetries: 0 }, deps(), (_r, ctx) => silentUntilAborted(ctx));
    call.catch(() => {});
    await vi.advanceTimersByTimeAsync(299);
    expect(await state(call)).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(call)).toMatchObject({ error: { kind: "timeout" } });
  });
});

describe("stream idle timeout", () => {
  /** A stream whose chunks arrive at the given offsets (ms after the previous one); after the last it stalls until aborted. */
  function paced(gaps: number[]) {
    return (_r: Route, ctx: ProviderCallContext) =>
      (async function* () {
        for (const [i, gap] of gaps.entries()) {
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(resolve, gap);
            ctx.signal.addEventListener("abort", () => (clearTimeout(t), reject(ctx.signal.reason)), { once: true });
          });
          yield `chunk-${i}`;
        }
        await silentUntilAborted(ctx);
      })();
  }

  it("a chunk re-arms the idle timer; silence of exactly idleTimeoutMs ends the stream with a timeout", async () => {
    const opening = openStream([route()], new AbortController().signal, POLICY, deps(), paced([10, 499, 499, 499]));
    await vi.advanceTimersByTimeAsync(10);
    const opened = await opening;
    expect(opened.value.first).toBe("chunk-0");
    const got: string[] = [];
    const reading = (async () => {
      for await (const c of opened.value.rest) got.push(c);
    })();
    reading.catch(() => {});
    // Three more chunks, each 1 ms inside the idle window: 1,497 ms of stream in all, far past one idle period.
    await vi.advanceTimersByTimeAsync(499 * 3);
    expect(got).toEqual(["chunk-1", "chunk-2", "chunk-3"]);
    await vi.advanceTimersByTimeAsync(499);
    expect(await state(reading)).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(reading)).toMatchObject({ error: { kind: "timeout" } });
  });

  it("a stream that keeps trickling is still cut at the total budget", async () => {
    const policy = { ...POLICY, totalTimeoutMs: 2_000 };
    const opening = openStream([route()], new AbortController().signal, policy, deps(), paced([1, ...Array.from({ length: 100 }, () => 400)]));
    await vi.advanceTimersByTimeAsync(1);
    const opened = await opening;
    let n = 0;
    const reading = (async () => {
      for await (const _ of opened.value.rest) n++;
    })();
    reading.catch(() => {});
    await vi.advanceTimersByTimeAsync(1_998);
    expect(await state(reading)).toBe("pending");
    expect(n).toBe(4); // chunks at 401, 801, 1201, 1601 ms
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(reading)).toMatchObject({ error: { kind: "timeout" } });
  });

  it("a stream that never sends its first chunk times out at firstByteTimeoutMs, and a timeout is not retried", async () => {
    let opens = 0;
    const opening = openStream([route()], new AbortController().signal, { ...POLICY, maxRetries: 1 }, deps(), (r, ctx) => (opens++, paced([60_000])(r, ctx)));
    opening.catch(() => {});
    await vi.advanceTimersByTimeAsync(1_000);
    // A timeout is not a retryable error (the provider may still be working on it): one attempt only.
    expect(await state(opening)).toMatchObject({ error: { kind: "timeout" } });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(opens).toBe(1);
  });
});

describe("retry backoff", () => {
  it("waits base × 2^attempt between tries of one route, and not a millisecond less", async () => {
    const started: number[] = [];
    const t0 = Date.now();
    const call = callOnce([route()], new AbortController().signal, POLICY, deps(), async () => {
      started.push(Date.now() - t0);
      if (started.length < 3) throw new UpstreamError("status", "busy", 503);
      return "ok";
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(started).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual([0, 100]);
    await vi.advanceTimersByTimeAsync(199);
    expect(started).toEqual([0, 100]);
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual([0, 100, 300]);
    expect(await call).toMatchObject({ value: "ok", attempts: 3 });
  });

  it("honours a provider retry-after above the computed backoff, and caps the exponential part at retryMaxDelayMs", async () => {
    const started: number[] = [];
    const t0 = Date.now();
    const policy = { ...POLICY, maxRetries: 3, retryBaseDelayMs: 400, retryMaxDelayMs: 500 };
    const call = callOnce([route()], new AbortController().signal, policy, deps(), async () => {
      started.push(Date.now() - t0);
      if (started.length === 1) throw new UpstreamError("status", "slow down", 429, 2);
      if (started.length < 4) throw new UpstreamError("status", "busy", 502);
      return "ok";
    });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(started).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual([0, 2_000]);
    // attempt 1: min(500, 400 × 2) = 500; attempt 2: min(500, 1600) = 500
    await vi.advanceTimersByTimeAsync(1_000);
    expect(started).toEqual([0, 2_000, 2_500, 3_000]);
    expect(await call).toMatchObject({ value: "ok", attempts: 4 });
  });

  it("does not sleep past the total budget: it gives up with the last error instead", async () => {
    let calls = 0;
    const policy = { ...POLICY, totalTimeoutMs: 150, retryBaseDelayMs: 200 };
    const call = callOnce([route()], new AbortController().signal, policy, deps(), async () => {
      calls++;
      throw new UpstreamError("status", "busy", 503);
    });
    call.catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    const settled = await state(call);
    expect(settled).toMatchObject({ error: { kind: "status", status: 503 } });
    expect(calls).toBe(1);
  });

  it("a client that goes away during the backoff ends the wait at once", async () => {
    const client = new AbortController();
    let calls = 0;
    const call = callOnce([route()], client.signal, { ...POLICY, retryBaseDelayMs: 5_000, retryMaxDelayMs: 5_000 }, deps(), async () => {
      calls++;
      throw new UpstreamError("status", "busy", 503);
    });
    call.catch(() => {});
    await vi.advanceTimersByTimeAsync(10);
    expect(await state(call)).toBe("pending");
    client.abort(new DOMException("client went away", "AbortError"));
    await vi.advanceTimersByTimeAsync(0);
    expect(await state(call)).not.toBe("pending");
    expect(calls).toBe(1);
  });

  it("moves to the fallback route at once after the last retry of the first", async () => {
    const seen: Array<[string, number]> = [];
    const t0 = Date.now();
    const call = callOnce([route("a"), route("b")], new AbortController().signal, { ...POLICY, maxRetries: 1 }, deps(), async (r) => {
      seen.push([r.adapter.info.name, Date.now() - t0]);
      if (r.adapter.info.name === "a") throw new UpstreamError("connect", "refused");
      return "from b";
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(await call).toMatchObject({ value: "from b", attempts: 3 });
    expect(seen).toEqual([
      ["a", 0],
      ["a", 100],
      ["b", 100],
    ]);
  });
});
