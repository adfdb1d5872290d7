import type { Duplex } from "node:stream";
import { ProvisionSendError } from "./errors.js";

/**
 * The provisioning channel's framing (docs/PROTOCOL.md, "Boot
 * provisioning"): a 4-byte big-endian length, then that many bytes of UTF-8
 * JSON; one frame each way. The enclave has its own reader
 * (enclave/provision/frame.ts): host/ imports nothing from enclave/, as
 * with the PROXY v2 header, and the round-trip tests hold the two together.
 */
export const FRAME_HEADER_BYTES = 4;

export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length === 0 || body.length > 0xffff_ffff) throw new RangeError(`frame body expected 1..2^32-1 bytes, got ${body.length}`);
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Reads exactly one frame of at most `maxBytes`, before `timeoutMs`, or
 * until `signal` aborts. Bytes after the frame are refused.
 */
export function readFrame(socket: Duplex, options: { maxBytes: number; timeoutMs: number; signal?: AbortSignal }): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    let headerFill = 0;
    let body: Uint8Array | undefined;
    let bodyFill = 0;
    const read = () => headerFill + bodyFill;
    const timer = setTimeout(() => done(new ProvisionSendError("ERR_PROVISION_TIMEOUT", `no whole status within ${options.timeoutMs} ms (${read()} bytes read)`)), options.timeoutMs);

    function done(result: Uint8Array | ProvisionSendError): void {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
      options.signal?.removeEventListener("abort", onAbort);
      if (result instanceof ProvisionSendError) reject(result);
      else resolve(result);
    }
    function onData(chunk: Buffer): void {
      let offset = 0;
      if (body === undefined) {
        const take = Math.min(FRAME_HEADER_BYTES - headerFill, chunk.length);
        header.set(chunk.subarray(0, take), headerFill);
        headerFill += take;
        offset = take;
        if (headerFill < FRAME_HEADER_BYTES) return;
        const length = new DataView(header.buffer).getUint32(0, false);
        if (length === 0) return done(new ProvisionSendError("ERR_PROVISION_MALFORMED", "the status frame is empty"));
        if (length > options.maxBytes) return done(new ProvisionSendError("ERR_PROVISION_TOO_LARGE", `the status frame declares ${length} bytes, at most ${options.maxBytes} allowed`));
        body = new Uint8Array(length);
      }
      const take = Math.min(body.length - bodyFill, chunk.length - offset);
      body.set(chunk.subarray(offset, offset + take), bodyFill);
      bodyFill += take;
      offset += take;
      if (bodyFill < body.length) return;
      if (offset < chunk.length) return done(new ProvisionSendError("ERR_PROVISION_MALFORMED", `${chunk.length - offset} bytes follow the status frame`));
      done(body);
    }
    function onEnd(): void {
      done(new ProvisionSendError("ERR_PROVISION_CLOSED", `the enclave closed the connection after ${read()} bytes of status`));
    }
    function onError(err: NodeJS.ErrnoException): void {
      done(new ProvisionSendError("ERR_PROVISION_CLOSED", `the connection failed (${err.code ?? "error"}) after ${read()} bytes of status`));
    }
    function onAbort(): void {
      done(new ProvisionSendError("ERR_PROVISION_ABORTED", "provisioning was stopped"));
    }
    if (options.signal?.aborted) return onAbort();
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    socket.resume();
  });
}
