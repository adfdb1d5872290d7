import { describe, it, expect } from "vitest";
import type { Attester } from "../../../attestation/attester.js";
import { AttestationError } from "../../../attestation/errors.js";
import { NSM_MAX_GET_RANDOM_CALLS, NSM_MAX_RANDOM_LENGTH, NsmAttester } from "../../../attestation/nsm/nsm-attester.js";
import type { NsmDevice } from "../../../attestation/nsm/nsm-device.js";
import { nsmErrorCodeOf } from "../../../attestation/nsm/nsm-protocol.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));

// Minimal CBOR writer for the fake NSM's answers (independent of cbor-x).
function head(major: number, value: number): string {
  const m = major << 5;
  if (value < 24) return (m | value).toString(16).padStart(2, "0");
  if (value < 0x100) return (m | 24).toString(16) + value.toString(16).padStart(2, "0");
  return (m | 25).toString(16) + value.toString(16).padStart(4, "0");
}
const tstr = (s: string): string => head(3, s.length) + Buffer.from(s).toString("hex");
const bstr = (b: Uint8Array): string => head(2, b.length) + hex(b);
const map = (...entries: [string, string][]): string => head(5, entries.length) + entries.map(([k, v]) => tstr(k) + v).join("");

const GET_RANDOM = "6947657452616e646f6d";
const DOC = unhex(`d28443a10126a0590001ff5860${"00".repeat(4)}`);
const PCR = new Uint8Array(48).fill(0x5a);

/** A scripted NSM: answers by request kind, records every request it saw. */
class FakeNsm implements NsmDevice {
  readonly requests: string[] = [];
  closed = 0;
  randomChunk = 256;
  randomCounter = 0;
  answer: ((request: string) => Uint8Array) | undefined;

  call(request: Uint8Array): Uint8Array {
    if (this.closed > 0) throw new Error("fake device used after close");
    const text = hex(request);
    this.requests.push(text);
    if (this.answer) return this.answer(text);
    if (text === GET_RANDOM) {
      const chunk = new Uint8Array(this.randomChunk).map(() => this.randomCounter++ & 0xff);
      return unhex(map(["GetRandom", map(["random", bstr(chunk)])]));
    }
    if (text.startsWith("a16b4465736372696265504352")) {
      const index = Number.parseInt(text.slice(-2), 16);
      if (index > 31) return unhex(map(["Error", tstr("InvalidIndex")]));
      return unhex(map(["DescribePCR", map(["lock", index < 16 ? "f5" : "f4"], ["data", bstr(PCR)])]));
    }
    if (text.startsWith("a16b4174746573746174696f6e")) {
      return unhex(map(["Attestation", map(["document", bstr(DOC)])]));
    }
    return unhex(map(["Error", tstr("InvalidArgument")]));
  }

  close(): void {
    this.closed++;
  }
}

describe("NsmAttester with an injected device", () => {
  it("implements Attester with kind nsm", () => {
    const attester: Attester = new NsmAttester(new FakeNsm());
    expect(attester.kind).toBe("nsm");
  });

  it("attest sends the exact Attestation request and returns the document", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    const nonce = unhex("0102030405060708");
    const doc = await attester.attest({ nonce, publicKey: unhex("aabb") });
    expect(hex(doc)).toBe(hex(DOC));
    expect(device.requests).toEqual([
      "a1" + "6b4174746573746174696f6e" + "a3" + "69757365725f64617461" + "f6" + "656e6f6e6365" + "480102030405060708" + "6a7075626c69635f6b6579" + "42aabb",
    ]);
  });

  it("encodes the request when called, so later changes to the caller's buffer do not leak in", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    const nonce = new Uint8Array([1, 2]);
    const pending = attester.attest({ nonce });
    nonce.fill(0xff);
    await pending;
    expect(device.requests[0]).toContain("656e6f6e6365" + "420102");
  });

  it("rejects over-limit fields without touching the device", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    await expect(attester.attest({ userData: new Uint8Array(1025) })).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    await expect(attester.attest({ nonce: new Uint8Array(1025) })).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    await expect(attester.attest({ publicKey: new Uint8Array(1025) })).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    expect(device.requests).toEqual([]);
  });

  it("describePcr returns index, lock and value", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    const pcr0 = await attester.describePcr(0);
    expect(pcr0).toEqual({ index: 0, locked: true, data: PCR });
    const pcr16 = await attester.describePcr(16);
    expect(pcr16.locked).toBe(false);
    expect(device.requests).toEqual(["a16b4465736372696265504352a165696e64657800", "a16b4465736372696265504352a165696e64657810"]);
  });

  it("describePcr surfaces the NSM's InvalidIndex as ERR_NSM_RESPONSE", async () => {
    const attester = new NsmAttester(new FakeNsm());
    const err = await attester.describePcr(32).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttestationError);
    expect(err).toMatchObject({ code: "ERR_NSM_RESPONSE", message: "NSM returned error InvalidIndex for DescribePCR" });
    expect(nsmErrorCodeOf(err)).toBe("InvalidIndex");
  });

  it("describePcr rejects a non-u16 index without touching the device", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    await expect(attester.describePcr(-1)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    await expect(attester.describePcr(70000)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    expect(device.requests).toEqual([]);
  });
});

