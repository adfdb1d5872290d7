import { createHash } from "node:crypto";
import type http from "node:http";
import { ScenarioQueue, startMockUpstream, type Reply, type StreamStep } from "./mock-upstream.js";

/**
 * A local stand-in for Google's Gemini API (generativelanguage.googleapis.com,
 * v1beta) on 127.0.0.1, speaking its wire format:
 *
 * - `POST /v1beta/models/{model}:generateContent` → one JSON body, pretty
 *   printed with two-space indentation and `content-type: application/json;
 *   charset=UTF-8`, as Google's ESF front end writes it.
 * - `POST …:streamGenerateContent?alt=sse` → `text/event-stream`, each event
 *   `data: <json>\r\n\r\n`. Google frames alt=sse with CRLF (its own
 *   generative-ai-js SDK matches `\r\n\r\n`; Vertex's CRLF framing broke LF-only
 *   parsers, nyroway/nyro#265). The JSON is on one line in Google's spacing,
 *   `{"key": value,"next": …}` (captured output in simonw/llm-gemini#97). Every
 *   event carries the cumulative usageMetadata; the last one carries the
 *   finishReason and the final counts. There is no `[DONE]`.
 * - `…:streamGenerateContent` without alt=sse → one JSON array, streamed.
 * - `…:countTokens` → `{"totalTokens", "promptTokensDetails"}` (the mock's
 *   "tokens" are words).
 * - `…:batchEmbedContents` (at most 100 requests, as Google enforces) and
 *   `…:embedContent` → deterministic vectors derived from the text.
 * - Errors → `{"error": {"code", "message", "status"[, "details"]}}`.
 *
 * The wire encoder for Gemini on the one mock upstream (mock-upstream.ts).
 * Every request is recorded (method, path, query, headers, parsed body) before
 * any fault applies. Faults are chosen per request with setScenario: a single
 * scenario for every request, a list used in order (then the default), or a
 * function of the request.
 */

export interface MockFunctionCall {
  name: string;
  args?: Record<string, unknown>;
  id?: string;
}

export interface MockUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  totalTokenCount?: number;
}

export interface MockGeminiScenario {
  // ── what the model answers ──
  /** Answer text. Streamed: a string is sent word by word, an array one element per event. Default "Hello from mock Gemini." */
  text?: string | string[];
  /** Function calls, after the text (streamed: all in one event, as Gemini does). */
  functionCalls?: MockFunctionCall[];
  /** Default "STOP". */
  finishReason?: string;
  /** Prompt refused: promptFeedback.blockReason and no candidates. */
  blockReason?: string;
  /** Overrides the final usageMetadata counts (defaults count words). */
  usage?: MockUsage;
  /** Streamed: these events instead of the generated ones; a string element is sent verbatim as the data payload. */
  events?: unknown[];
  /** Non-streamed: this JSON body instead of the generated one. */
  body?: unknown;
  responseId?: string;
  modelVersion?: string;
  /** Embedding length when the request sets no outputDimensionality. Default 8. */
  embeddingDimensions?: number;

  // ── faults ──
  /** Answer with this HTTP status and Google's error JSON instead. */
  status?: number;
  errorMessage?: string;
  /** Sent as the `retry-after` header (Google itself rarely sends one). */
  retryAfter?: string;
  /** google.rpc.RetryInfo.retryDelay in the error details, e.g. "13s". */
  retryDelay?: string;
  delayBeforeHeadersMs?: number;
  delayBeforeFirstEventMs?: number;
  delayBetweenEventsMs?: number;
  /** Stop writing after this many events, keeping the connection open, until release(). */
  stallAfterEvents?: number;
  /** Destroy the socket after this many events. */
  destroyAfterEvents?: number;
  /** Replace the event at this index with its first half: truncated JSON that quotes the event's start. */
  malformedEventAt?: number;
  /** Non-streamed: answer 200 with these bytes as is (e.g. not JSON). */
  rawBody?: string;
  /** After this many events, send Google's in-stream error event and end. */
  errorEvent?: { after: number; code: number; status?: string; message?: string };
  /** Line ending of the SSE framing. Default "\r\n", as Google sends. */
  lineEnding?: "\r\n" | "\n";
}

