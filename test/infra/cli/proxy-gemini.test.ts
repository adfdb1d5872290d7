/**
 * `egw proxy` in front of the Gemini-native surface: @google/genai pointed at
 * the plain-HTTP proxy gets verified answers and streams; a token sent as
 * Google's `?key=` never reaches the proxy's log lines; the proxy's own
 * refusals on /v1beta are in Google's error shape.
 */
import { ApiError, GoogleGenAI } from "@google/genai";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../../../infra/cli/context.js";
import { proxyCommand } from "../../../infra/cli/proxy.js";
import { manifestJson, removeTempDirs, tempDir } from "../../attestation/client/helpers.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";

let h: Harness;
let dir: string;
let proxyUrl: string;
let stderr = "";
let stop: () => Promise<number>;

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  dir = tempDir();
  fs.writeFileSync(path.join(dir, "dev-root.pem"), h.ca.rootPem);
  fs.writeFileSync(
    path.join(dir, "good.json"),
    manifestJson({ label: "test build", configSha256: [h.enclave.configSha256], trust: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" } } }),
  );
  let stdout = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), stdin: Readable.from([]), cwd: dir, now: () => new Date(), env: {} };
  const abort = new AbortController();
  const done = proxyCommand(["--upstream", new URL(h.baseURL).origin, "--policy", "good.json", "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"], ctx, {
    signal: abort.signal,
  });
  stop = async () => {
    abort.abort();
    return done;
  };
  for (let i = 0; i < 2000 && !/listening on (http:\/\/\S+)/.test(stdout); i++) await new Promise((r) => setTimeout(r, 5));
  proxyUrl = /listening on (http:\/\/\S+)/.exec(stdout)![1]!;
});
afterAll(async () => {
  if (stop) expect(await stop()).toBe(0);
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
    expect(stderr).toContain("POST /v1beta/models/local:streamGenerateContent → 200 stream verified");
  });

  it("a ?key= token is accepted but never logged", async () => {
    const res = await fetch(`${proxyUrl}/v1beta/models/local:generateContent?key=${CLIENT_TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: "query key" }] }] }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(stderr).toContain("POST /v1beta/models/local:generateContent → 200 verified");
    expect(stderr).not.toContain(CLIENT_TOKEN);
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
