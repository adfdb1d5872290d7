import net from "node:net";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { pump } from "../../../host/transport/pump.js";
import { readAll, until } from "./helpers.js";

/**
 * The one byte pump (ingress relay, egress tunnels, vsock bridges), on real
 * loopback socket pairs (the onread path) and on plain streams (the
 * stream.pipe fallback).
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A connected loopback pair: [client end, server end]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
  await new Promise<void>((r) => client.once("connect", r));
  const peer = await accepted;
  cleanups.push(() => {
    client.destroy();
    peer.destroy();
    return new Promise((r) => server.close(r));
  });
  return [client, peer];
}

describe("pump", () => {
  it("copies every byte, in order, and a FIN becomes end() on the other side; hooks see the first byte once and every byte", async () => {
    const [aOut, aIn] = await socketPair();
    const [bIn, bOut] = await socketPair();
    let first = 0;
    let counted = 0;
    pump(aIn, bIn, { onFirstByte: () => first++, onBytes: (n) => (counted += n) });
    const payload = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const received = readAll(bOut);
    bOut.resume(); // accepted paused
    aOut.end(payload);
    const got = await received;
    expect(got.equals(payload)).toBe(true);
    expect(first).toBe(1);
    expect(counted).toBe(payload.length);
    // Half-close: the other direction still flows after the FIN.
    const back = readAll(aOut);
    bOut.end("still open");
    pump(bIn, aIn);
    expect((await back).toString()).toBe("still open");
  });

  it("holds at most one read per direction when the reader stalls (maxReadBytes)", async () => {
    const [aOut, aIn] = await socketPair();
    const [bIn, bOut] = await socketPair();
    bOut.pause();
    pump(aIn, bIn, { maxReadBytes: 64 * 1024 });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    const flood = (): void => {
      while (written < 64 * 1024 * 1024) {
        written += chunk.length;
        if (!aOut.write(chunk)) return void aOut.once("drain", flood);
      }
    };
    flood();
    let maxHeld = 0;
    const sampler = setInterval(() => (maxHeld = Math.max(maxHeld, bIn.writableLength + aIn.readableLength)), 2);
    await new Promise((r) => setTimeout(r, 300));
    clearInterval(sampler);
    expect(written).toBeLessThan(64 * 1024 * 1024); // the writer is stuck: nothing swallowed it
    expect(maxHeld).toBeGreaterThan(0);
    expect(maxHeld).toBeLessThanOrEqual(64 * 1024);
  });

  it("falls back to stream.pipe for streams that are not sockets, with the same hooks", async () => {
    const src = new PassThrough();
    const dst = new PassThrough();
    let first = 0;
    let counted = 0;
    pump(src, dst, { onFirstByte: () => first++, onBytes: (n) => (counted += n) });
    const chunks: Buffer[] = [];
    dst.on("data", (c: Buffer) => chunks.push(c));
    let ended = false;
    dst.on("end", () => (ended = true));
    src.write("abc");
    src.end("def");
    await until(() => ended, 2000, "end");
    expect(Buffer.concat(chunks).toString()).toBe("abcdef");
    expect(first).toBe(1);
    expect(counted).toBe(6);
  });
});
