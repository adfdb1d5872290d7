/**
 * A mock OpenAI(-compatible) server on 127.0.0.1 for adapter, gateway and
 * benchmark suites. It speaks the wire format byte for byte as OpenAI does:
 *
 * - JSON answers with `content-type: application/json` and a content-length;
 * - streams as `text/event-stream; charset=utf-8`, one `data: {json}\n\n`
 *   event per chunk (role chunk, one chunk per word, finish chunk, then with
 *   stream_options.include_usage a chunk with empty `choices` and `usage`,
 *   every earlier chunk carrying `usage: null`), ending `data: [DONE]\n\n`;
 * - tool calls streamed as a header chunk (id, type, name, empty arguments)
 *   and the arguments split over several chunks;
 * - errors as `{"error":{"message","type","param","code"}}`. Like real
 *   providers, the error message echoes the prompt (the last user text), so
 *   suites can prove the gateway never forwards upstream error text.
 *
 * Legacy completions, moderations and audio: mock-openai-more.ts.
 *
 * The wire encoder for OpenAI on the one mock upstream (mock-upstream.ts).
 * Every request is recorded (method, path, headers, raw body bytes, parsed
 * body) unless `record: false`. Fault knobs come per request from a
 * scenario: see {@link MockScenario}. Nothing is logged, and no timer is set
 * unless a delay is asked for, so benchmarks can drive it hard.
 */
import type http from "node:http";
import { answerMore } from "./mock-openai-more.js";
import { ScenarioQueue, startMockUpstream, type Reply, type StreamStep } from "./mock-upstream.js";

export interface MockRequest {
  /** 0-based arrival order. */
  index: number;
  method: string;
  /** Path with query, e.g. "/v1/chat/completions". */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The request body exactly as received. */
  rawBody: Buffer;
  /** `rawBody` parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
}

export interface MockScenario {
  /** Answer with this status. Non-2xx statuses get an OpenAI error body. */
  status?: number;
  /** Error body fields; the message defaults to one that echoes the prompt. */
  errorMessage?: string;
  errorType?: string;
  errorCode?: string | null;
  /** `retry-after` header value on the answer (any status). */
  retryAfter?: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** Wait this long before sending the status line and headers. */
  headersDelayMs?: number;
  /** Streams: wait this long after the headers before the first event. */
  firstChunkDelayMs?: number;
  /** Streams: wait this long between events. */
  chunkDelayMs?: number;
  /** Streams: after this many events, hold the connection open until `releaseStalled()` or `close()`. */
  stallAfterChunks?: number;
  /** Streams: after this many events (once they are flushed), reset the connection (TCP RST: no [DONE], no chunked terminator). */
  destroyAfterChunks?: number;
  /** Streams: the event at this 0-based position carries invalid JSON. */
  malformedChunkAt?: number;
  /** Streams: end the body without `data: [DONE]`. */
  omitDone?: boolean;
  /** Assistant text; default "This is a mock reply." */
  content?: string;
  /** Answer with these tool calls instead of text (finish_reason "tool_calls"). */
  toolCalls?: { name: string; arguments: string; id?: string }[];
  /** Override finish_reason. */
  finishReason?: string;
  /** Streams: send these data payloads verbatim instead of generated chunks ([DONE] still follows unless omitDone). */
  rawEvents?: string[];
  /** Non-streamed: send this body verbatim (a string as-is, anything else JSON-encoded) instead of the generated one. */
  rawBody?: unknown;
  /** Override the answer's content-type. */
  contentType?: string;
}

export type ScenarioSource = MockScenario | ((request: MockRequest) => MockScenario | undefined) | undefined;

export interface MockOpenAIOptions {
  /** API path prefix; "/v1" like OpenAI, "/api/v3" like ModelArk. */
  basePath?: string;
  /** Record requests (default true); benchmarks may turn it off. */
  record?: boolean;
  /** `created` in every answer (default 1700000000). */
  created?: number;
  /** Initial default scenario. */
  scenario?: ScenarioSource;
}

