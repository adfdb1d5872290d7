import { describe, expect, it } from "vitest";
import { ClientDirectory, hashToken } from "../../../../enclave/auth.js";
import { authenticate } from "../../../../enclave/http/middleware/auth.js";
import { addressRateLimit, clientAddressOf, clientRateLimit } from "../../../../enclave/http/middleware/limits.js";
import { nodeRequest } from "../../../../enclave/http/middleware/node-request.js";
import { TokenBuckets } from "../../../../enclave/limits/token-bucket.js";
import { testClock } from "../../../helpers/gateway-app.js";
import { appAround } from "./helpers.js";

describe("addressRateLimit", () => {
  it("limits per relay-reported address, with retry-after, and refills with time", async () => {
    const clock = testClock();
    const app = appAround([addressRateLimit({ enabled: true, limits: { ipRateLimitPerMinute: 2 }, rates: new TokenBuckets(() => clock.now().getTime()) })]);
    const from = (relayAddress: string) => app.request("/x", { method: "POST" }, { relayAddress });
    expect((await from("192.0.2.1")).status).toBe(200);
    expect((await from("192.0.2.1")).status).toBe(200);
    const limited = await from("192.0.2.1");
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({ code: "rate_limited", retryAfter: 30 });
    // Another address has its own bucket.
    expect((await from("192.0.2.2")).status).toBe(200);
    clock.advance(30_000);
    expect((await from("192.0.2.1")).status).toBe(200);
  });

  it("does nothing when the relay reports no address, or the server does not read PROXY headers", async () => {
    const rates = new TokenBuckets(() => 0);
    const off = appAround([addressRateLimit({ enabled: false, limits: { ipRateLimitPerMinute: 1 }, rates })]);
    const on = appAround([addressRateLimit({ enabled: true, limits: { ipRateLimitPerMinute: 1 }, rates })]);
    for (let i = 0; i < 3; i++) {
      expect((await off.request("/x", { method: "POST" }, { relayAddress: "192.0.2.9" })).status).toBe(200);
      expect((await on.request("/x", { method: "POST" }, { relayAddress: null })).status).toBe(200);
      expect((await on.request("/x", { method: "POST" })).status).toBe(200);
    }
  });

  it("clientAddressOf takes only a string", () => {
    expect(clientAddressOf(undefined)).toBeNull();
    expect(clientAddressOf({ relayAddress: null })).toBeNull();
    expect(clientAddressOf({ relayAddress: 7 as unknown as string })).toBeNull();
    expect(clientAddressOf({ relayAddress: "2001:db8:0:0:0:0:0:7" })).toBe("2001:db8:0:0:0:0:0:7");
  });
});

describe("clientRateLimit", () => {
  const clients = new ClientDirectory([
    { name: "slow", tokenSha256: hashToken("slow"), models: ["*"], rateLimitPerMinute: 1 },
    { name: "default", tokenSha256: hashToken("default"), models: ["*"] },
  ]);

  it("uses the client's own limit, else the gateway's, per client", async () => {
    const clock = testClock();
    const app = appAround([
      nodeRequest(),
      authenticate(clients, "openai"),
      clientRateLimit({ limits: { rateLimitPerMinute: 3 }, rates: new TokenBuckets(() => clock.now().getTime()) }),
    ]);
    const as = (token: string) => app.request("/x", { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect((await as("slow")).status).toBe(200);
    const limited = await as("slow");
    expect(await limited.json()).toEqual({ code: "rate_limited", retryAfter: 60 });
    for (let i = 0; i < 3; i++) expect((await as("default")).status).toBe(200);
    expect((await as("default")).status).toBe(429);
  });
});
