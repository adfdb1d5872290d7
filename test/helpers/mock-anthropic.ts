import type http from "node:http";
import { ScenarioQueue, startMockUpstream, type Reply, type StreamStep } from "./mock-upstream.js";

/**
 * A local stand-in for Anthropic's Messages API (POST /v1/messages, and
 * /v1/messages/count_tokens answering `{"input_tokens": n}`) on
 * 127.0.0.1, speaking the wire format byte for byte as the real API does:
 * JSON Messages, or `event: <type>\ndata: <json>\n\n` SSE with a `ping`
 * after the first content_block_start, text cut into several text_delta
 * events, tool input cut into several input_json_delta events (the first
 * one empty, as the real API sends it), and error bodies shaped
 * `{"type":"error","error":{"type","message"},"request_id"}`.
 *
 * The wire encoder for Anthropic on the one mock upstream (mock-upstream.ts).
 * Every request is recorded (headers and parsed body). A scenario decides
 * the answer and the faults; `enqueue` gives per-request scenarios (used in
 * order), `setScenario` the default for the rest.
 */

export type MockContentBlock = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

export interface MockUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

export interface MockSseEvent {
  event: string;
  data: unknown;
}

export interface MockAnthropicScenario {
  // ── the answer ──
  /** Message id; default msg_mock_<n>. */
  id?: string;
  /** Reported model; default the request's model. */
  model?: string;
  /** Default one text block "Hello from the mock." */
  content?: MockContentBlock[];
  /** Default "tool_use" when content has a tool_use block, else "end_turn". */
  stopReason?: string | null;
  stopSequence?: string | null;
  usage?: MockUsage;
  /** Text is cut into text_delta pieces of this many characters (code points); default 4. */
  textChunkSize?: number;
  /** Tool input JSON is cut into this many input_json_delta pieces after the empty first one; default 3. */
  toolJsonPieces?: number;
  /** Stream exactly these events instead of the generated ones. */
  events?: MockSseEvent[];
  /** Stream exactly these bytes (written piece by piece, each counting as one event for the fault knobs). */
  rawStream?: string[];
  /** Answer a non-streamed request with exactly this JSON. */
  json?: unknown;
  /** Answer a non-streamed request with exactly these bytes (still labelled application/json). */
  rawBody?: string;

  // ── faults ──
  /** Answer with this HTTP status and an Anthropic error body. */
  status?: number;
  /** error.type in the error body; default by status (429 rate_limit_error, 529 overloaded_error…). */
  errorType?: string;
  errorMessage?: string;
  /** retry-after header on the error response. */
  retryAfter?: string;
  delayBeforeHeadersMs?: number;
  delayBeforeFirstEventMs?: number;
  /** Pause between events. */
  eventDelayMs?: number;
  /** Hold the stream open after this many events until `until` settles (forever when absent). */
  stall?: { afterEvents: number; until?: Promise<unknown> };
  /** Destroy the socket after this many events. */
  destroyAfterEvents?: number;
  /** Write an event whose data is not JSON after this many events, then carry on. */
  malformedAfterEvents?: number;
  /** Write an `error` event after this many events and end the response, as the real API does. */
  errorEventAfterEvents?: { after: number; type?: string; message?: string };
}

export interface MockAnthropicRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** Parsed JSON body, or undefined when it was not JSON. */
  body: any;
  /** Stream events written so far (live, for no-buffering assertions). */
  eventsWritten: number;
  /** Set when the response has finished or the connection went away. */
  closed: boolean;
}

export interface MockAnthropicOptions {
  /** When set, requests with another x-api-key get 401 authentication_error. */
  apiKey?: string;
  /** Default scenario (also settable later with setScenario). */
  scenario?: MockAnthropicScenario | ((request: MockAnthropicRequest) => MockAnthropicScenario);
}

export interface MockAnthropic {
  /** http://127.0.0.1:<port> — use as the adapter's baseUrl or the SDK's baseURL. */
  url: string;
  requests: MockAnthropicRequest[];
  setScenario(scenario: MockAnthropicScenario | ((request: MockAnthropicRequest) => MockAnthropicScenario)): void;
  /** Scenarios used by the next requests, one each, before the default. */
  enqueue(...scenarios: MockAnthropicScenario[]): void;
  close(): Promise<void>;
}

const DEFAULT_ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  504: "timeout_error",
  529: "overloaded_error",
};

