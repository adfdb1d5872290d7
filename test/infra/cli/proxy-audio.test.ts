/**
 * `egw proxy` in front of the audio endpoints, with the official openai SDK
 * pointed at the plain-HTTP proxy: speech (whose receipt is an HTTP
 * trailer) arrives verified and byte-identical, a multipart transcription
 * is verified over the exact multipart bytes, and a legacy completions
 * stream ends verified.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import fs from "node:fs";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../../../infra/cli/context.js";
import { proxyCommand } from "../../../infra/cli/proxy.js";
import { manifestJson, removeTempDirs, tempDir } from "../../attestation/client/helpers.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";

let h: Harness;
let client: OpenAI;
let anthropic: Anthropic;
let stop: () => Promise<number>;
let stdout = "";
let stderr = "";

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "dev-root.pem"), h.ca.rootPem);
  fs.writeFileSync(
    path.join(dir, "good.json"),
    manifestJson({ label: "test build", configSha256: [h.enclave.configSha256], trust: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" } } }),
  );
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
  const proxyUrl = /listening on (http:\/\/\S+)/.exec(stdout)![1]!;
  client = new OpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: proxyUrl, apiKey: CLIENT_TOKEN, maxRetries: 0 });
});
afterAll(async () => {
  if (stop) expect(await stop()).toBe(0);
  await h?.close();
  removeTempDirs();
});

describe("egw proxy with the audio and legacy endpoints", () => {
  it("speech: the trailer receipt verified, the WAV unchanged", async () => {
    const res = await client.audio.speech.create({ model: "local", voice: "alloy", input: "through the proxy", response_format: "wav" });
    expect(res.headers.get("x-egw-verified")).toMatch(/^attestation\+receipt;/);
    const wav = Buffer.from(await res.arrayBuffer());
    expect(wav.subarray(0, 4).toString("ascii")).toBe("RIFF");
    expect(wav.length).toBe(44 + 4000);
    expect(stdout + stderr).toMatch(/POST \/v1\/audio\/speech → 200 verified \(receipt egw-/);
  });

  it("transcription: multipart verified through the proxy", async () => {
    const result = await client.audio.transcriptions.create({ file: await toFile(Buffer.from("some audio"), "a.wav"), model: "local", response_format: "verbose_json" });
    expect(result.text).toMatch(/^local transcript \(not speech recognition\): [0-9a-f]{16}$/);
  });

  it("legacy completions stream: verified at its end", async () => {
    const stream = await client.completions.create({ model: "local", prompt: "proxy me", stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe("local model (not an LLM): you said: proxy me");
    expect(stdout + stderr).toMatch(/POST \/v1\/completions → 200 stream verified/);
  });

  it("count_tokens, models and moderations through the proxy, each verified", async () => {
    const { data, response } = await anthropic.messages.countTokens({ model: "local", messages: [{ role: "user", content: "abcd" }] }).withResponse();
    expect(data.input_tokens).toBe(5);
    expect(response.headers.get("x-egw-token-count")).toBe("estimate");
    expect(response.headers.get("x-egw-verified")).toMatch(/^attestation\+receipt;/);
    expect((await anthropic.models.retrieve("local")).type).toBe("model");
    expect((await client.models.retrieve("local")).object).toBe("model");
    expect((await client.moderations.create({ model: "local", input: "[flag]" })).results[0]!.flagged).toBe(true);
  });
});
