import { EgwError } from "../egw-error.js";

/**
 * Holds a stream's terminal event until its receipt verifies (docs/PROTOCOL.md
 * §3, "Holding the end of a stream").
 *
 * A client that stops reading at the surface's end marker (OpenAI chat
 * `data: [DONE]`, legacy completions the same, Anthropic `event: message_stop`, OpenAI Responses
 * `response.completed`, Gemini's first event carrying a `finishReason`) would report success for a stream whose receipt —
 * which comes after that marker — never verifies. So the terminal event, and
 * anything after it, is held back; every other event passes on as soon as
 * its blank line arrives (an SSE consumer dispatches an event only then, so
 * this delays nothing it could use: WHATWG HTML §9.2.6). When the receipt
 * verifies, the held bytes follow; when it does not, an error event in the
 * surface's own format takes their place, so the official SDKs throw.
 *
 * Events are split the way SSE parsers split them (lines end in CRLF, LF or
 * CR; an empty line ends the event), not the way the gateway writes them, so
 * a rewritten end marker (`data:[DONE]\r\n\r\n`) is still recognised.
 */

/** One SSE event as a parser sees it. */
export interface SseEventFields {
  /** The `event` field (last one wins), or "" when none: the parser's default type is "message". */
  event: string;
  /** The data lines joined by "\n". */
  data: string;
}

/** How one API surface ends a stream and reports an error inside one. */
export interface StreamSurface {
  name: string;
  /** Whether a request path is this surface's. */
  matches(path: string): boolean;
  /** Whether the event is (or may be read by an SDK as) the stream's successful end. */
  isTerminal(fields: SseEventFields): boolean;
  /** The in-stream error event the surface's SDK turns into a thrown error. */
  errorEvent(code: string, message: string): string;
}

/** OpenAI's SDK ends at any data that starts with "[DONE]", whatever the event name. */
const openaiDone = (f: SseEventFields): boolean => f.data.startsWith("[DONE]");

/** A JSON `type` in the data, parsed only when the text is there at all (cheap for every other event). */
function dataTypeIs(f: SseEventFields, types: readonly string[]): boolean {
  if (!types.some((t) => f.data.includes(t))) return false;
  try {
    const parsed = JSON.parse(f.data) as { type?: unknown } | null;
    return typeof parsed === "object" && parsed !== null && typeof parsed.type === "string" && types.includes(parsed.type);
  } catch {
    return false;
  }
}

const ANTHROPIC_END = ["message_stop"];
/** Every last event of a Responses stream: completed, incomplete, and failed (which the gateway writes after an in-stream error). */
const RESPONSES_END = ["response.completed", "response.incomplete", "response.failed"];
const anthropicEnd = (f: SseEventFields): boolean => ANTHROPIC_END.includes(f.event) || dataTypeIs(f, ANTHROPIC_END);
const responsesEnd = (f: SseEventFields): boolean => RESPONSES_END.includes(f.event) || dataTypeIs(f, RESPONSES_END);

/**
 * Gemini's alt=sse stream has no end marker: it stops after the event whose
 * candidates carry their finishReason (or whose promptFeedback says the
 * prompt was blocked). So that event is the terminal one: a verifying client
 * holds it, and everything after it, until the receipt verifies; a stream
 * cut before it never ends in success. @google/genai and @ai-sdk/google read
 * `data:` lines only; the receipt comment after the last event is ignored.
 */
function geminiEnd(f: SseEventFields): boolean {
  if (!f.data.includes("finishReason") && !f.data.includes("blockReason")) return false;
  try {
    const parsed = JSON.parse(f.data) as { candidates?: unknown; promptFeedback?: { blockReason?: unknown } } | null;
    if (typeof parsed !== "object" || parsed === null) return false;
    if (
      Array.isArray(parsed.candidates) &&
      parsed.candidates.some((c) => typeof c === "object" && c !== null && typeof (c as { finishReason?: unknown }).finishReason === "string")
    )
      return true;
    return typeof parsed.promptFeedback?.blockReason === "string";
  } catch {
    return false;
  }
}

/** Google's in-stream error, which @google/genai throws as ApiError (its code must be an HTTP error status). */
const geminiError = (code: string, message: string): string => `data: ${JSON.stringify({ error: { code: 502, message: `${code}: ${message}`, status: code } })}\r\n\r\n`;

const openaiError = (code: string, message: string): string => `data: ${JSON.stringify({ error: { message, type: "egw_verification_failed", param: null, code } })}\n\n`;

