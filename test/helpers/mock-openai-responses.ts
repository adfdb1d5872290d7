import { ScenarioQueue, startMockUpstream, type Reply, type StreamStep } from "./mock-upstream.js";

/**
 * OpenAI's Responses API on 127.0.0.1, byte for byte as api.openai.com
 * speaks it (openai-node src/resources/responses/responses.ts for the
 * shapes, lib/responses/ResponseAccumulator.ts for the event order the SDK
 * rebuilds a Response from):
 *
 * - POST {base}/responses: a Response object, or with `stream: true` SSE
 *   framed `event: <type>\ndata: <json>\n\n`, one line of JSON each, every
 *   event with its `sequence_number`, ending with response.completed (or
 *   response.incomplete / response.failed); no `[DONE]`.
 * - GET/DELETE {base}/responses/{id}, GET {base}/responses/{id}/input_items:
 *   the responses it stored (`store` defaults to true at OpenAI, as here).
 * - `previous_response_id` must name a stored response (else 400, as OpenAI).
 * - Errors: `{"error":{"message","type","param","code"}}` with the status.
 *
 * It records every request (method, path, headers, raw body) to show what
 * reached "OpenAI".
 */

export interface ResponsesRequest {
  index: number;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
  body: unknown;
}

export interface ResponsesScenario {
  status?: number;
  errorMessage?: string;
  errorCode?: string | null;
  /** Assistant text; default MOCK_RESPONSES_TEXT. */
  text?: string;
  /** Answer with these function calls instead of text. */
  toolCalls?: { name: string; arguments: string; callId?: string }[];
  /** Streams: these events (type and JSON data) are written verbatim after response.in_progress, before the answer's own. */
  extraEvents?: { event: string; data: string }[];
  /** Streams: reset the connection (TCP RST) after this many events. */
  cutAfterEvents?: number;
  /** Streams: send an `error` event in place of the event at this index, then end. */
  errorEventAt?: number;
  /** Final status: "incomplete" adds incomplete_details max_output_tokens. */
  finalStatus?: "completed" | "incomplete";
}

export interface MockOpenAIResponses {
  /** Base URL with /v1, like https://api.openai.com/v1. */
  url: string;
  requests: ResponsesRequest[];
  enqueue(...scenarios: ResponsesScenario[]): void;
  stored(): string[];
  reset(): void;
  close(): Promise<void>;
}

export const MOCK_RESPONSES_TEXT = "Hello from the Responses mock.";

type Json = Record<string, unknown>;

