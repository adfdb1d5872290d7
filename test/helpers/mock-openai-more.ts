/**
 * OpenAI's endpoints beyond chat, embeddings and images, for mock-openai.ts,
 * in OpenAI's wire format:
 * - POST /completions (legacy): a `text_completion` JSON, or SSE
 *   `data: {text_completion chunk}\n\n` per word, a finish chunk, with
 *   stream_options.include_usage a usage chunk with empty `choices`, then
 *   `data: [DONE]\n\n`;
 * - POST /moderations: `{id:"modr-…",model,results:[{flagged,categories,
 *   category_scores,category_applied_input_types}]}`, flagged when the input
 *   holds "kill";
 * - POST /audio/transcriptions and /audio/translations: multipart/form-data
 *   (parsed with undici's FormData, a malformed body is OpenAI's 400);
 *   `response_format` json (default, `{"text","usage"}`), verbose_json,
 *   text / srt / vtt as `text/plain; charset=utf-8`, as OpenAI sends them;
 *   the text names the file's size and the model;
 * - POST /audio/speech: `audio/mpeg`, chunked, in MOCK_SPEECH_CHUNKS pieces.
 * Every answer is a function of the request only.
 */
import type { Reply, StreamStep } from "./mock-upstream.js";

export const MOCK_SPEECH_CHUNKS = 4;
/** The mock's speech bytes: an MPEG frame header then bytes of the input, repeated to 4 KiB. */
export function mockSpeechBytes(input: string): Buffer {
  const seed = Buffer.from(`${input}|`, "utf8");
  const out = Buffer.alloc(4096);
  for (let i = 0; i < out.length; i++) out[i] = seed[i % seed.length]!;
  out[0] = 0xff;
  out[1] = 0xfb;
  return out;
}

export function mockTranscriptText(task: string, fileBytes: number, model: string): string {
  return `mock ${task === "transcriptions" ? "transcript" : "translation"} of ${fileBytes} bytes by ${model}`;
}

const json = (status: number, value: unknown, extra: Record<string, string>): Reply => {
  const bytes = Buffer.from(JSON.stringify(value), "utf8");
  return { status, headers: { "content-type": "application/json", "content-length": String(bytes.length), ...extra }, body: bytes };
};
const text = (value: string, extra: Record<string, string>): Reply => {
  const bytes = Buffer.from(value, "utf8");
  return { status: 200, headers: { "content-type": "text/plain; charset=utf-8", "content-length": String(bytes.length), ...extra }, body: bytes };
};
const openaiError = (status: number, message: string, extra: Record<string, string>): Reply =>
  json(status, { error: { message, type: "invalid_request_error", param: null, code: null } }, extra);

export async function answerMore(
  route: string,
  request: { headers: Record<string, string | string[] | undefined>; rawBody: Buffer; body: unknown },
  created: number,
  extra: Record<string, string>,
  faults: { destroyAfterChunks?: number; stallAfterChunks?: number } = {},
): Promise<Reply | undefined> {
  const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as Record<string, unknown>;
  if (route.endsWith("/completions") && !route.endsWith("/chat/completions")) return completions(body, created, extra);
  if (route.endsWith("/moderations")) return moderations(body, extra);
  if (route.endsWith("/audio/speech")) return speech(body, extra, faults);
  const task = /\/audio\/(transcriptions|translations)$/.exec(route)?.[1];
  if (task === undefined) return undefined;
  let form: FormData;
  try {
    form = await new Response(request.rawBody, { headers: { "content-type": String(request.headers["content-type"] ?? "") } }).formData();
  } catch {
    return openaiError(400, "Could not parse multipart form", extra);
  }
  const file = form.get("file");
  if (file === null || typeof file === "string") return openaiError(400, "Missing file", extra);
  const model = String(form.get("model") ?? "");
  const said = mockTranscriptText(task, file.size, model);
  switch (form.get("response_format") ?? "json") {
    case "json":
      return json(200, { text: said, usage: { type: "duration", seconds: 1 } }, extra);
    case "verbose_json":
      return json(200, { task: task === "transcriptions" ? "transcribe" : "translate", language: "english", duration: 1, text: said, segments: [] }, extra);
    case "text":
      return text(`${said}\n`, extra);
    case "srt":
      return text(`1\n00:00:00,000 --> 00:00:01,000\n${said}\n\n`, extra);
    case "vtt":
      return text(`WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n${said}\n\n`, extra);
    default:
      return openaiError(400, "Invalid response_format", extra);
  }
}