/** Path prefix match on a segment boundary: "/v1/messages" and "/v1/messages/x", not "/v1/messagesx". */
const under = (prefix: string) => (path: string) => path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}?`);

/**
 * The table. Add a surface here (its path, its end marker, its error event)
 * and both the verified fetch and `egw proxy` hold its end.
 */
export const STREAM_SURFACES: readonly StreamSurface[] = [
  { name: "openai-chat", matches: under("/v1/chat/completions"), isTerminal: openaiDone, errorEvent: openaiError },
  { name: "openai-completions", matches: under("/v1/completions"), isTerminal: openaiDone, errorEvent: openaiError },
  {
    name: "anthropic-messages",
    matches: under("/v1/messages"),
    isTerminal: anthropicEnd,
    errorEvent: (code, message) => `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message: `${message} (${code})` } })}\n\n`,
  },
  {
    name: "openai-responses",
    matches: under("/v1/responses"),
    isTerminal: responsesEnd,
    // The flat fields are openai-node's ResponseErrorEvent; the nested `error` is what makes openai-node throw (src/core/streaming.ts throws on data.error).
    errorEvent: (code, message) =>
      `event: error\ndata: ${JSON.stringify({ type: "error", sequence_number: 0, code, message, param: null, error: { type: "egw_verification_failed", code, message, param: null } })}\n\n`,
  },
  { name: "gemini", matches: (path) => path.startsWith("/v1beta/"), isTerminal: geminiEnd, errorEvent: geminiError },
];

/**
 * Any other path: every end marker above counts (a stream on a surface this
 * client does not know still never ends in success before its receipt), and
 * errors take the OpenAI form.
 */
export const DEFAULT_STREAM_SURFACE: StreamSurface = {
  name: "default",
  matches: () => true,
  isTerminal: (f) => openaiDone(f) || anthropicEnd(f) || responsesEnd(f) || geminiEnd(f),
  errorEvent: openaiError,
};

export function streamSurfaceFor(path: string): StreamSurface {
  return STREAM_SURFACES.find((s) => s.matches(path)) ?? DEFAULT_STREAM_SURFACE;
}

/** An event larger than this is refused (it would have to be held whole). */
export const MAX_SSE_EVENT_BYTES = 8 * 1024 * 1024;
/** At most this much is held after the terminal event (a gateway sends nothing there but the receipt). */
export const MAX_HELD_AFTER_TERMINAL = 1024 * 1024;

/** Becomes ClientError ERR_RESPONSE_TOO_LARGE (response-check.ts); the same code here. */
export class StreamTooLarge extends EgwError<"ERR_RESPONSE_TOO_LARGE"> {
  constructor(message: string) {
    super("ERR_RESPONSE_TOO_LARGE", message, "reject");
  }
}

const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

function parseFields(lines: readonly string[]): SseEventFields {
  let event = "";
  const data: string[] = [];
  for (const line of lines) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  return { event, data: data.join("\n") };
}

export class TerminalEventHolder {
  /** Bytes of the event not yet ended by an empty line. */
  private pending: Buffer = EMPTY;
  /** Complete lines of the pending event, and where the next line starts in `pending`. */
  private lines: string[] = [];
  private lineStart = 0;
  /** The terminal event and everything after it. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private terminalSeen = false;

  constructor(private readonly surface: StreamSurface) {}

  /** Feeds bytes; returns those that may pass on now (whole events only). Throws StreamTooLarge past the bounds. */
  push(chunk: Uint8Array): Uint8Array {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.terminalSeen) {
      this.hold(buf);
      return EMPTY;
    }
    this.pending = this.pending.length === 0 ? Buffer.from(buf) : Buffer.concat([this.pending, buf]);
    const out: Buffer[] = [];
    let eventStart = 0;
    let i = this.lineStart;
    while (i < this.pending.length) {
      const c = this.pending[i]!;
      if (c !== LF && c !== CR) {
        i++;
        continue;
      }
      // A CR at the end of what arrived may be the first half of CRLF: wait.
      if (c === CR && i + 1 === this.pending.length) break;
      const lineEnd = i;
      i += c === CR && this.pending[i + 1] === LF ? 2 : 1;
      const line = this.pending.subarray(this.lineStart, lineEnd).toString("utf8");
      this.lineStart = i;
      if (line !== "") {
        this.lines.push(line);
        continue;
      }
      // An empty line: the event [eventStart, i) is complete.
      const event = this.pending.subarray(eventStart, i);
      const fields = parseFields(this.lines);
      this.lines = [];
      eventStart = i;
      if (this.terminalSeen || this.surface.isTerminal(fields)) {
        this.terminalSeen = true;
        this.hold(event);
      } else {
        out.push(event);
      }
    }
    if (this.terminalSeen && eventStart < this.pending.length) this.hold(this.pending.subarray(eventStart));
    this.pending = this.terminalSeen ? EMPTY : Buffer.from(this.pending.subarray(eventStart));
    this.lineStart = this.terminalSeen ? 0 : this.lineStart - eventStart;
    if (this.pending.length > MAX_SSE_EVENT_BYTES) throw new StreamTooLarge(`an SSE event is over ${MAX_SSE_EVENT_BYTES} bytes`);
    return out.length === 0 ? EMPTY : out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** After the receipt verified: everything held, in order (the terminal event, then any unfinished last event). */
  release(): Uint8Array {
    const out = Buffer.concat([...this.held, this.pending]);
    this.held = [];
    this.pending = EMPTY;
    return out;
  }

  /** The error event that replaces the held bytes when the receipt does not verify. */
  errorEvent(code: string, message: string): Uint8Array {
    this.held = [];
    this.pending = EMPTY;
    return new TextEncoder().encode(this.surface.errorEvent(code, message));
  }

  /** Whether the terminal event has been seen (and is held). */
  get holding(): boolean {
    return this.terminalSeen;
  }

  private hold(bytes: Buffer): void {
    this.heldBytes += bytes.length;
    if (this.heldBytes > MAX_HELD_AFTER_TERMINAL + MAX_SSE_EVENT_BYTES) throw new StreamTooLarge("too much data after the stream's terminal event");
    this.held.push(Buffer.from(bytes));
  }
}
