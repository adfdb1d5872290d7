/**
 * Requests the gateway refuses before reading their body (unknown path, 401,
 * 413) carry receipts with body_read false and no request hash (receipt v2).
 * The verifying client and the proxy must report the gateway's own status
 * and error body for them — never a tamper alarm — while still binding the
 * receipt to the method and path that were sent.
 */
import tls from "node:tls";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type VerifiedFetch } from "../../../attestation/client/index.js";
import { checkBufferedResponse } from "../../../attestation/client/response-check.js";
import { startVerifyingProxy, type RunningProxy } from "../../../infra/cli/proxy.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST } from "./helpers.js";

let h: Harness;
let f: VerifiedFetch;
let proxy: RunningProxy;
const MAX_BODY = 1024;

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, maxBodyBytes: MAX_BODY } }) });
  const policy = { measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any" as const, trustedRoots: [h.anchor] };
  f = createVerifiedFetch({ baseURL: h.baseURL, policy });
  proxy = await startVerifyingProxy({ upstream: h.baseURL, policy, host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await f?.close();
  await proxy?.close();
  await h?.close();
});

const chat = JSON.stringify({ model: "local", messages: [{ role: "user", content: "secret prompt" }] });
const auth = { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" };
const origin = () => new URL(h.baseURL).origin;

const cases: { name: string; path: string; headers: Record<string, string>; body: string; status: number; code: string }[] = [
  { name: "unknown path", path: "/v1/no-such-endpoint", headers: auth, body: chat, status: 404, code: "not_found" },
  { name: "oversized body (413)", path: "/v1/chat/completions", headers: auth, body: "x".repeat(MAX_BODY * 4), status: 413, code: "request_too_large" },
];

describe("refused before the body was read: the gateway's answer, no tamper alarm", () => {
  for (const c of cases) {
    it(`verified fetch, ${c.name}: status ${c.status}, the gateway's error body, receipt body_read false`, async () => {
      const { response, receipt } = await f.exchange(`${origin()}${c.path}`, { method: "POST", headers: c.headers, body: c.body });
      expect(response.status).toBe(c.status);
      expect(JSON.stringify(await response.json())).toContain(c.code);
      const verified = await receipt;
      expect(verified.claims).toMatchObject({ v: 2, method: "POST", path: c.path, status: c.status, bodyRead: false });
      expect(verified.claims.requestSha256).toBeUndefined();
      expect(verified.claims.upstream).toBeUndefined();
    });

    it(`proxy, ${c.name}: status ${c.status} and the gateway's error body, marked verified`, async () => {
      const res = await fetch(`${proxy.url}${c.path}`, { method: "POST", headers: c.headers, body: c.body });
      expect(res.status).toBe(c.status);
      expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=UNCONSTRAINED");
      expect(await res.text()).toContain(c.code);
    });
  }

  it("401 through the verified fetch, the official SDK and the proxy: the gateway's 401", async () => {
    const bad = new OpenAI({ baseURL: h.baseURL, apiKey: "wrong-token", fetch: f, maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: "local", messages: [{ role: "user", content: "x" }] })).rejects.toMatchObject({ status: 401 });
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST", headers: { ...auth, authorization: "Bearer wrong" }, body: chat });
    expect(res.status).toBe(401);
    expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=UNCONSTRAINED");
  });

  it("GET of an unknown path through the proxy is a 404 from the gateway", async () => {
    const res = await fetch(`${proxy.url}/v2/whatever`, { headers: auth });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=UNCONSTRAINED");
  });
});

describe("a receipt binds the method and path it answered", () => {
  it("the 404 for one path does not pass for another path or method: ERR_RECEIPT_CLAIMS_MISMATCH", async () => {
    const { response, receipt, peer } = await f.exchange(`${origin()}/v1/nope`, { method: "POST", headers: auth, body: chat });
    const body = new Uint8Array(await response.arrayBuffer());
    const v = await receipt;
    const args = { peer, status: response.status, headers: response.headers, body };
    expect(checkBufferedResponse({ ...args, request: v.request }).claims.path).toBe("/v1/nope");
    expect(() => checkBufferedResponse({ ...args, request: { ...v.request, url: `${origin()}/v1/other` } })).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_CLAIMS_MISMATCH" }),
    );
    expect(() => checkBufferedResponse({ ...args, request: { ...v.request, method: "PUT" } })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_CLAIMS_MISMATCH" }));
  });

  it("a success receipt that claims not to have read a non-empty body is refused (ERR_RECEIPT_REQUEST_MISMATCH)", async () => {
    // GET /v1/models is answered without reading a body: fine for the empty body sent,
    // not for a request that (the client believes) carried one.
    const { response, receipt, peer } = await f.exchange(`${origin()}/v1/models`, { headers: auth });
    expect(response.status).toBe(200);
    const v = await receipt;
    expect(v.claims.bodyRead).toBe(false);
    const body = new Uint8Array(await response.arrayBuffer());
    expect(() => checkBufferedResponse({ peer, status: 200, headers: response.headers, body, request: { ...v.request, body: new TextEncoder().encode("{}") } })).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_REQUEST_MISMATCH" }),
    );
  });
});

describe("the enclave's TLS", () => {
  const handshake = (options: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const url = new URL(h.baseURL);
      const socket = tls.connect({ host: "127.0.0.1", port: Number(url.port), rejectUnauthorized: false, ...options }, () => {
        const version = socket.getProtocol() ?? "";
        socket.destroy();
        resolve(version);
      });
      socket.once("error", reject);
    });

  it("speaks TLS 1.3", async () => {
    expect(await handshake({})).toBe("TLSv1.3");
  });

  it("refuses a client that offers at most TLS 1.2 (a host cannot downgrade the channel)", async () => {
    await expect(handshake({ maxVersion: "TLSv1.2", minVersion: "TLSv1.2" })).rejects.toThrow(/protocol version|alert|handshake|SSL/i);
  });
});
