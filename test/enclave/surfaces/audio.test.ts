import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { post, receiptOf, TOKEN } from "../../helpers/gateway-app.js";
import { mockSpeechBytes, mockTranscriptText } from "../../helpers/mock-openai-more.js";
import { startApisFixture, type ApisFixture } from "./apis-fixture.js";

/**
 * Audio: transcriptions and translations (multipart, the receipt over the
 * exact multipart bytes) and speech (binary), on every provider kind. Here
 * in-process (app.request), where speech is collected and signed in the
 * header; the streamed trailer receipt over a real socket is in
 * audio-speech-stream.test.ts.
 */
let f: ApisFixture;
let small: ApisFixture;
beforeAll(async () => {
  f = await startApisFixture();
  small = await startApisFixture({ limits: { maxBodyBytes: 4096 } });
});
afterAll(async () => {
  await f.close();
  await small.close();
});

const AUDIO = new Uint8Array(Buffer.from("RIFF....WAVEfmt fake audio bytes for the test, 0123456789"));

async function multipart(fields: Record<string, string>, file: Uint8Array | undefined = AUDIO): Promise<{ bytes: Uint8Array; contentType: string }> {
  const form = new FormData();
  if (file) form.append("file", new File([file], "clip.wav", { type: "audio/wav" }));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const encoded = new Response(form);
  return { bytes: new Uint8Array(await encoded.arrayBuffer()), contentType: encoded.headers.get("content-type")! };
}