describe("getRandom", () => {
  it("returns a prefix of one answer when it suffices", async () => {
    const device = new FakeNsm();
    const out = await new NsmAttester(device).getRandom(10);
    expect(Array.from(out)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(device.requests).toEqual([GET_RANDOM]);
  });

  it("loops to reach the requested length, concatenating answers in order", async () => {
    const device = new FakeNsm();
    const out = await new NsmAttester(device).getRandom(1000);
    expect(out.length).toBe(1000);
    expect(out.every((b, i) => b === (i & 0xff))).toBe(true);
    expect(device.requests.length).toBe(4); // 256 + 256 + 256 + 232
  });

  it("reaches the 4096-byte maximum", async () => {
    const device = new FakeNsm();
    const out = await new NsmAttester(device).getRandom(NSM_MAX_RANDOM_LENGTH);
    expect(out.length).toBe(4096);
    expect(device.requests.length).toBe(16);
  });

  it("gives up after a bounded number of calls when the NSM is stingy", async () => {
    const device = new FakeNsm();
    device.randomChunk = 1;
    await expect(new NsmAttester(device).getRandom(100)).rejects.toMatchObject({
      code: "ERR_NSM_RESPONSE",
      message: `NSM gave ${NSM_MAX_GET_RANDOM_CALLS} of 100 random bytes in ${NSM_MAX_GET_RANDOM_CALLS} GetRandom calls`,
    });
    expect(device.requests.length).toBe(NSM_MAX_GET_RANDOM_CALLS);
  });

  it.each([0, -1, 4097, 1.5, Number.NaN, Infinity])("rejects length %s without touching the device", async (length) => {
    const device = new FakeNsm();
    await expect(new NsmAttester(device).getRandom(length)).rejects.toMatchObject({
      code: "ERR_NSM_REQUEST",
      message: expect.stringMatching(/"length" expected an integer in 1\.\.4096/),
    });
    expect(device.requests).toEqual([]);
  });

  it("rejects a non-number length", async () => {
    await expect(new NsmAttester(new FakeNsm()).getRandom("8" as unknown as number)).rejects.toMatchObject({
      code: "ERR_NSM_REQUEST",
      message: expect.stringMatching(/got string/),
    });
  });

  it("stops at an NSM error in the middle of the loop", async () => {
    const device = new FakeNsm();
    let calls = 0;
    device.answer = () => (++calls < 3 ? unhex(map(["GetRandom", map(["random", bstr(new Uint8Array(8))])])) : unhex(map(["Error", tstr("InternalError")])));
    const err = await new NsmAttester(device).getRandom(64).catch((e: unknown) => e);
    expect(nsmErrorCodeOf(err)).toBe("InternalError");
    expect(calls).toBe(3);
  });
});

describe("device failures", () => {
  it("passes a device's AttestationError through unchanged", async () => {
    const device = new FakeNsm();
    const original = new AttestationError("ERR_NSM_RESPONSE", "NSM ioctl failed (ETIMEDOUT)");
    device.answer = () => {
      throw original;
    };
    await expect(new NsmAttester(device).getRandom(8)).rejects.toBe(original);
  });

  it("wraps any other throw as ERR_NSM_UNAVAILABLE with the cause", async () => {
    const device = new FakeNsm();
    const boom = new TypeError("boom");
    device.answer = () => {
      throw boom;
    };
    const err = await new NsmAttester(device).attest({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttestationError);
    expect(err).toMatchObject({ code: "ERR_NSM_UNAVAILABLE", cause: boom });
  });

  it("rejects a device answer that is not bytes, or is the wrong variant", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    device.answer = () => "nope" as unknown as Uint8Array;
    await expect(attester.attest({})).rejects.toMatchObject({ code: "ERR_NSM_RESPONSE" });
    device.answer = () => unhex(map(["GetRandom", map(["random", "4101"])]));
    await expect(attester.attest({})).rejects.toMatchObject({
      code: "ERR_NSM_RESPONSE",
      message: 'NSM answered "GetRandom" to Attestation, expected "Attestation"',
    });
  });
});

describe("serialization and close", () => {
  it("runs concurrent calls one at a time, in the order they were made", async () => {
    const device = new FakeNsm();
    let active = 0;
    let maxActive = 0;
    const inner = device.call.bind(device);
    device.call = (request: Uint8Array): Uint8Array => {
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        return inner(request);
      } finally {
        active--;
      }
    };
    const attester = new NsmAttester(device);
    const results = await Promise.all([attester.describePcr(1), attester.getRandom(600), attester.attest({}), attester.describePcr(2)]);
    expect(maxActive).toBe(1);
    expect(results[1]).toHaveLength(600);
    const kinds = device.requests.map((r) => (r === GET_RANDOM ? "R" : r.startsWith("a16b44") ? "P" : "A"));
    // The three GetRandom calls of one getRandom() are contiguous.
    expect(kinds.join("")).toBe("PRRRAP");
  });

  it("a failed call does not stall the queue", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    const first = attester.describePcr(40);
    const second = attester.describePcr(3);
    await expect(first).rejects.toMatchObject({ code: "ERR_NSM_RESPONSE" });
    await expect(second).resolves.toMatchObject({ index: 3 });
  });

  it("close waits for accepted calls, then closes the device once", async () => {
    const device = new FakeNsm();
    const attester = new NsmAttester(device);
    const pending = [attester.getRandom(32), attester.describePcr(0), attester.attest({})];
    const closing = attester.close();
    await expect(attester.getRandom(8)).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE", message: "NSM attester is closed" });
    await expect(Promise.all(pending)).resolves.toHaveLength(3);
    await closing;
    expect(device.closed).toBe(1);
    await attester.close();
    expect(device.closed).toBe(1);
    expect(device.requests).toHaveLength(3);
  });

  it("close wraps a device close failure", async () => {
    const device = new FakeNsm();
    device.close = () => {
      throw new Error("close failed");
    };
    await expect(new NsmAttester(device).close()).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE" });
  });
});