function completions(body: Record<string, unknown>, created: number, extra: Record<string, string>): Reply {
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(" ") : String(body.prompt ?? "");
  const words = ["mock", "legacy", "completion"];
  const promptTokens = prompt.split(/\s+/).filter((w) => w !== "").length;
  const usage = { prompt_tokens: promptTokens, completion_tokens: words.length, total_tokens: promptTokens + words.length };
  const head = { id: "cmpl-mock", object: "text_completion", created, model: String(body.model ?? "") };
  if (body.stream !== true) {
    return json(200, { ...head, choices: [{ text: ` ${words.join(" ")}`, index: 0, logprobs: null, finish_reason: "stop" }], usage }, extra);
  }
  const steps: StreamStep[] = words.map((w) => ({
    write: `data: ${JSON.stringify({ ...head, choices: [{ text: ` ${w}`, index: 0, logprobs: null, finish_reason: null }] })}\n\n`,
  }));
  steps.push({ write: `data: ${JSON.stringify({ ...head, choices: [{ text: "", index: 0, logprobs: null, finish_reason: "stop" }] })}\n\n` });
  if ((body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true)
    steps.push({ write: `data: ${JSON.stringify({ ...head, choices: [], usage })}\n\n` });
  steps.push({ end: "data: [DONE]\n\n" });
  return { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", ...extra }, stream: steps };
}

const CATEGORIES = [
  "harassment",
  "harassment/threatening",
  "hate",
  "hate/threatening",
  "illicit",
  "illicit/violent",
  "self-harm",
  "self-harm/intent",
  "self-harm/instructions",
  "sexual",
  "sexual/minors",
  "violence",
  "violence/graphic",
];

function moderations(body: Record<string, unknown>, extra: Record<string, string>): Reply {
  const inputs = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input.map(String) : [];
  const results = inputs.map((input) => {
    const flagged = input.includes("kill");
    return {
      flagged,
      categories: Object.fromEntries(CATEGORIES.map((c) => [c, flagged && c === "violence"])),
      category_scores: Object.fromEntries(CATEGORIES.map((c) => [c, flagged && c === "violence" ? 0.97 : 0.0001])),
      category_applied_input_types: Object.fromEntries(CATEGORIES.map((c) => [c, ["text"]])),
    };
  });
  return json(200, { id: "modr-mock", model: String(body.model ?? "omni-moderation-latest"), results }, extra);
}

/** `destroyAfterChunks`: the connection is reset after that many chunks (a provider dying mid-answer); `stallAfterChunks`: held there until released. */
function speech(body: Record<string, unknown>, extra: Record<string, string>, faults: { destroyAfterChunks?: number; stallAfterChunks?: number }): Reply {
  const { destroyAfterChunks, stallAfterChunks } = faults;
  const bytes = mockSpeechBytes(String(body.input ?? ""));
  const size = bytes.length / MOCK_SPEECH_CHUNKS;
  const steps: StreamStep[] = [];
  for (let i = 0; i < MOCK_SPEECH_CHUNKS; i++) {
    if (destroyAfterChunks === i) {
      steps.push({ cut: true });
      break;
    }
    if (stallAfterChunks === i) steps.push({ stall: true });
    steps.push({ write: bytes.subarray(i * size, (i + 1) * size) });
  }
  return { status: 200, headers: { "content-type": "audio/mpeg", ...extra }, stream: steps };
}