export interface RecordedGeminiRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** Parsed JSON body, or undefined when it was not JSON. */
  body: unknown;
  model: string | undefined;
  /** The method after the colon: generateContent, streamGenerateContent, batchEmbedContents… */
  rpc: string | undefined;
}

export type ScenarioSource = MockGeminiScenario | MockGeminiScenario[] | ((request: RecordedGeminiRequest, index: number) => MockGeminiScenario);

export interface MockGeminiOptions {
  /** When set, requests must carry it in x-goog-api-key (missing → 403, wrong → 400, as Google answers). */
  apiKey?: string;
  scenario?: ScenarioSource;
}

export interface MockGemini {
  /** Base URL, e.g. http://127.0.0.1:43121 (no trailing slash). */
  url: string;
  requests: RecordedGeminiRequest[];
  setScenario(source: ScenarioSource): void;
  /** Resumes every stream held by stallAfterEvents. */
  release(): void;
  /** Resolves when a stream reaches its stall point (at once if one is already held). */
  waitForStall(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_TEXT = "Hello from mock Gemini.";
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_EMBED_BATCH = 100;

const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ABORTED",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "NOT_IMPLEMENTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

const DEFAULT_MESSAGES: Record<number, string> = {
  429: "Resource has been exhausted (e.g. check quota).",
  500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
  503: "The model is overloaded. Please try again later.",
};

/** Headers Google's front end puts on every answer. */
const GOOGLE_HEADERS = {
  vary: "Origin, X-Origin, Referer",
  server: "scaffolding on HTTPServer2",
  "x-xss-protection": "0",
  "x-frame-options": "SAMEORIGIN",
  "x-content-type-options": "nosniff",
};

/** One-line JSON in the spacing Google's alt=sse events use: `{"a": 1,"b": [1,2]}`. */
export function googleSseJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => googleSseJson(v === undefined ? null : v)).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${googleSseJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Google's non-streamed JSON: two-space indentation, trailing newline. */
export function googlePrettyJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function googleErrorBody(code: number, message?: string, details?: unknown[]): string {
  const error: Record<string, unknown> = {
    code,
    message: message ?? DEFAULT_MESSAGES[code] ?? `Request failed with status ${code}.`,
    status: STATUS_NAMES[code] ?? (code >= 500 ? "INTERNAL" : "FAILED_PRECONDITION"),
  };
  if (details && details.length > 0) error.details = details;
  return googlePrettyJson({ error });
}

function words(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** Words in every `text` string of the request's contents and systemInstruction: the mock's "token" count. */
function promptWords(body: unknown): number {
  let n = 0;
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (typeof v === "object" && v !== null) {
      for (const [k, child] of Object.entries(v)) {
        if (k === "text" && typeof child === "string") n += words(child);
        else visit(child);
      }
    }
  };
  if (typeof body === "object" && body !== null) {
    const b = body as Record<string, unknown>;
    visit(b.contents);
    visit(b.systemInstruction);
  }
  return n;
}

function candidateCount(body: unknown): number {
  const config = typeof body === "object" && body !== null ? (body as Record<string, unknown>).generationConfig : undefined;
  const n = typeof config === "object" && config !== null ? (config as Record<string, unknown>).candidateCount : undefined;
  return typeof n === "number" && Number.isInteger(n) && n > 1 && n <= 8 ? n : 1;
}

/** Deterministic vector for a text: float32-exact values in [-0.5, 0.5). */
export function mockEmbedding(text: string, dimensions: number): number[] {
  const out: number[] = [];
  let block = createHash("sha256").update(text).digest();
  for (let i = 0; i < dimensions; i++) {
    if (i > 0 && i % block.length === 0) block = createHash("sha256").update(block).digest();
    out.push(block[i % block.length]! / 256 - 0.5);
  }
  return out;
}

interface Plan {
  /** Text of each streamed piece. */
  pieces: string[];
  calls: MockFunctionCall[];
  finishReason: string;
  usage: Required<Pick<MockUsage, "promptTokenCount" | "candidatesTokenCount" | "totalTokenCount">> & MockUsage;
  responseId: string;
  modelVersion: string;
  candidates: number;
}

function plan(scenario: MockGeminiScenario, request: RecordedGeminiRequest, serial: number): Plan {
  const text = scenario.text ?? DEFAULT_TEXT;
  const pieces = Array.isArray(text) ? text : text === "" ? [] : text.split(/(?=\s)/);
  const calls = scenario.functionCalls ?? [];
  const prompt = promptWords(request.body);
  const completion = words(pieces.join("")) + calls.length * 3;
  const thoughts = scenario.usage?.thoughtsTokenCount;
  const usage = {
    promptTokenCount: scenario.usage?.promptTokenCount ?? prompt,
    candidatesTokenCount: scenario.usage?.candidatesTokenCount ?? completion,
    ...(thoughts === undefined ? {} : { thoughtsTokenCount: thoughts }),
    totalTokenCount: 0,
  };
  usage.totalTokenCount = scenario.usage?.totalTokenCount ?? usage.promptTokenCount + usage.candidatesTokenCount + (thoughts ?? 0);
  return {
    pieces,
    calls,
    finishReason: scenario.finishReason ?? "STOP",
    usage,
    responseId: scenario.responseId ?? `mockResp${serial}`,
    modelVersion: scenario.modelVersion ?? request.model ?? "gemini-mock",
    candidates: candidateCount(request.body),
  };
}

function usageMetadata(p: Plan, candidatesTokenCount: number): Record<string, unknown> {
  return {
    promptTokenCount: p.usage.promptTokenCount,
    candidatesTokenCount,
    totalTokenCount:
      candidatesTokenCount === p.usage.candidatesTokenCount ? p.usage.totalTokenCount : p.usage.promptTokenCount + candidatesTokenCount + (p.usage.thoughtsTokenCount ?? 0),
    promptTokensDetails: [{ modality: "TEXT", tokenCount: p.usage.promptTokenCount }],
    ...(p.usage.thoughtsTokenCount === undefined ? {} : { thoughtsTokenCount: p.usage.thoughtsTokenCount }),
  };
}

function blockedBody(p: Plan, reason: string): Record<string, unknown> {
  return {
    promptFeedback: {
      blockReason: reason,
      safetyRatings: [{ category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH" }],
    },
    usageMetadata: { promptTokenCount: p.usage.promptTokenCount, totalTokenCount: p.usage.promptTokenCount },
    modelVersion: p.modelVersion,
    responseId: p.responseId,
  };
}

function generateContentBody(scenario: MockGeminiScenario, p: Plan): unknown {
  if (scenario.body !== undefined) return scenario.body;
  if (scenario.blockReason !== undefined) return blockedBody(p, scenario.blockReason);
  const parts: Record<string, unknown>[] = [];
  const text = p.pieces.join("");
  if (text !== "") parts.push({ text });
  for (const call of p.calls) parts.push({ functionCall: { ...(call.id ? { id: call.id } : {}), name: call.name, args: call.args ?? {} } });
  return {
    candidates: Array.from({ length: p.candidates }, (_, index) => ({
      content: { parts, role: "model" },
      finishReason: p.finishReason,
      index,
    })),
    usageMetadata: usageMetadata(p, p.usage.candidatesTokenCount),
    modelVersion: p.modelVersion,
    responseId: p.responseId,
  };
}

function streamEvents(scenario: MockGeminiScenario, p: Plan): unknown[] {
  if (scenario.events !== undefined) return scenario.events;
  if (scenario.blockReason !== undefined) return [blockedBody(p, scenario.blockReason)];
  const steps: Record<string, unknown>[][] = p.pieces.map((text) => [{ text }]);
  if (p.calls.length > 0) {
    steps.push(p.calls.map((call) => ({ functionCall: { ...(call.id ? { id: call.id } : {}), name: call.name, args: call.args ?? {} } })));
  }
  if (steps.length === 0) steps.push([{ text: "" }]);
  let sofar = 0;
  return steps.map((parts, i) => {
    const last = i === steps.length - 1;
    sofar += parts.reduce((n, part) => n + (typeof part.text === "string" ? words(part.text) : 3), 0);
    const candidatesTokenCount = last ? p.usage.candidatesTokenCount : Math.min(sofar, p.usage.candidatesTokenCount);
    return {
      candidates: Array.from({ length: p.candidates }, (_, index) => ({
        content: { parts, role: "model" },
        ...(last ? { finishReason: p.finishReason } : {}),
        index,
      })),
      usageMetadata: usageMetadata(p, candidatesTokenCount),
      modelVersion: p.modelVersion,
      responseId: p.responseId,
    };
  });
}

export async function startMockGemini(options: MockGeminiOptions = {}): Promise<MockGemini> {
  const requests: RecordedGeminiRequest[] = [];
  // A list is used in order, then {}; a function gets the request and its index.
  let source: ScenarioSource = options.scenario ?? {};
  const scenarios = new ScenarioQueue<MockGeminiScenario, RecordedGeminiRequest>(undefined, () => ({}));
  let serial = 0;

  const setScenario = (next: ScenarioSource): void => {
    source = next;
    scenarios.replaceQueue(Array.isArray(next) ? next : []);
    scenarios.setDefault(Array.isArray(next) ? undefined : typeof next === "function" ? (request) => next(request, requests.indexOf(request)) : next);
  };
  setScenario(source);

  const json = (status: number, text: string, extra: Record<string, string> = {}): Reply => ({
    status,
    headers: { ...GOOGLE_HEADERS, "content-type": "application/json; charset=UTF-8", ...extra },
    body: text,
  });

  const upstream = await startMockUpstream({
    maxBodyBytes: MAX_BODY_BYTES,
    tooLarge: () => ({ status: 413, headers: { "content-type": "application/json; charset=UTF-8" }, body: googleErrorBody(400, "Request payload size exceeds the limit.") }),
    internalError: () => ({ status: 500, headers: { "content-type": "application/json; charset=UTF-8" }, body: googleErrorBody(500) }),
    async respond({ request, wait }) {
      const url = request.url;
      const rawBody = request.rawBody.toString("utf8");
      const route = /^\/v1beta\/models\/([^/:]+):([A-Za-z]+)$/.exec(url.pathname);
      const recorded: RecordedGeminiRequest = {
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: request.headers,
        rawBody,
        body: request.body,
        model: route?.[1] === undefined ? undefined : decodeURIComponent(route[1]),
        rpc: route?.[2],
      };
      requests.push(recorded);
      const scenario = scenarios.next(recorded);
      const p = plan(scenario, recorded, ++serial);
      const body = recorded.body;

      if (scenario.delayBeforeHeadersMs) await wait(scenario.delayBeforeHeadersMs);

      if (options.apiKey !== undefined) {
        const key = request.headers["x-goog-api-key"];
        if (key === undefined) {
          return json(
            403,
            googleErrorBody(
              403,
              "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ),
          );
        }
        if (key !== options.apiKey) return json(400, googleErrorBody(400, "API key not valid. Please pass a valid API key."));
      }
      if (scenario.status !== undefined && scenario.status >= 400) {
        const details: unknown[] = [];
        const retryDelay = scenario.retryDelay ?? (scenario.status === 429 && scenario.retryAfter ? `${scenario.retryAfter}s` : undefined);
        if (retryDelay) details.push({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay });
        return json(
          scenario.status,
          googleErrorBody(scenario.status, scenario.errorMessage, details),
          scenario.retryAfter === undefined ? {} : { "retry-after": scenario.retryAfter },
        );
      }
      if (request.method !== "POST" || !route) return json(404, googleErrorBody(404, `Requested entity was not found.`));
      if (body === undefined) return json(400, googleErrorBody(400, "Invalid JSON payload received."));

      switch (recorded.rpc) {
        case "generateContent":
          if (scenario.rawBody !== undefined) return json(200, scenario.rawBody);
          return json(200, googlePrettyJson(generateContentBody(scenario, p)));
        case "streamGenerateContent":
          return stream(scenario, streamEvents(scenario, p), url.searchParams.get("alt") === "sse");
        case "countTokens": {
          // Either `contents` or a whole `generateContentRequest` (whose model must be models/<path model>).
          const b = body as Record<string, unknown>;
          const inner = b.generateContentRequest as Record<string, unknown> | undefined;
          if (inner !== undefined && inner.model !== `models/${recorded.model}`)
            return json(400, googleErrorBody(400, "* CountTokensRequest.generate_content_request.model: must match the model"));
          const totalTokens = scenario.usage?.promptTokenCount ?? promptWords(inner ?? b);
          return json(200, googlePrettyJson({ totalTokens, promptTokensDetails: [{ modality: "TEXT", tokenCount: totalTokens }] }));
        }
        case "batchEmbedContents":
        case "embedContent":
          return embed(recorded, scenario);
        default:
          return json(404, googleErrorBody(404, `Method not found.`));
      }
    },
  });

  /**
   * alt=sse: `data: <json>\r\n\r\n` per event, no terminator; without
   * alt=sse one JSON array, streamed element by element. Faults apply after
   * `sent` events: a stall, a cut, or Google's in-stream error event.
   */
  function stream(scenario: MockGeminiScenario, events: unknown[], sse: boolean): Reply {
    const eol = scenario.lineEnding ?? "\r\n";
    const frame = (json: string, first: boolean): string => (sse ? `data: ${json}${eol}${eol}` : `${first ? "[" : ",\r\n"}${json}`);
    const steps: StreamStep[] = [];
    const reply: Reply = {
      status: 200,
      headers: { ...GOOGLE_HEADERS, "content-type": sse ? "text/event-stream" : "application/json; charset=UTF-8", ...(sse ? { "content-disposition": "attachment" } : {}) },
      stream: steps,
    };
    if (scenario.delayBeforeFirstEventMs) steps.push({ delay: scenario.delayBeforeFirstEventMs });
    let sent = 0;
    for (let i = 0; i <= events.length; i++) {
      if (scenario.stallAfterEvents === sent) steps.push({ stall: true });
      if (scenario.destroyAfterEvents === sent) {
        steps.push({ cut: true });
        return reply;
      }
      if (scenario.errorEvent && scenario.errorEvent.after === sent) {
        const { code, status, message } = scenario.errorEvent;
        const error = { error: { code, message: message ?? DEFAULT_MESSAGES[code] ?? "Internal error encountered.", status: status ?? STATUS_NAMES[code] ?? "INTERNAL" } };
        steps.push({ write: frame(googleSseJson(error), sent === 0) }, { end: sse ? "" : "]" });
        return reply;
      }
      if (i === events.length) break;
      if (sent > 0 && scenario.delayBetweenEventsMs) steps.push({ delay: scenario.delayBetweenEventsMs });
      const event = events[i];
      let text = typeof event === "string" ? event : googleSseJson(event);
      if (scenario.malformedEventAt === i) text = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
      steps.push({ write: frame(text, sent === 0) });
      sent++;
    }
    steps.push({ end: sse ? "" : sent === 0 ? "[]" : "]" });
    return reply;
  }

  function embed(recorded: RecordedGeminiRequest, scenario: MockGeminiScenario): Reply {
    if (scenario.body !== undefined) return json(200, googlePrettyJson(scenario.body));
    const body = recorded.body as Record<string, unknown>;
    const embedOne = (request: unknown): { values: number[] } | string => {
      if (typeof request !== "object" || request === null) return "* request must be an object";
      const r = request as Record<string, unknown>;
      if (recorded.rpc === "batchEmbedContents" && r.model !== `models/${recorded.model}`) {
        return `* BatchEmbedContentsRequest.model: the model in each request must match the batch model`;
      }
      const parts = (r.content as { parts?: { text?: unknown }[] } | undefined)?.parts;
      if (!Array.isArray(parts) || parts.length === 0) return "* content.parts must not be empty";
      const text = parts.map((part) => (typeof part.text === "string" ? part.text : "")).join("");
      const dims = typeof r.outputDimensionality === "number" ? r.outputDimensionality : (scenario.embeddingDimensions ?? 8);
      return { values: mockEmbedding(text, dims) };
    };
    if (recorded.rpc === "embedContent") {
      const result = embedOne(body);
      return typeof result === "string" ? json(400, googleErrorBody(400, result)) : json(200, googlePrettyJson({ embedding: result }));
    }
    const list = body.requests;
    if (!Array.isArray(list) || list.length === 0) return json(400, googleErrorBody(400, "* BatchEmbedContentsRequest.requests: must not be empty"));
    if (list.length > MAX_EMBED_BATCH) {
      return json(400, googleErrorBody(400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"));
    }
    const embeddings: { values: number[] }[] = [];
    for (const request of list) {
      const result = embedOne(request);
      if (typeof result === "string") return json(400, googleErrorBody(400, result));
      embeddings.push(result);
    }
    return json(200, googlePrettyJson({ embeddings }));
  }

  return {
    url: upstream.origin,
    requests,
    setScenario,
    release: () => upstream.release(),
    waitForStall: () => upstream.waitForStall(),
    close: () => upstream.close(),
  };
}