export interface MockOpenAI {
  /** Base URL including the path prefix, e.g. http://127.0.0.1:41234/v1. */
  url: string;
  /** Recorded requests, in arrival order (live array). */
  requests: MockRequest[];
  /** The default scenario for every later request (a function may pick per request). */
  setScenario(scenario: ScenarioSource): void;
  /** One-shot scenarios, consumed in order by the next requests before the default applies. */
  queueScenarios(...scenarios: MockScenario[]): void;
  /** Resume every stream held by `stallAfterChunks`. */
  releaseStalled(): void;
  /** Forget recorded requests, queued scenarios and the default scenario. */
  reset(): void;
  /** Number of connections currently open (idle keep-alive ones included). */
  openConnections(): number;
  /** Number of streamed answers whose connection is still open (not yet ended, cut or abandoned by the client). */
  activeStreams(): number;
  close(): Promise<void>;
}

export const MOCK_DEFAULT_CONTENT = "This is a mock reply.";
export const MOCK_PNG_1X1_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

const ERROR_TYPES: Record<number, [string, string | null]> = {
  400: ["invalid_request_error", null],
  401: ["invalid_request_error", "invalid_api_key"],
  403: ["invalid_request_error", "unsupported_country_region_territory"],
  404: ["invalid_request_error", "model_not_found"],
  429: ["requests", "rate_limit_exceeded"],
  500: ["server_error", null],
  503: ["server_error", null],
};

