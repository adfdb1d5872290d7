import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../enclave/auth.js";
import { CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

let mock: MockOpenAI;
let h: Harness;

beforeAll(async () => {
  mock = await startMockOpenAI();
  h = await startHarness({
    config: JSON.stringify({
      version: 1,
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mock.url, secret: "K" },
      ],
      models: { gpt: { provider: "openai", model: "gpt-4o" }, local: { provider: "local", model: "local" } },
      egressAllowlist: [new URL(mock.url).host],
      clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
      limits: { maxBodyBytes: 2048, maxConcurrentRequests: 2, attestationPerSecond: 2, idleTimeoutMs: 5000, firstByteTimeoutMs: 5000 },
    }),
    secrets: new Map([["K", "k"]]),
  });
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});

const headers = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };

describe("limits", () => {
  it("counts the body on the stream: a chunked body with no content-length is cut at the limit (413)", async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 64 * 1024) return controller.close();
        sent += 1024;
        controller.enqueue(new Uint8Array(1024).fill(0x20));
      },
    });
    const res = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect(res.headers.get("content-length") ?? "").not.toBe("");
  });

  it("a declared content-length over the limit is refused before the body is read", async () => {
    const res = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers: { ...headers }, body: "x".repeat(4096) });
    expect(res.status).toBe(413);
  });

  it("the concurrency limit answers 429 overloaded while two requests are in flight", async () => {
    mock.setScenario({ headersDelayMs: 400 });
    const slow = [0, 1].map(() =>
      h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "x" }] }) }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const third = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }) });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("overloaded");
    expect(third.headers.get("retry-after")).toBe("1");
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
    mock.setScenario(undefined);
    // Slots are released: the next request is served.
    const after = await h.fetch(`${h.baseURL}/chat/completions`, { method: "POST", headers, body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }) });
    expect(after.status).toBe(200);
  });

  it("streams are never buffered: the first chunk reaches the client while the upstream holds the rest", async () => {
    mock.setScenario({ stallAfterChunks: 1 });
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "gpt", stream: true, messages: [{ role: "user", content: "x" }] }),
    });
    const reader = res.body!.getReader();
    const first = await Promise.race([reader.read(), new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2000))]);
    expect(first).not.toBe("timeout");
    expect(Buffer.from((first as { value: Uint8Array }).value).toString()).toMatch(/^data: \{/);
    expect(mock.activeStreams()).toBe(1); // the upstream is still open, holding the rest
    mock.releaseStalled();
    for (;;) if ((await reader.read()).done) break;
    mock.setScenario(undefined);
  });

  it("fresh attestation documents are rate limited; the cached one is always served", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await h.fetch(`${h.baseURL}/attestation?nonce=${"ab".repeat(16)}${String(i).padStart(2, "0")}`);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    const cached = await Promise.all([1, 2, 3].map(() => h.fetch(`${h.baseURL}/attestation`).then(async (r) => ({ status: r.status, bytes: Buffer.from(await r.arrayBuffer()) }))));
    expect(cached.map((c) => c.status)).toEqual([200, 200, 200]);
    expect(cached[0]!.bytes.equals(cached[1]!.bytes)).toBe(true);
  });

  it("nonces outside 8..64 bytes or not hex are a 400", async () => {
    for (const nonce of ["abc", "zz".repeat(16), "ab".repeat(4 - 1), "ab".repeat(65)]) {
      const res = await h.fetch(`${h.baseURL}/attestation?nonce=${nonce}`);
      expect(res.status).toBe(400);
    }
  });

  it("JSON attestation format on request", async () => {
    const res = await h.fetch(`${h.baseURL}/attestation?format=json`);
    const body = (await res.json()) as { format: string; document: string };
    expect(body.format).toBe("cose_sign1");
    expect(Buffer.from(body.document, "base64")[0]).toBe(0x84);
  });

  it("serves HTTPS only: a plaintext HTTP request on the port gets no HTTP answer", async () => {
    const port = h.enclave.server.port!;
    const net = await import("node:net");
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
      let data = "";
      s.on("data", (d) => (data += d.toString("latin1")));
      s.on("close", () => resolve(data));
      s.on("error", () => resolve(data));
      setTimeout(() => s.destroy(), 1500);
    });
    expect(answer).not.toContain("HTTP/1.1 200");
  });
});