export function defaultErrorType(status: number): string {
  return DEFAULT_ERROR_TYPES[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
}

export function errorBody(type: string, message: string, requestId: string): string {
  return JSON.stringify({ type: "error", error: { type, message }, request_id: requestId });
}

/** SSE framing exactly as api.anthropic.com sends it. */
export function frameEvent(event: MockSseEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

function contentOf(scenario: MockAnthropicScenario): MockContentBlock[] {
  return scenario.content ?? [{ type: "text", text: "Hello from the mock." }];
}

function stopReasonOf(scenario: MockAnthropicScenario): string | null {
  if (scenario.stopReason !== undefined) return scenario.stopReason;
  return contentOf(scenario).some((b) => b.type === "tool_use") ? "tool_use" : "end_turn";
}

function usageOf(scenario: MockAnthropicScenario) {
  return {
    input_tokens: scenario.usage?.input_tokens ?? 12,
    cache_creation_input_tokens: scenario.usage?.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: scenario.usage?.cache_read_input_tokens ?? 0,
    output_tokens: scenario.usage?.output_tokens ?? 7,
  };
}

/** The non-streamed Message the scenario describes. */
export function mockMessage(scenario: MockAnthropicScenario, requestModel: string, fallbackId: string): Record<string, unknown> {
  return {
    id: scenario.id ?? fallbackId,
    type: "message",
    role: "assistant",
    model: scenario.model ?? requestModel,
    content: contentOf(scenario).map((block) => (block.type === "text" ? { type: "text", text: block.text } : { ...block })),
    stop_reason: stopReasonOf(scenario),
    stop_sequence: scenario.stopSequence ?? null,
    usage: { ...usageOf(scenario), service_tier: "standard" },
  };
}

function cut(text: string, size: number): string[] {
  const points = Array.from(text);
  const pieces: string[] = [];
  for (let i = 0; i < points.length; i += size) pieces.push(points.slice(i, i + size).join(""));
  return pieces;
}

function cutInto(text: string, count: number): string[] {
  const points = Array.from(text);
  const size = Math.max(1, Math.ceil(points.length / Math.max(1, count)));
  return cut(text, size);
}

/** The stream events the scenario describes, in the real API's order. */
export function mockEvents(scenario: MockAnthropicScenario, requestModel: string, fallbackId: string): MockSseEvent[] {
  if (scenario.events) return scenario.events;
  const usage = usageOf(scenario);
  const events: MockSseEvent[] = [
    {
      event: "message_start",
      data: {
        type: "message_start",
        message: {
          id: scenario.id ?? fallbackId,
          type: "message",
          role: "assistant",
          model: scenario.model ?? requestModel,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens: 1,
            service_tier: "standard",
          },
        },
      },
    },
  ];
  const content = contentOf(scenario);
  if (content.length === 0) events.push({ event: "ping", data: { type: "ping" } });
  content.forEach((block, index) => {
    if (block.type === "text") {
      events.push({ event: "content_block_start", data: { type: "content_block_start", index, content_block: { type: "text", text: "" } } });
      if (index === 0) events.push({ event: "ping", data: { type: "ping" } });
      for (const text of cut(block.text, scenario.textChunkSize ?? 4)) {
        events.push({ event: "content_block_delta", data: { type: "content_block_delta", index, delta: { type: "text_delta", text } } });
      }
    } else {
      events.push({
        event: "content_block_start",
        data: { type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } },
      });
      if (index === 0) events.push({ event: "ping", data: { type: "ping" } });
      const json = Object.keys(block.input).length === 0 ? "" : JSON.stringify(block.input);
      for (const partial_json of ["", ...cutInto(json, scenario.toolJsonPieces ?? 3)]) {
        events.push({ event: "content_block_delta", data: { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } } });
      }
    }
    events.push({ event: "content_block_stop", data: { type: "content_block_stop", index } });
  });
  events.push({
    event: "message_delta",
    data: {
      type: "message_delta",
      delta: { stop_reason: stopReasonOf(scenario), stop_sequence: scenario.stopSequence ?? null },
      usage: { output_tokens: usage.output_tokens },
    },
  });
  events.push({ event: "message_stop", data: { type: "message_stop" } });
  return events;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