export async function startMockOpenAI(options: MockOpenAIOptions = {}): Promise<MockOpenAI> {
  const basePath = (options.basePath ?? "/v1").replace(/\/+$/, "");
  const record = options.record ?? true;
  const created = options.created ?? 1_700_000_000;
  const requests: MockRequest[] = [];
  const scenarios = new ScenarioQueue<MockScenario, MockRequest>(options.scenario, () => ({}));

  const upstream = await startMockUpstream({
    noDelay: true,
    async respond({ request: r, gone, wait }) {
      const request: MockRequest = { index: r.index, method: r.method, path: r.path, headers: r.headers, rawBody: r.rawBody, body: r.body };
      if (record) requests.push(request);
      const scenario = scenarios.next(request);
      if (scenario.headersDelayMs) await wait(scenario.headersDelayMs);
      if (gone()) return undefined;
      if (r.method === "POST" && (scenario.status ?? 200) < 300 && scenario.rawBody === undefined && scenario.contentType === undefined) {
        const more = await answerMore(r.path.split("?")[0] ?? "", request, created, { "x-request-id": `req_mock_${request.index}`, ...(scenario.headers ?? {}) }, scenario);
        if (more !== undefined) return more;
      }
      return answer(request, scenario);
    },
  });

  function answer(request: MockRequest, scenario: MockScenario): Reply {
    const extra: Record<string, string> = { "x-request-id": `req_mock_${request.index}`, ...(scenario.headers ?? {}) };
    if (scenario.retryAfter !== undefined) extra["retry-after"] = scenario.retryAfter;

    const route = request.path.split("?")[0] ?? "";
    const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as Record<string, unknown>;

    const status = scenario.status ?? 200;
    if (status < 200 || status >= 300) {
      const [type, code] = ERROR_TYPES[status] ?? (status >= 500 ? ["server_error", null] : ["invalid_request_error", null]);
      const message = scenario.errorMessage ?? `Mock error ${status} for input: ${lastUserText(body) ?? String(body.prompt ?? body.input ?? "")}`;
      return json(
        status,
        { error: { message, type: scenario.errorType ?? type, param: null, code: scenario.errorCode !== undefined ? scenario.errorCode : code } },
        extra,
        scenario,
      );
    }

    if (request.method === "GET" && route === `${basePath}/models`) {
      return json(200, { object: "list", data: [{ id: "mock-model", object: "model", created, owned_by: "mock" }] }, extra, scenario);
    }
    if (request.method !== "POST") {
      return json(405, { error: { message: "Method not allowed", type: "invalid_request_error", param: null, code: null } }, extra, scenario);
    }
    if (route === `${basePath}/chat/completions`) {
      if (body.stream === true) return stream(request, body, scenario, extra);
      return json(200, scenario.rawBody ?? completion(request, body, scenario), extra, scenario);
    }
    if (route === `${basePath}/embeddings`) return json(200, scenario.rawBody ?? embeddings(body), extra, scenario);
    if (route === `${basePath}/images/generations`) return json(200, scenario.rawBody ?? images(body), extra, scenario);
    // Any other endpoint with a verbatim body (legacy completions, moderations, audio: mock-openai-more.ts).
    if (scenario.rawBody !== undefined || scenario.contentType !== undefined) return json(200, scenario.rawBody ?? "", extra, scenario);
    return json(404, { error: { message: `Invalid URL (POST ${route})`, type: "invalid_request_error", param: null, code: null } }, extra, scenario);
  }

  function json(status: number, payload: unknown, extra: Record<string, string>, scenario: MockScenario): Reply {
    const bytes = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload), "utf8");
    return { status, headers: { "content-type": scenario.contentType ?? "application/json", "content-length": String(bytes.length), ...extra }, body: bytes };
  }

  function completion(request: MockRequest, body: Record<string, unknown>, scenario: MockScenario): unknown {
    const content = scenario.content ?? MOCK_DEFAULT_CONTENT;
    const calls = scenario.toolCalls?.map((call, i) => ({
      id: call.id ?? `call_mock_${request.index}_${i}`,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }));
    const completionTokens = calls ? calls.reduce((n, c) => n + countWords(c.function.arguments), 0) : countWords(content);
    return {
      id: `chatcmpl-mock-${request.index}`,
      object: "chat.completion",
      created,
      model: String(body.model ?? ""),
      choices: [
        {
          index: 0,
          message: calls ? { role: "assistant", content: null, tool_calls: calls, refusal: null, annotations: [] } : { role: "assistant", content, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: scenario.finishReason ?? (calls ? "tool_calls" : "stop"),
        },
      ],
      usage: usageFor(body, completionTokens),
      service_tier: "default",
      system_fingerprint: "fp_mock",
    };
  }

  /**
   * OpenAI's SSE: `data: {json}\n\n` per chunk, then `data: [DONE]\n\n`.
   * Faults sit where a provider would fail: before event i (cut, stall),
   * or in place of it (malformed); a cut or stall at or past the last
   * event comes before [DONE].
   */
  function stream(request: MockRequest, body: Record<string, unknown>, scenario: MockScenario, extra: Record<string, string>): Reply {
    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const events = scenario.rawEvents ?? streamEvents(request, body, scenario, includeUsage);
    const steps: StreamStep[] = [];
    const headers = { "content-type": scenario.contentType ?? "text/event-stream; charset=utf-8", "cache-control": "no-cache", ...extra };
    const reply: Reply = { status: 200, headers, stream: steps };
    if (scenario.firstChunkDelayMs) steps.push({ delay: scenario.firstChunkDelayMs });
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && scenario.chunkDelayMs) steps.push({ delay: scenario.chunkDelayMs });
      if (scenario.destroyAfterChunks === i) {
        steps.push({ cut: true });
        return reply;
      }
      if (scenario.stallAfterChunks === i) steps.push({ stall: true });
      const data = scenario.malformedChunkAt === i ? `{"id":"chatcmpl-mock-${request.index}","choices":[{"delta":` : events[i]!;
      steps.push({ write: `data: ${data}\n\n` });
    }
    if (scenario.destroyAfterChunks !== undefined && scenario.destroyAfterChunks >= events.length) {
      steps.push({ cut: true });
      return reply;
    }
    if (scenario.stallAfterChunks !== undefined && scenario.stallAfterChunks >= events.length) steps.push({ stall: true });
    steps.push({ end: scenario.omitDone ? "" : "data: [DONE]\n\n" });
    return reply;
  }

  function streamEvents(request: MockRequest, body: Record<string, unknown>, scenario: MockScenario, includeUsage: boolean): string[] {
    const head = {
      id: `chatcmpl-mock-${request.index}`,
      object: "chat.completion.chunk",
      created,
      model: String(body.model ?? ""),
      service_tier: "default",
      system_fingerprint: "fp_mock",
    };
    const chunk = (delta: Record<string, unknown>, finish: string | null): string =>
      JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) });
    const events: string[] = [];
    let completionTokens = 0;
    if (scenario.toolCalls) {
      scenario.toolCalls.forEach((call, i) => {
        const header = { index: i, id: call.id ?? `call_mock_${request.index}_${i}`, type: "function", function: { name: call.name, arguments: "" } };
        events.push(chunk(i === 0 ? { role: "assistant", content: null, tool_calls: [header], refusal: null } : { tool_calls: [header] }, null));
        for (const piece of pieces(call.arguments, 8)) events.push(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }, null));
        completionTokens += countWords(call.arguments);
      });
      events.push(chunk({}, scenario.finishReason ?? "tool_calls"));
    } else {
      const content = scenario.content ?? MOCK_DEFAULT_CONTENT;
      events.push(chunk({ role: "assistant", content: "", refusal: null }, null));
      content.split(/(?= )/).forEach((piece) => {
        if (piece !== "") events.push(chunk({ content: piece }, null));
      });
      completionTokens = countWords(content);
      events.push(chunk({}, scenario.finishReason ?? "stop"));
    }
    if (includeUsage) events.push(JSON.stringify({ ...head, choices: [], usage: usageFor(body, completionTokens) }));
    return events;
  }

  function embeddings(body: Record<string, unknown>): unknown {
    const input = body.input;
    const items: unknown[] = typeof input === "string" ? [input] : Array.isArray(input) && input.every((x) => typeof x === "number") ? [input] : Array.isArray(input) ? input : [];
    const dims = typeof body.dimensions === "number" ? body.dimensions : 3;
    const base64 = body.encoding_format === "base64";
    const data = items.map((_, index) => {
      const vector = Array.from({ length: dims }, (_, j) => Math.fround((index + 1) / (j + 2)));
      let embedding: number[] | string = vector;
      if (base64) {
        const buf = Buffer.alloc(dims * 4);
        vector.forEach((x, j) => buf.writeFloatLE(x, j * 4));
        embedding = buf.toString("base64");
      }
      return { object: "embedding", index, embedding };
    });
    const tokens = items.reduce<number>((n, x) => n + (typeof x === "string" ? countWords(x) : Array.isArray(x) ? x.length : 0), 0);
    return { object: "list", data, model: String(body.model ?? ""), usage: { prompt_tokens: tokens, total_tokens: tokens } };
  }

  function images(body: Record<string, unknown>): unknown {
    const n = typeof body.n === "number" ? body.n : 1;
    const b64 = body.response_format === "b64_json";
    return {
      created,
      data: Array.from({ length: n }, (_, i) => (b64 ? { b64_json: MOCK_PNG_1X1_BASE64 } : { url: `https://mock.invalid/images/${i}.png` })),
    };
  }

  return {
    url: `${upstream.origin}${basePath}`,
    requests,
    setScenario(scenario) {
      scenarios.setDefault(scenario);
    },
    queueScenarios(...list) {
      scenarios.enqueue(...list);
    },
    releaseStalled() {
      upstream.release();
    },
    reset() {
      requests.length = 0;
      scenarios.clear();
    },
    openConnections: () => upstream.openConnections(),
    activeStreams: () => upstream.activeStreams(),
    close: () => upstream.close(),
  };
}

function lastUserText(body: Record<string, unknown>): string | undefined {
  const messages = body.messages;
  if (!Array.isArray(messages)) return undefined;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | undefined;
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return m.content;
    if (Array.isArray(m.content)) return m.content.map((p: { text?: unknown }) => (typeof p?.text === "string" ? p.text : "")).join(" ");
  }
  return undefined;
}

function countWords(text: string): number {
  return text.split(/\s+/).filter((w) => w !== "").length;
}

function usageFor(body: Record<string, unknown>, completionTokens: number): unknown {
  const messages = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]) : [];
  const prompt = messages.reduce((n, m) => n + (typeof m?.content === "string" ? countWords(m.content) : 0), 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: prompt + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function pieces(text: string, size: number): string[] {
  const points = Array.from(text);
  const out: string[] = [];
  for (let i = 0; i < points.length; i += size) out.push(points.slice(i, i + size).join(""));
  return out.length > 0 ? out : [""];
}
