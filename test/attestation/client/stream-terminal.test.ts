import { describe, expect, it } from "vitest";
import { streamSurfaceFor, TerminalEventHolder } from "../../../attestation/client/stream-terminal.js";

const chunk = (i: number) => `data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"w${i}"}}]}\n\n`;

/** Feeds `text` in pieces of `size` bytes; returns what passed before the end and what was held. */
function run(path: string, text: string, size: number) {
  const holder = new TerminalEventHolder(streamSurfaceFor(path));
  const bytes = new TextEncoder().encode(text);
  let passed = "";
  for (let i = 0; i < bytes.length; i += size) passed += Buffer.from(holder.push(bytes.subarray(i, i + size))).toString("utf8");
  return { holder, passed };
}

describe("TerminalEventHolder", () => {
  for (const size of [1, 3, 7, 64, 100_000]) {
    it(`openai chat, chunks of ${size}: every event passes at once except [DONE], released after verification`, () => {
      const events = [chunk(1), chunk(2), chunk(3)].join("");
      const { holder, passed } = run("/v1/chat/completions", `${events}data: [DONE]\n\n`, size);
      expect(passed).toBe(events);
      expect(holder.holding).toBe(true);
      expect(Buffer.from(holder.release()).toString()).toBe("data: [DONE]\n\n");
    });
  }

  const disguised = ["data:[DONE]\n\n", "data: [DONE]\r\n\r\n", "data: [DONE]\r\r", ": note\nid: 7\ndata: [DONE]\n\n", "event: done\ndata: [DONE] \n\n"];
  for (const end of disguised) {
    it(`a rewritten end marker is still held: ${JSON.stringify(end)}`, () => {
      for (const size of [1, 5, 1000]) {
        const { holder, passed } = run("/v1/chat/completions", `${chunk(1)}${end}`, size);
        // Never passed before verification (an event still waiting for a possible LF is not passed either).
        expect(passed).toBe(chunk(1));
        expect(Buffer.from(holder.release()).toString()).toBe(end);
      }
    });
  }

  it("anthropic: message_stop is held (by event name or data type), other events pass", () => {
    const start = 'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n';
    const delta = 'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"the word message_stop"}}\n\n';
    for (const stop of ['event: message_stop\ndata: {"type":"message_stop"}\n\n', 'data: {"type":"message_stop"}\n\n', "event: message_stop\r\ndata: {}\r\n\r\n"]) {
      const { holder, passed } = run("/v1/messages", `${start}${delta}${stop}`, 4);
      expect(passed).toBe(`${start}${delta}`);
      expect(Buffer.from(holder.release()).toString()).toBe(stop);
    }
  });

  it("anything after the terminal event is held too, and an unfinished last event is released only after verification", () => {
    const { holder, passed } = run("/v1/chat/completions", `${chunk(1)}data: [DONE]\n\n${chunk(2)}data: {"part`, 2);
    expect(passed).toBe(chunk(1));
    expect(Buffer.from(holder.release()).toString()).toBe(`data: [DONE]\n\n${chunk(2)}data: {"part`);
  });

  it("on failure the held bytes are replaced by the surface's error event", () => {
    const openai = run("/v1/chat/completions", `${chunk(1)}data: [DONE]\n\n`, 9).holder;
    const err = Buffer.from(openai.errorEvent("ERR_SIGNATURE_INVALID", "bad")).toString();
    expect(err).toBe('data: {"error":{"message":"bad","type":"egw_verification_failed","param":null,"code":"ERR_SIGNATURE_INVALID"}}\n\n');
    expect(openai.release().length).toBe(0);
    const anthropic = run("/v1/messages", "event: message_stop\ndata: {}\n\n", 9).holder;
    expect(Buffer.from(anthropic.errorEvent("ERR_RECEIPT_MISSING", "cut")).toString()).toMatch(
      /^event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"cut \(ERR_RECEIPT_MISSING\)"\}\}\n\n$/,
    );
  });

  it("responses: completed, incomplete and failed are held (by event name or data type), the error event before failed passes", () => {
    const delta = 'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":3,"delta":"say response.completed"}\n\n';
    const error = 'event: error\ndata: {"type":"error","sequence_number":4,"code":"upstream_error","message":"m","param":null,"error":{"type":"api_error"}}\n\n';
    for (const end of [
      'event: response.completed\ndata: {"type":"response.completed","sequence_number":4}\n\n',
      'event: response.incomplete\ndata: {"type":"response.incomplete","sequence_number":4}\n\n',
      'data: {"type":"response.failed","sequence_number":5}\n\n',
    ]) {
      const before = end.includes("failed") ? `${delta}${error}` : delta;
      const { holder, passed } = run("/v1/responses", `${before}${end}`, 6);
      expect(passed).toBe(before);
      expect(Buffer.from(holder.release()).toString()).toBe(end);
    }
  });

  it("responses: the verification error event carries OpenAI's flat fields and the nested error openai-node throws on", () => {
    const holder = run("/v1/responses", 'event: response.completed\ndata: {"type":"response.completed"}\n\n', 5).holder;
    const text = Buffer.from(holder.errorEvent("ERR_SIGNATURE_INVALID", "bad")).toString();
    expect(text.startsWith("event: error\ndata: ")).toBe(true);
    expect(JSON.parse(text.slice("event: error\ndata: ".length))).toEqual({
      type: "error",
      sequence_number: 0,
      code: "ERR_SIGNATURE_INVALID",
      message: "bad",
      param: null,
      error: { type: "egw_verification_failed", code: "ERR_SIGNATURE_INVALID", message: "bad", param: null },
    });
  });

  it("the table: responses surface, and any other path holds every known end marker", () => {
    expect(streamSurfaceFor("/v1/responses").name).toBe("openai-responses");
    expect(run("/v1/responses", 'event: response.completed\ndata: {"type":"response.completed"}\n\n', 5).holder.holding).toBe(true);
    expect(streamSurfaceFor("/v1/messagesx").name).toBe("default");
    for (const end of ["data: [DONE]\n\n", "event: message_stop\ndata: {}\n\n", "event: response.completed\ndata: {}\n\n"]) {
      expect(run("/v1/other", end, 3).holder.holding).toBe(true);
    }
    expect(run("/v1/other", chunk(1), 3).passed).toBe(chunk(1));
  });

  it("gemini: the first event with a finishReason (or a blocked prompt) is held; text that merely says finishReason passes", () => {
    const path = "/v1beta/models/m:streamGenerateContent";
    const text = 'data: {"candidates":[{"content":{"parts":[{"text":"the \\"finishReason\\": word"}],"role":"model"},"index":0}]}\r\n\r\n';
    const last = 'data: {"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"totalTokenCount":3}}\r\n\r\n';
    for (const size of [1, 5, 4096]) {
      const { holder, passed } = run(path, `${text}${last}`, size);
      expect(passed).toBe(text);
      expect(Buffer.from(holder.release()).toString()).toBe(last);
    }
    expect(run(path, 'data: {"promptFeedback":{"blockReason":"SAFETY"}}\r\n\r\n', 3).holder.holding).toBe(true);
    const err = Buffer.from(run(path, last, 9).holder.errorEvent("ERR_RECEIPT_MISSING", "cut")).toString();
    expect(JSON.parse(err.replace(/^data: /, ""))).toEqual({ error: { code: 502, message: "ERR_RECEIPT_MISSING: cut", status: "ERR_RECEIPT_MISSING" } });
    expect(err.endsWith("\r\n\r\n")).toBe(true);
    expect(run("/v1/other", last, 3).holder.holding).toBe(true);
  });
});
