import { describe, expect, it } from "vitest";
import { streamReadFailure, withoutSyntaxCause } from "../../../../enclave/providers/shared/stream-read-failure.js";
import { UpstreamError, type ProviderCallContext } from "../../../../enclave/providers/types.js";

function ctx(signal: AbortSignal = new AbortController().signal): ProviderCallContext {
  return { fetch: globalThis.fetch, signal, upstreamModel: "m", now: () => new Date(0) };
}

function aborted(reason?: unknown): AbortSignal {
  const controller = new AbortController();
  controller.abort(reason);
  return controller.signal;
}

const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });

describe("streamReadFailure: the one mid-stream mapping", () => {
  it.each([
    ["a reset before any chunk", ctx(), reset, false, { kind: "connect", retryable: true }],
    ["a reset after a chunk", ctx(), reset, true, { kind: "malformed", retryable: false }],
    ["the client's abort", ctx(aborted()), reset, true, { kind: "aborted", retryable: false }],
    ["a timeout", ctx(aborted(new DOMException("t", "TimeoutError"))), reset, false, { kind: "timeout", retryable: false }],
    ["an abort that surfaced as an UpstreamError", ctx(aborted()), new UpstreamError("malformed", "x"), false, { kind: "aborted" }],
  ] as const)("%s", (_name, context, cause, delivered, expected) => {
    expect(streamReadFailure(context, "p", cause, delivered)).toMatchObject(expected);
  });

  it("names the connection loss for what it is and keeps the cause", () => {
    const err = streamReadFailure(ctx(), "p", reset, true);
    expect(err.message).toBe("p: upstream connection lost mid-stream");
    expect(err.cause).toBe(reset);
  });

  it("passes an UpstreamError on unchanged (a malformed or in-band error event is already named)", () => {
    const named = new UpstreamError("status", "p: stream error event", 529);
    expect(streamReadFailure(ctx(), "p", named, true)).toBe(named);
  });

  it("never keeps a SyntaxError cause, whose message quotes upstream text", () => {
    let syntax: unknown;
    try {
      JSON.parse("{PROMPT-CANARY");
    } catch (e) {
      syntax = e;
    }
    const withSyntax = new UpstreamError("malformed", "p: stream event is not JSON", undefined, undefined, { cause: syntax });
    const mapped = streamReadFailure(ctx(), "p", withSyntax, true);
    expect(mapped).toMatchObject({ kind: "malformed", message: "p: stream event is not JSON" });
    expect(mapped.cause).toBeUndefined();
    expect(withoutSyntaxCause(withSyntax).cause).toBeUndefined();
    expect(withoutSyntaxCause(reset)).toBe(reset);
  });
});