function postMultipart(app: ApisFixture, path: string, m: { bytes: Uint8Array; contentType: string }): Promise<Response> {
  return Promise.resolve(app.g.app.request(path, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": m.contentType }, body: m.bytes }));
}

describe("transcriptions and translations", () => {
  it("openai: the exact multipart bytes go upstream when the route keeps the model name; the receipt hashes them", async () => {
    const m = await multipart({ model: "whisper-1", response_format: "json" });
    const res = await postMultipart(f, "/v1/audio/transcriptions", m);
    expect(res.status).toBe(200);
    const { claims, body } = await receiptOf(f.g, res, m.bytes);
    expect(JSON.parse(Buffer.from(body).toString())).toMatchObject({ text: mockTranscriptText("transcriptions", AUDIO.length, "whisper-1") });
    expect(claims).toMatchObject({ surface: "audio.transcriptions", provider: "openai", bodyRead: true });
    const sent = f.openaiMock.requests.at(-1)!;
    expect(sent.path).toBe("/v1/audio/transcriptions");
    expect(Buffer.compare(sent.rawBody, Buffer.from(m.bytes))).toBe(0);
    expect(sent.headers["content-type"]).toBe(m.contentType);
  });

  it("openai: a route that renames the model re-encodes the form with only `model` replaced", async () => {
    const result = await f.openai.audio.transcriptions.create({ file: await toFile(AUDIO, "clip.wav", { type: "audio/wav" }), model: "transcriber", language: "en" });
    expect(result.text).toBe(mockTranscriptText("transcriptions", AUDIO.length, "gpt-4o-transcribe"));
    const form = await new Response(f.openaiMock.requests.at(-1)!.rawBody, {
      headers: { "content-type": String(f.openaiMock.requests.at(-1)!.headers["content-type"]) },
    }).formData();
    expect(form.get("model")).toBe("gpt-4o-transcribe");
    expect(form.get("language")).toBe("en");
    expect(Buffer.from(await (form.get("file") as File).arrayBuffer())).toEqual(Buffer.from(AUDIO));
  });

  for (const model of ["whisper-1", "local"]) {
    it(`${model}: the SDK reads every response_format (json, verbose_json, text, srt, vtt), transcriptions and translations`, async () => {
      const file = await toFile(AUDIO, "clip.wav", { type: "audio/wav" });
      const json = await f.openai.audio.transcriptions.create({ file, model });
      expect(json.text).toContain(model === "local" ? "local transcript (not speech recognition):" : "mock transcript");
      const verbose = await f.openai.audio.transcriptions.create({ file, model, response_format: "verbose_json" });
      expect(verbose).toMatchObject({ language: "english", text: expect.any(String) });
      const text = await f.openai.audio.transcriptions.create({ file, model, response_format: "text" });
      expect(text).toMatch(/^(local|mock) transcript/);
      const srt = await f.openai.audio.transcriptions.create({ file, model, response_format: "srt" });
      expect(srt).toMatch(/^1\n00:00:00,000 --> 00:00:01,000\n/);
      const vtt = await f.openai.audio.transcriptions.create({ file, model, response_format: "vtt" });
      expect(vtt).toMatch(/^WEBVTT\n\n/);
      const translation = await f.openai.audio.translations.create({ file, model });
      expect(translation.text).toContain(model === "local" ? "local translation (not speech recognition):" : "mock translation");
    });
  }

  it("local: deterministic, a function of the file's bytes", async () => {
    const file = () => toFile(AUDIO, "clip.wav", { type: "audio/wav" });
    const a = await f.openai.audio.transcriptions.create({ file: await file(), model: "local" });
    const b = await f.openai.audio.transcriptions.create({ file: await file(), model: "local" });
    const other = await f.openai.audio.transcriptions.create({ file: await toFile(Buffer.from("other"), "x.wav"), model: "local" });
    expect(a.text).toBe(b.text);
    expect(a.text).not.toBe(other.text);
    expect(a.text).toMatch(/^local transcript \(not speech recognition\): [0-9a-f]{16}$/);
  });

  for (const model of ["compat", "claude", "gemini"]) {
    it(`${model}: refused, 400 unsupported_capability, nothing sent upstream`, async () => {
      const before = f.compatMock.requests.length + f.anthropicMock.requests.length + f.geminiMock.requests.length;
      for (const path of ["/v1/audio/transcriptions", "/v1/audio/translations"]) {
        const res = await postMultipart(f, path, await multipart({ model }));
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: "unsupported_capability", type: "invalid_request_error" } });
      }
      const err = await f.openai.audio.transcriptions.create({ file: await toFile(AUDIO, "a.wav"), model }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(f.compatMock.requests.length + f.anthropicMock.requests.length + f.geminiMock.requests.length).toBe(before);
    });
  }

  it("hostile uploads: malformed multipart, no file, no model, a JSON body, a bad response_format: typed 4xx, signed", async () => {
    const good = await multipart({ model: "local" });
    const boundary = /boundary=(.+)$/.exec(good.contentType)![1]!;
    const cases: [Uint8Array, string, number, string][] = [
      [new TextEncoder().encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\nno end`), good.contentType, 400, "invalid_request"],
      [good.bytes, "multipart/form-data; boundary=not-the-one", 400, "invalid_request"],
      [(await multipart({ model: "local" }, undefined)).bytes, (await multipart({ model: "local" }, undefined)).contentType, 400, "invalid_request"],
      [(await multipart({})).bytes, "", 415, "unsupported_media_type"],
      [new TextEncoder().encode('{"model":"local"}'), "application/json", 415, "unsupported_media_type"],
    ];
    const noModel = await multipart({});
    cases.push([noModel.bytes, noModel.contentType, 400, "invalid_request"]);
    const streamed = await multipart({ model: "whisper-1", stream: "true" });
    cases.push([streamed.bytes, streamed.contentType, 400, "invalid_request"]);
    const badFormat = await multipart({ model: "local", response_format: "mp3" });
    cases.push([badFormat.bytes, badFormat.contentType, 400, "invalid_request"]);
    for (const [bytes, contentType, status, code] of cases) {
      const res = await Promise.resolve(
        f.g.app.request("/v1/audio/transcriptions", { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": contentType }, body: bytes }),
      );
      const { claims, body } = await receiptOf(f.g, res, bytes);
      expect([res.status, JSON.parse(Buffer.from(body).toString()).error.code]).toEqual([status, code]);
      expect(claims.bodyRead).toBe(true);
    }
  });

  it("an upload over limits.maxBodyBytes is 413 request_too_large in OpenAI's shape, before any upstream call", async () => {
    const before = small.openaiMock.requests.length;
    const big = await multipart({ model: "whisper-1" }, new Uint8Array(5000));
    const res = await postMultipart(small, "/v1/audio/transcriptions", big);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "request_too_large", type: "invalid_request_error" } });
    const err = await small.openai.audio.transcriptions.create({ file: await toFile(new Uint8Array(5000), "a.wav"), model: "local" }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    expect(small.openaiMock.requests.length).toBe(before);
  });
});

describe("speech", () => {
  it("local: a small valid WAV, deterministic, signed over its exact bytes", async () => {
    const res = await f.openai.audio.speech.create({ model: "local", voice: "alloy", input: "hello there", response_format: "wav" });
    const wav = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get("content-type")).toBe("audio/wav");
    expect(wav.subarray(0, 4).toString("ascii")).toBe("RIFF");
    expect(wav.subarray(8, 12).toString("ascii")).toBe("WAVE");
    expect(wav.readUInt32LE(4)).toBe(wav.length - 8);
    expect(wav.readUInt32LE(40)).toBe(wav.length - 44);
    const body = JSON.stringify({ model: "local", voice: "alloy", input: "hello there" });
    const again = await post(f.g, "/v1/audio/speech", body);
    const { claims, body: bytes } = await receiptOf(f.g, again, body);
    expect(Buffer.from(bytes)).toEqual(wav);
    expect(claims).toMatchObject({ surface: "audio.speech", stream: true, status: 200 });
  });

  it("local: pcm too; mp3 and other formats refused as unsupported_capability", async () => {
    const pcm = await f.openai.audio.speech.create({ model: "local", voice: "alloy", input: "x", response_format: "pcm" });
    expect(pcm.headers.get("content-type")).toBe("audio/pcm");
    expect((await pcm.arrayBuffer()).byteLength).toBe(4000);
    const err = await f.openai.audio.speech.create({ model: "local", voice: "alloy", input: "x", response_format: "mp3" }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
  });

  it("openai: native, the provider's audio bytes exactly, the route's model upstream", async () => {
    const res = await f.openai.audio.speech.create({ model: "gpt-4o", voice: "alloy", input: "speak" });
    expect(res.headers.get("content-type")).toBe("audio/mpeg");
    expect(Buffer.from(await res.arrayBuffer())).toEqual(mockSpeechBytes("speak"));
    expect(f.openaiMock.requests.at(-1)!.body).toMatchObject({ model: "gpt-4o", voice: "alloy", input: "speak" });
  });

  for (const model of ["compat", "claude", "gemini"]) {
    it(`${model}: refused, 400 unsupported_capability`, async () => {
      const res = await post(f.g, "/v1/audio/speech", { model, voice: "alloy", input: "x" });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "unsupported_capability" } });
    });
  }

  it("bad input: no input, an unknown model", async () => {
    expect((await post(f.g, "/v1/audio/speech", { model: "local", voice: "alloy" })).status).toBe(400);
    expect((await post(f.g, "/v1/audio/speech", { model: "nope", voice: "alloy", input: "x" })).status).toBe(404);
    expect((await post(f.g, "/v1/audio/speech", { model: "gpt-4o", voice: "alloy", input: "x", stream_format: "sse" })).status).toBe(400);
  });
});
