import fs from "node:fs";
import type net from "node:net";
import type { Transport } from "../transport/transport.js";

/**
 * A diagnostic wrapper around a Transport that appends every byte each
 * socket reads and writes to a file. It exists to *prove* the host's
 * blindness: the development stack's test records all relay traffic and
 * checks that no prompt, answer, key or token appears in it. It captures
 * only what the host already sees (ciphertext and CONNECT heads), so it
 * reveals nothing the operator could not capture with tcpdump; it is still
 * off by default and meant for development.
 *
 * Reads are taken where Node's socket pushes received data into its
 * readable buffer, writes where the relay calls write()/end(): neither
 * changes flow control. The ingress relay reads into its own buffers
 * (`onread`), which bypasses push; every byte it reads it writes to the
 * other side, so the write taps still record all of it.
 */
export function captureTransport(inner: Transport, file: string): Transport {
  const out = fs.createWriteStream(file, { flags: "a", mode: 0o600 });
  const record = (chunk: unknown) => {
    if (chunk === null || chunk === undefined) return;
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    if (bytes.length > 0) out.write(bytes);
  };
  const tap = (socket: net.Socket): net.Socket => {
    const push = socket.push.bind(socket);
    socket.push = (chunk: unknown, encoding?: BufferEncoding) => {
      record(chunk);
      return push(chunk, encoding);
    };
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      record(chunk);
      return write(chunk, ...rest);
    }) as typeof socket.write;
    const end = socket.end.bind(socket) as (...args: unknown[]) => net.Socket;
    socket.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== "function") record(chunk);
      return end(chunk, ...rest);
    }) as typeof socket.end;
    return socket;
  };
  return {
    listen: (endpoint, onConnection, options) => inner.listen(endpoint, (socket, peer) => onConnection(tap(socket), peer), options),
    connect: async (endpoint, options) => tap(await inner.connect(endpoint, options)),
  };
}
