import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StreamReceiptSplitter } from "../../../attestation/client/stream-splitter.js";
import { receiptSseBlock, splitStreamReceipt } from "../../../attestation/receipt.js";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

function run(body: Uint8Array, cuts: number[]): { passed: Buffer; receipt: Uint8Array | null; maxHeld: number } {
  const splitter = new StreamReceiptSplitter();
  const out: Buffer[] = [];
  let maxHeld = 0;
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < body.length)].sort((a, b) => a - b).concat(body.length)) {
    out.push(Buffer.from(splitter.push(body.subarray(at, cut))));
    maxHeld = Math.max(maxHeld, splitter.heldBytes);
    at = cut;
  }
  return { passed: Buffer.concat(out), receipt: splitter.end(), maxHeld };
}

describe("StreamReceiptSplitter", () => {
  const events = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';
  const receipt = new Uint8Array(Buffer.from("a receipt of some bytes, not really COSE"));
  const body = enc(events + receiptSseBlock(receipt));

  it("strips the final block and returns the receipt, however the stream is cut", () => {
    for (let cut = 0; cut <= body.length; cut++) {
      const r = run(body, [cut]);
      expect(r.passed.toString("latin1")).toBe(events);
      expect(r.receipt).toEqual(receipt);
    }
  });

  it("holds nothing between complete events (no buffering of the stream)", () => {
    const splitter = new StreamReceiptSplitter();
    for (const e of ["data: x\n\n", "event: message_start\ndata: {}\n\n", ": a comment\n\n"]) {
      expect(Buffer.from(splitter.push(enc(e))).toString("latin1")).toBe(e);
      expect(splitter.heldBytes).toBe(0);
    }
  });

  it("holds at most a possible receipt line", () => {
    const r = run(body, [...Array(body.length).keys()]);
    expect(r.maxHeld).toBeLessThanOrEqual(": egw-receipt ".length + 8192 + 2);
  });

  it("releases look-alikes that cannot be the final block", () => {
    const lookalike = ": egw-receipt not!base64\n\n: egw-receipt AAAA\n\ndata: more\n\n";
    const r = run(enc(lookalike + events), [3, 20, 40]);
    expect(r.passed.toString("latin1")).toBe(lookalike + events);
    expect(r.receipt).toBeNull();
  });

  it("reports a missing or cut receipt as null", () => {
    expect(run(enc(events), []).receipt).toBeNull();
    expect(run(body.subarray(0, body.length - 1), []).receipt).toBeNull();
    expect(run(enc(`${events}: egw-receipt \n\n`), []).receipt).toBeNull();
  });

  it("agrees with splitStreamReceipt on any body and any chunking (property)", () => {
    let withReceipt = 0;
    const piece = fc.constantFrom("data: x\n\n", "\n", ": egw-receipt ", "QUJD", "_-", "!", "\n\n", "data: [DONE]\n\n", ":", "e", " ", "A".repeat(50));
    const tail = fc.oneof(
      fc.constant(""),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).map((b) => `\n: egw-receipt ${b}\n\n`),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).map((b) => `: egw-receipt ${b}\n\n`),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), tail, fc.array(fc.nat({ max: 400 }), { maxLength: 6 }), (parts, end, cuts) => {
        const whole = enc(parts.join("") + end);
        const expected = splitStreamReceipt(whole);
        const got = run(whole, cuts);
        if (expected === null) {
          expect(got.receipt).toBeNull();
          expect(got.passed.length).toBeLessThanOrEqual(whole.length);
        } else {
          withReceipt++;
          expect(got.receipt).toEqual(expected.receipt);
          expect(got.passed.equals(Buffer.from(expected.signed))).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    expect(withReceipt).toBeGreaterThan(50);
  });

  it("runs in linear time on a long stream of newlines and colons", () => {
    const big = enc(":\n".repeat(200_000));
    const t0 = performance.now();
    run(big, [1000, 50_000, 100_000]);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