export async function startMockAnthropic(options: MockAnthropicOptions = {}): Promise<MockAnthropic> {
  const requests: MockAnthropicRequest[] = [];
  const scenarios = new ScenarioQueue<MockAnthropicScenario, MockAnthropicRequest>(options.scenario ?? {}, () => ({}));
  let counter = 0;

  const upstream = await startMockUpstream({
    maxBodyBytes: MAX_BODY_BYTES,
    tooLarge: () => ({ status: 413, headers: {}, body: "" }),
    internalError: () => ({ status: 500, headers: {}, body: "" }),
    async respond({ request, gone, wait, closed }) {
      const rawBody = request.rawBody.toString("utf8");
      const record: MockAnthropicRequest = {
        method: request.method,
        path: request.path,
        headers: request.headers,
        rawBody,
        body: request.body,
        eventsWritten: 0,
        closed: false,
      };
      requests.push(record);
      void closed.then(() => {
        record.closed = true;
      });
      const n = ++counter;
      const requestId = `req_mock_${n}`;
      const body = record.body;

      const error = (status: number, type: string, message: string, headers: Record<string, string> = {}): Reply => {
        const payload = errorBody(type, message, requestId);
        return { status, headers: { "content-type": "application/json", "request-id": requestId, "content-length": Buffer.byteLength(payload), ...headers }, body: payload };
      };

      const route = record.path.split("?")[0] ?? "";
      if (record.method !== "POST" || (route !== "/v1/messages" && route !== "/v1/messages/count_tokens")) return error(404, "not_found_error", "Not found");
      if (options.apiKey !== undefined && request.headers["x-api-key"] !== options.apiKey) return error(401, "authentication_error", "invalid x-api-key");
      if (typeof request.headers["anthropic-version"] !== "string") return error(400, "invalid_request_error", "anthropic-version: header is required");
      if (typeof body !== "object" || body === null) return error(400, "invalid_request_error", "request body is not valid JSON");

      const scenario = scenarios.next(record);
      if (scenario.delayBeforeHeadersMs) await wait(scenario.delayBeforeHeadersMs);
      if (gone()) return undefined;

      if (scenario.status !== undefined && (scenario.status < 200 || scenario.status >= 300)) {
        return error(
          scenario.status,
          scenario.errorType ?? defaultErrorType(scenario.status),
          scenario.errorMessage ?? "mock error",
          scenario.retryAfter !== undefined ? { "retry-after": scenario.retryAfter } : {},
        );
      }

      // count_tokens answers exactly {"input_tokens": n}; n here is the request's word count (scenario json/rawBody replace it).
      if (route === "/v1/messages/count_tokens") {
        const payload = scenario.rawBody ?? JSON.stringify(scenario.json !== undefined ? scenario.json : { input_tokens: mockTokenCount(body) });
        return { status: 200, headers: { "content-type": "application/json", "request-id": requestId, "content-length": Buffer.byteLength(payload) }, body: payload };
      }
      const model = typeof body.model === "string" ? body.model : "claude-mock";
      const id = `msg_mock_${n}`;
      if (body.stream !== true) {
        const payload = scenario.rawBody ?? JSON.stringify(scenario.json !== undefined ? scenario.json : mockMessage(scenario, model, id));
        return { status: 200, headers: { "content-type": "application/json", "request-id": requestId, "content-length": Buffer.byteLength(payload) }, body: payload };
      }
      const pieces = scenario.rawStream ?? mockEvents(scenario, model, id).map(frameEvent);
      return {
        status: 200,
        headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": requestId },
        stream: streamSteps(scenario, pieces, record),
      };
    },
  });

  /**
   * Anthropic's SSE (`event: <type>\ndata: <json>\n\n`) with the faults
   * placed after `i` events: a stall, a cut, an extra malformed event (not
   * counted), or an `error` event that ends the response.
   */
  function streamSteps(scenario: MockAnthropicScenario, pieces: string[], record: MockAnthropicRequest): StreamStep[] {
    const steps: StreamStep[] = [];
    if (scenario.delayBeforeFirstEventMs) steps.push({ delay: scenario.delayBeforeFirstEventMs });
    for (let i = 0; i <= pieces.length; i++) {
      if (scenario.stall?.afterEvents === i) steps.push({ stall: true, ...(scenario.stall.until && { until: scenario.stall.until }) });
      if (scenario.destroyAfterEvents === i) {
        steps.push({ cut: true });
        return steps;
      }
      if (scenario.malformedAfterEvents === i) steps.push({ write: `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n` });
      if (scenario.errorEventAfterEvents?.after === i) {
        const { type = "overloaded_error", message = "Overloaded" } = scenario.errorEventAfterEvents;
        steps.push({ end: frameEvent({ event: "error", data: { type: "error", error: { type, message } } }) });
        return steps;
      }
      const piece = pieces[i];
      if (piece === undefined) break;
      steps.push({ write: piece, then: () => record.eventsWritten++ });
      if (scenario.eventDelayMs) steps.push({ delay: scenario.eventDelayMs });
    }
    return steps;
  }

  return {
    url: upstream.origin,
    requests,
    setScenario(scenario) {
      scenarios.setDefault(scenario);
    },
    enqueue(...list) {
      scenarios.enqueue(...list);
    },
    close: () => upstream.close(),
  };
}

/** The mock's token count: words in every `text` string and string content of system and messages. */
export function mockTokenCount(body: { system?: unknown; messages?: unknown }): number {
  const texts: string[] = [];
  const walk = (v: unknown, key = ""): void => {
    if (typeof v === "string") {
      if (key === "text" || key === "content" || key === "system") texts.push(v);
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, key === "system" ? "system" : ""));
    else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(body.system, "system");
  walk(body.messages);
  return texts
    .join(" ")
    .split(/\s+/)
    .filter((w) => w !== "").length;
}
