import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import * as enclaveSide from "../../../../enclave/provision/index.js";
import * as hostSide from "../../../../host/provision/index.js";
import { encodeFrame, readFrame } from "../../../../host/transport/codec/frame.js";
import { ProvisionError } from "../../../../host/transport/codec/provision-errors.js";

const u8 = (...bytes: number[]) => new Uint8Array(bytes);

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionError);
    return (err as ProvisionError).code;
  }
  throw new Error("expected a rejection");
}

describe("provisioning frames: 4-byte big-endian length + body", () => {
  it("encodes the length big-endian, the same on both sides", () => {
    expect([...encodeFrame(u8(0x7b, 0x7d))]).toEqual([0, 0, 0, 2, 0x7b, 0x7d]);
    // One codec: both sides' barrels hand out these very functions.
    for (const side of [enclaveSide, hostSide]) {
      expect(side.encodeFrame).toBe(encodeFrame);
      expect(side.readFrame).toBe(readFrame);
      expect(side.ProvisionError).toBe(ProvisionError);
    }
    expect(() => encodeFrame(new Uint8Array())).toThrow(RangeError);
  });

  it("reads a frame delivered one byte at a time", async () => {
    const s = new PassThrough();
    const body = new TextEncoder().encode('{"version":1}');
    const reading = readFrame(s, { maxBytes: 100, timeoutMs: 2000 });
    for (const b of encodeFrame(body)) s.write(u8(b));
    expect(Buffer.from(await reading).toString()).toBe('{"version":1}');
  });

  it("refuses an oversized length from the header alone", async () => {
    const s = new PassThrough();
    const reading = readFrame(s, { maxBytes: 1024, timeoutMs: 2000 });
    s.write(u8(0x00, 0x00, 0x04, 0x01));
    expect(await code(reading)).toBe("ERR_PROVISION_TOO_LARGE");
  });

  it("refuses an empty body and bytes after the frame", async () => {
    const a = new PassThrough();
    const r1 = readFrame(a, { maxBytes: 10, timeoutMs: 2000 });
    a.write(u8(0, 0, 0, 0));
    expect(await code(r1)).toBe("ERR_PROVISION_MALFORMED");
    const b = new PassThrough();
    const r2 = readFrame(b, { maxBytes: 10, timeoutMs: 2000 });
    b.write(Buffer.concat([encodeFrame(u8(1)), u8(2)]));
    expect(await code(r2)).toBe("ERR_PROVISION_MALFORMED");
  });

  it("a peer that ends mid-frame is ERR_PROVISION_CLOSED; one that stalls is ERR_PROVISION_TIMEOUT", async () => {
    const a = new PassThrough();
    const r1 = readFrame(a, { maxBytes: 10, timeoutMs: 2000 });
    a.end(u8(0, 0, 0, 5, 1, 2));
    expect(await code(r1)).toBe("ERR_PROVISION_CLOSED");
    const b = new PassThrough();
    const r2 = readFrame(b, { maxBytes: 10, timeoutMs: 100 });
    b.write(u8(0, 0, 0, 5, 1));
    const started = performance.now();
    expect(await code(r2)).toBe("ERR_PROVISION_TIMEOUT");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("stops on the caller's signal with ERR_PROVISION_ABORTED, before and during the read", async () => {
    const before = new AbortController();
    before.abort();
    expect(await code(readFrame(new PassThrough(), { maxBytes: 10, timeoutMs: 2000, signal: before.signal }))).toBe("ERR_PROVISION_ABORTED");
    const during = new AbortController();
    const s = new PassThrough();
    const reading = readFrame(s, { maxBytes: 10, timeoutMs: 2000, signal: during.signal });
    s.write(u8(0, 0, 0, 5, 1));
    during.abort();
    expect(await code(reading)).toBe("ERR_PROVISION_ABORTED");
  });

  it("a peer that already hung up is ERR_PROVISION_CLOSED at once, not a timeout", async () => {
    const s = new PassThrough();
    s.destroy();
    expect(await code(readFrame(s, { maxBytes: 10, timeoutMs: 60_000 }))).toBe("ERR_PROVISION_CLOSED");
  });
});