export async function startMockOpenAIResponses(options: { created?: number } = {}): Promise<MockOpenAIResponses> {
  const created = options.created ?? 1_750_000_000;
  const requests: ResponsesRequest[] = [];
  const scenarios = new ScenarioQueue<ResponsesScenario, ResponsesRequest>(undefined, () => ({}));
  const store = new Map<string, { response: Json; input: Json[] }>();
  let counter = 0;

  const upstream = await startMockUpstream({
    noDelay: true,
    respond({ request: r }) {
      const request: ResponsesRequest = { index: r.index, method: r.method, path: r.path, headers: r.headers, rawBody: r.rawBody, body: r.body };
      requests.push(request);
      return answer(request, scenarios.next(request));
    },
  });

  function error(status: number, message: string, type: string, code: string | null, param: string | null = null): Reply {
    return json(status, { error: { message, type, param, code } });
  }

  function json(status: number, payload: unknown): Reply {
    const bytes = Buffer.from(JSON.stringify(payload), "utf8");
    return { status, headers: { "content-type": "application/json", "content-length": String(bytes.length), "x-request-id": `req_resp_${counter}` }, body: bytes };
  }

  function answer(request: ResponsesRequest, scenario: ResponsesScenario): Reply {
    const url = new URL(request.path, "http://mock");
    const route = url.pathname;
    if (scenario.status !== undefined && scenario.status >= 400) {
      const type = scenario.status === 429 ? "rate_limit_error" : scenario.status >= 500 ? "server_error" : "invalid_request_error";
      return error(scenario.status, scenario.errorMessage ?? `Mock error ${scenario.status}`, type, scenario.errorCode ?? null);
    }
    const stored = /^\/v1\/responses\/([^/]+)(\/input_items)?$/.exec(route);
    if (stored) {
      const id = decodeURIComponent(stored[1]!);
      const entry = store.get(id);
      if (!entry) return error(404, `Response with id '${id}' not found.`, "invalid_request_error", null);
      if (request.method === "DELETE" && !stored[2]) {
        store.delete(id);
        return json(200, { id, object: "response", deleted: true });
      }
      if (request.method !== "GET") return error(405, "Method not allowed", "invalid_request_error", null);
      if (stored[2]) {
        const data = entry.input;
        return json(200, { object: "list", data, first_id: (data[0]?.id as string) ?? null, last_id: (data.at(-1)?.id as string) ?? null, has_more: false });
      }
      return json(200, entry.response);
    }
    if (route !== "/v1/responses" || request.method !== "POST") return error(404, `Invalid URL (${request.method} ${route})`, "invalid_request_error", null);
    const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as Json;
    if (typeof body.model !== "string") return error(400, "Missing required parameter: 'model'.", "invalid_request_error", "missing_required_parameter", "model");
    if (typeof body.previous_response_id === "string" && !store.has(body.previous_response_id)) {
      return error(400, `Previous response with id '${body.previous_response_id}' not found.`, "invalid_request_error", "previous_response_not_found", "previous_response_id");
    }
    const n = ++counter;
    const id = `resp_mock_${n}`;
    const output = outputOf(n, scenario);
    const finalStatus = scenario.finalStatus ?? "completed";
    const base = envelope(id, body, created);
    const inputTokens = countWords(JSON.stringify(body.input ?? ""));
    const outputTokens = output.reduce((k, item) => k + countWords(JSON.stringify(item.type === "message" ? (item.content as Json[])[0]!.text : item.arguments)), 0);
    const usage = {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + outputTokens,
    };
    const done: Json = {
      ...base,
      status: finalStatus,
      incomplete_details: finalStatus === "incomplete" ? { reason: "max_output_tokens" } : null,
      output,
      usage,
      ...(finalStatus === "completed" && { completed_at: created + 1 }),
    };
    if (body.store !== false) store.set(id, { response: done, input: inputItems(body.input, n) });
    if (body.stream !== true) return json(200, done);
    return stream(base, done, output, scenario);
  }

  function stream(base: Json, done: Json, output: Json[], scenario: ResponsesScenario): Reply {
    const events: Json[] = [];
    const inProgress = { ...base, status: "in_progress", output: [], usage: null };
    events.push({ type: "response.created", response: inProgress }, { type: "response.in_progress", response: inProgress });
    output.forEach((item, outputIndex) => {
      if (item.type === "message") {
        const text = ((item.content as Json[])[0] as { text: string }).text;
        const itemId = item.id as string;
        events.push({
          type: "response.output_item.added",
          output_index: outputIndex,
          item: { id: itemId, type: "message", status: "in_progress", content: [], role: "assistant" },
        });
        events.push({
          type: "response.content_part.added",
          item_id: itemId,
          output_index: outputIndex,
          content_index: 0,
          part: { type: "output_text", annotations: [], logprobs: [], text: "" },
        });
        for (const piece of text.split(/(?= )/)) {
          events.push({ type: "response.output_text.delta", item_id: itemId, output_index: outputIndex, content_index: 0, delta: piece, logprobs: [], obfuscation: "mOck" });
        }
        events.push({ type: "response.output_text.done", item_id: itemId, output_index: outputIndex, content_index: 0, text, logprobs: [] });
        events.push({
          type: "response.content_part.done",
          item_id: itemId,
          output_index: outputIndex,
          content_index: 0,
          part: { type: "output_text", annotations: [], logprobs: [], text },
        });
      } else {
        const args = item.arguments as string;
        events.push({ type: "response.output_item.added", output_index: outputIndex, item: { ...item, status: "in_progress", arguments: "" } });
        for (let i = 0; i < args.length; i += 8) {
          events.push({ type: "response.function_call_arguments.delta", item_id: item.id, output_index: outputIndex, delta: args.slice(i, i + 8), obfuscation: "mOck" });
        }
        events.push({ type: "response.function_call_arguments.done", item_id: item.id, output_index: outputIndex, arguments: args });
      }
      events.push({ type: "response.output_item.done", output_index: outputIndex, item });
    });
    events.push({ type: done.status === "incomplete" ? "response.incomplete" : "response.completed", response: done });
    const framed = events.map((e, i) => `event: ${e.type}\ndata: ${JSON.stringify({ type: e.type, sequence_number: i, ...withoutType(e) })}\n\n`);
    // Extra (e.g. unknown) events go right after response.in_progress, numbered in line.
    const extra = (scenario.extraEvents ?? []).map((e) => `event: ${e.event}\ndata: ${e.data}\n\n`);
    framed.splice(2, 0, ...extra);
    const steps: StreamStep[] = [];
    for (let i = 0; i < framed.length; i++) {
      if (scenario.cutAfterEvents === i) {
        steps.push({ cut: true });
        break;
      }
      if (scenario.errorEventAt === i) {
        steps.push({
          end: `event: error\ndata: ${JSON.stringify({ type: "error", sequence_number: i, code: "server_error", message: "The server had an error while processing your request.", param: null })}\n\n`,
        });
        break;
      }
      steps.push({ write: framed[i]! });
    }
    return { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": `req_resp_${counter}` }, stream: steps };
  }

  function outputOf(n: number, scenario: ResponsesScenario): Json[] {
    if (scenario.toolCalls) {
      return scenario.toolCalls.map((call, i) => ({
        id: `fc_mock_${n}_${i}`,
        type: "function_call",
        status: "completed",
        arguments: call.arguments,
        call_id: call.callId ?? `call_mock_${n}_${i}`,
        name: call.name,
      }));
    }
    const text = scenario.text ?? MOCK_RESPONSES_TEXT;
    return [{ id: `msg_mock_${n}`, type: "message", status: "completed", content: [{ type: "output_text", annotations: [], logprobs: [], text }], role: "assistant" }];
  }

  return {
    url: `${upstream.origin}/v1`,
    requests,
    enqueue: (...list) => scenarios.enqueue(...list),
    stored: () => [...store.keys()],
    reset() {
      requests.length = 0;
      scenarios.clear();
      store.clear();
    },
    close: () => upstream.close(),
  };
}

/** The Response fields OpenAI echoes from the request, in its order. */
function envelope(id: string, body: Json, created: number): Json {
  return {
    id,
    object: "response",
    created_at: created,
    status: "in_progress",
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: null,
    model: `${String(body.model)}-2025-04-14`,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    prompt_cache_key: null,
    reasoning: { effort: null, summary: null },
    safety_identifier: null,
    service_tier: "default",
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: "text" }, verbosity: "medium" },
    tool_choice: body.tool_choice ?? "auto",
    tools: body.tools ?? [],
    top_logprobs: 0,
    top_p: body.top_p ?? 1,
    truncation: "disabled",
    usage: null,
    user: null,
    metadata: body.metadata ?? {},
  };
}

function inputItems(input: unknown, n: number): Json[] {
  if (typeof input === "string") return [{ id: `msg_in_${n}_0`, type: "message", role: "user", content: [{ type: "input_text", text: input }], status: "completed" }];
  if (!Array.isArray(input)) return [];
  return input.map((item: Json, i) => ({ id: `item_in_${n}_${i}`, ...item }));
}

function withoutType(e: Json): Json {
  const { type: _type, ...rest } = e;
  return rest;
}

function countWords(text: string): number {
  return text.split(/\s+/).filter((w) => w !== "").length;
}
