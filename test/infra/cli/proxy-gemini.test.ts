/**
 * `egw proxy` in front of the Gemini-native surface: @google/genai pointed at
 * the plain-HTTP proxy gets verified answers and streams; a token sent as
 * Google's `?key=` never reaches the proxy's log lines; the proxy's own
 * refusals on /v1beta are in Google's error shape.
 */
import { ApiError, GoogleGenAI } from "@google/genai";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs } from "../../attestation/client/helpers.js";
import { startInProcessProxy, type InProcessProxy } from "../../helpers/in-process-proxy.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";

let h: Harness;
let proxyUrl: string;
let proxy: InProcessProxy;

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  proxy = await startInProcessProxy(h);
  proxyUrl = proxy.url;
});
afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await h?.close();
  removeTempDirs();
});

describe("egw proxy with the Gemini-native surface", () => {
  it("@google/genai through the proxy: generateContent and a verified stream", async () => {
    const ai = new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: proxyUrl } });
    const res = await ai.models.generateContent({ model: "local", contents: "through the proxy" });
    expect(res.text).toContain("through the proxy");
    let text = "";
    let finish: unknown;
    for await (const chunk of await ai.models.generateContentStream({ model: "local", contents: "stream through the proxy" })) {
      text += chunk.text ?? "";
      finish = chunk.candidates?.[0]?.finishReason ?? finish;
    }
    expect(text).toContain("stream through the proxy");
    expect(finish).toBe("STOP");
    expect(proxy.log()).toContain("POST /v1beta/models/local:streamGenerateContent → 200 stream verified");
  });

  it("a ?key= token is accepted but never logged", async () => {
    const res = await fetch(`${proxyUrl}/v1beta/models/local:generateContent?key=${CLIENT_TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: "query key" }] }] }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(proxy.log()).toContain("POST /v1beta/models/local:generateContent → 200 verified");
    expect(proxy.log()).not.toContain(CLIENT_TOKEN);
  });

  it("the proxy's own refusal on /v1beta is in Google's shape; the gateway's refusals reach genai as ApiError", async () => {
    const { port } = new URL(proxyUrl);
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/v1beta/models", headers: { host: "evil.example" } }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(refused.status).toBe(403);
    const body = JSON.parse(refused.body) as { error: { code: number; status: string; message: string } };
    expect(body).toMatchObject({ error: { code: 403, status: "EGW_VERIFICATION_FAILED" } });
    expect(body.error.message.startsWith("ERR_ORIGIN: ")).toBe(true);
    const err = await new GoogleGenAI({ apiKey: "wrong", httpOptions: { baseUrl: proxyUrl } }).models.generateContent({ model: "local", contents: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
  });
});
