import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ScenarioQueue, startMockUpstream, type MockUpstream, type StreamStep } from "./mock-upstream.js";

/** The one mock upstream's own behaviour, below any provider's wire encoder. */
let upstream: MockUpstream | undefined;
afterEach(async () => {
  await upstream?.close();
  upstream = undefined;
});

/** Reads a response on a raw http.request, so a cut shows up as the socket error it is. */
function get(url: string, body = ""): Promise<{ status: number; text: string; error?: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: "POST", agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      res.on("error", (e) => resolve({ status: res.statusCode ?? 0, text, error: (e as NodeJS.ErrnoException).code ?? e.message, headers: res.headers }));
    });
    req.on("error", (e) => resolve({ status: 0, text: "", error: (e as NodeJS.ErrnoException).code ?? e.message, headers: {} }));
    req.end(body);
  });
}

async function streaming(steps: StreamStep[]): Promise<MockUpstream> {
  upstream = await startMockUpstream({ respond: () => ({ status: 200, headers: { "content-type": "text/event-stream" }, stream: steps }) });
  return upstream;
}

describe("mock upstream", () => {
  it("plays a stream script in order and ends with the last bytes", async () => {
    const u = await streaming([{ write: "a\n\n" }, { delay: 5 }, { write: "b\n\n" }, { end: "done\n\n" }]);
    const res = await get(u.origin);
    expect(res).toMatchObject({ status: 200, text: "a\n\nb\n\ndone\n\n" });
    expect(res.headers["content-type"]).toBe("text/event-stream");
  });

  it("a cut drops the connection after the bytes before it, with no terminator", async () => {
    const u = await streaming([{ write: "a\n\n" }, { cut: true }, { write: "never" }]);
    const res = await get(u.origin);
    expect(res.text).toBe("a\n\n");
    expect(res.error).toBeDefined();
  });

  it("a stall holds the stream until release(), counted by activeStreams", async () => {
    const u = await streaming([{ write: "a" }, { stall: true }, { end: "b" }]);
    const pending = get(u.origin);
    await u.waitForStall();
    expect(u.activeStreams()).toBe(1);
    u.release();
    expect((await pending).text).toBe("ab");
    await expect.poll(() => u.activeStreams()).toBe(0);
  });

  it("a stall with `until` resumes when it settles", async () => {
    let go!: () => void;
    const until = new Promise<void>((r) => (go = r));
    const u = await streaming([{ stall: true, until }, { end: "x" }]);
    const pending = get(u.origin);
    await u.waitForStall();
    go();
    expect((await pending).text).toBe("x");
  });

  it("bounds the request body and hands the encoder the parsed JSON", async () => {
    const seen: unknown[] = [];
    upstream = await startMockUpstream({
      maxBodyBytes: 16,
      tooLarge: () => ({ status: 413, headers: {}, body: "too large" }),
      respond: ({ request }) => {
        seen.push(request.body);
        return { status: 200, headers: { "content-length": 2 }, body: "ok" };
      },
    });
    expect(await get(upstream.origin, '{"a":1}')).toMatchObject({ status: 200, text: "ok" });
    expect(seen).toEqual([{ a: 1 }]);
    expect(await get(upstream.origin, "x".repeat(64 * 1024))).toMatchObject({ status: 413 });
    expect(seen).toHaveLength(1);
  });

  it("turns a throwing encoder into its internal error reply", async () => {
    upstream = await startMockUpstream({
      respond: () => {
        throw new Error("boom");
      },
      internalError: () => ({ status: 500, headers: {}, body: "internal" }),
    });
    expect(await get(upstream.origin)).toMatchObject({ status: 500, text: "internal" });
  });
});

describe("ScenarioQueue", () => {
  it("uses queued scenarios first, then the default (a value or a function of the request), then the empty one", () => {
    const q = new ScenarioQueue<{ n: number }, string>({ n: 0 }, () => ({ n: -1 }));
    q.enqueue({ n: 1 }, { n: 2 });
    expect([q.next("r"), q.next("r"), q.next("r")]).toEqual([{ n: 1 }, { n: 2 }, { n: 0 }]);
    q.setDefault((r) => (r === "x" ? { n: 9 } : undefined));
    expect([q.next("x"), q.next("y")]).toEqual([{ n: 9 }, { n: -1 }]);
    q.replaceQueue([{ n: 5 }]);
    q.clear();
    expect(q.next("x")).toEqual({ n: -1 });
  });
});
