/**
 * `egw proxy` in front of the audio endpoints, with the official openai SDK
 * pointed at the plain-HTTP proxy: speech (whose receipt is an HTTP
 * trailer) arrives verified and byte-identical, a multipart transcription
 * is verified over the exact multipart bytes, and a legacy completions
 * stream ends verified.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs } from "../../attestation/client/helpers.js";
import { startInProcessProxy, type InProcessProxy } from "../../helpers/in-process-proxy.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";

let h: Harness;
let client: OpenAI;
let anthropic: Anthropic;
let proxy: InProcessProxy;

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  proxy = await startInProcessProxy(h);
  const proxyUrl = proxy.url;
  client = new OpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: proxyUrl, apiKey: CLIENT_TOKEN, maxRetries: 0 });
});
afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
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
    expect(proxy.log()).toMatch(/POST \/v1\/audio\/speech → 200 verified \(receipt egw-/);
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
    expect(proxy.log()).toMatch(/POST \/v1\/completions → 200 stream verified/);
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
