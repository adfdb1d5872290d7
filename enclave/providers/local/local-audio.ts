import { createHash } from "node:crypto";
import { GatewayError } from "../../errors.js";
import type { AudioUpload, BinaryStream, RawAnswer } from "../types.js";

/**
 * The built-in model's audio, deterministic and NOT speech recognition or
 * synthesis:
 * - transcriptions / translations: the text is
 *   "local transcript (not speech recognition): <h>" (or "local
 *   translation …"), h the first 16 hex digits of SHA-256 over the uploaded
 *   file's bytes; `response_format` json (default) `{"text"}`, text (the
 *   text and "\n"), verbose_json (task, language "english", duration =
 *   bytes / 32000 s, one segment), srt and vtt (one cue, 0 → 1 s);
 * - speech: a WAV (RIFF, PCM 16-bit mono 8 kHz) of 0.25 s whose samples are
 *   SHA-256(input ‖ block) counter-extended, sent in four pieces (header,
 *   then the samples in three) so streaming paths are exercised;
 *   response_format wav or pcm (raw samples, `audio/pcm`), absent means wav;
 *   other formats (mp3, opus, aac, flac) are unsupported_capability.
 */
export const LOCAL_TRANSCRIPT_PREFIX = "local transcript (not speech recognition):";
export const LOCAL_TRANSLATION_PREFIX = "local translation (not speech recognition):";
const SAMPLE_RATE = 8000;
const SAMPLES = SAMPLE_RATE / 4;

export function localTranscript(upload: AudioUpload): RawAnswer {
  const digest = createHash("sha256").update(upload.file).digest("hex").slice(0, 16);
  const text = `${upload.task === "transcriptions" ? LOCAL_TRANSCRIPT_PREFIX : LOCAL_TRANSLATION_PREFIX} ${digest}`;
  const format = upload.form.get("response_format") ?? "json";
  const json = (value: unknown): RawAnswer => ({ bytes: new TextEncoder().encode(JSON.stringify(value)), contentType: "application/json" });
  const plain = (value: string, contentType: string): RawAnswer => ({ bytes: new TextEncoder().encode(value), contentType });
  const duration = Math.round((upload.file.byteLength / 32000) * 100) / 100;
  switch (format) {
    case "json":
      return json({ text, usage: { type: "duration", seconds: Math.ceil(duration) } });
    case "text":
      return plain(`${text}\n`, "text/plain; charset=utf-8");
    case "verbose_json":
      return json({
        task: upload.task === "transcriptions" ? "transcribe" : "translate",
        language: "english",
        duration,
        text,
        segments: [{ id: 0, seek: 0, start: 0, end: duration, text, tokens: [], temperature: 0, avg_logprob: 0, compression_ratio: 1, no_speech_prob: 0 }],
      });
    case "srt":
      return plain(`1\n00:00:00,000 --> 00:00:01,000\n${text}\n\n`, "application/x-subrip; charset=utf-8");
    case "vtt":
      return plain(`WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n${text}\n\n`, "text/vtt; charset=utf-8");
    default:
      throw new GatewayError("invalid_request", "response_format must be one of json, text, verbose_json, srt, vtt.");
  }
}

export function localSpeech(request: Record<string, unknown>): BinaryStream {
  if (typeof request.input !== "string" || request.input === "") throw new GatewayError("invalid_request", "`input` must be a non-empty string.");
  const format = request.response_format ?? "wav";
  if (format !== "wav" && format !== "pcm") throw new GatewayError("unsupported_capability", "The local model speaks only wav and pcm.");
  const samples = Buffer.alloc(SAMPLES * 2);
  for (let block = 0, at = 0; at < samples.length; block++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(block);
    const digest = createHash("sha256").update(request.input).update(counter).digest();
    at += digest.copy(samples, at);
  }
  const third = Math.ceil(samples.length / 3);
  const pieces = [samples.subarray(0, third), samples.subarray(third, 2 * third), samples.subarray(2 * third)];
  const chunks = format === "wav" ? [wavHeader(samples.length), ...pieces] : pieces;
  return { contentType: format === "wav" ? "audio/wav" : "audio/pcm", chunks: yieldAll(chunks.map((c) => new Uint8Array(c))) };
}

async function* yieldAll(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

/** The 44-byte canonical WAV header for 16-bit mono PCM. */
function wavHeader(dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write("RIFF", 0, "ascii");
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write("WAVE", 8, "ascii");
  h.write("fmt ", 12, "ascii");
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(SAMPLE_RATE, 24);
  h.writeUInt32LE(SAMPLE_RATE * 2, 28); // byte rate
  h.writeUInt16LE(2, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write("data", 36, "ascii");
  h.writeUInt32LE(dataBytes, 40);
  return h;
}
