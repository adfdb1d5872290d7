import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { UsageError } from "./context.js";

/**
 * Reads a document argument: a path, or "-" for standard input. Reads at
 * most `maxBytes` + 1 so an oversized input is still reported by the
 * decoder's own size check rather than buffered whole.
 */
export async function readInput(arg: string, stdin: Readable, cwd: string, maxBytes: number): Promise<Uint8Array> {
  if (arg === "-") return readBounded(stdin, maxBytes + 1);
  const file = path.resolve(cwd, arg);
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new UsageError(`${arg}: not a regular file`);
    if (info.size > maxBytes * 4 + 64) throw new UsageError(`${arg}: ${info.size} bytes is too large for an attestation document`);
    return new Uint8Array(await readFile(file));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${arg}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

async function readBounded(stream: Readable, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    const room = limit * 4 + 64 - total;
    chunks.push(buf.subarray(0, Math.max(0, room)));
    total += buf.length;
    if (total > limit * 4 + 64) {
      stream.destroy();
      break;
    }
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Documents travel as raw CBOR, base64 or hex. Raw COSE_Sign1 starts with
 * 0x84 or 0xd2, never a printable character, so text is unambiguous.
 */
export function decodeDocumentText(bytes: Uint8Array): { bytes: Uint8Array; format: "cbor" | "base64" | "hex" } {
  const first = bytes[0];
  if (first === undefined || first < 0x20 || first > 0x7e) return { bytes, format: "cbor" };
  let text = Buffer.from(bytes).toString("latin1").replace(/\s+/g, "");
  if (/^0x[0-9a-fA-F]/.test(text)) text = text.slice(2);
  if (/^([0-9a-fA-F]{2})+$/.test(text)) return { bytes: new Uint8Array(Buffer.from(text, "hex")), format: "hex" };
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) && text.length % 4 !== 1) {
    return { bytes: new Uint8Array(Buffer.from(text, text.includes("-") || text.includes("_") ? "base64url" : "base64")), format: "base64" };
  }
  return { bytes, format: "cbor" };
}

export function parseHexOption(value: string, name: string, maxBytes: number): Uint8Array {
  const clean = value.startsWith("0x") ? value.slice(2) : value;
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new UsageError(`--${name} must be hex`);
  const bytes = new Uint8Array(Buffer.from(clean, "hex"));
  if (bytes.length > maxBytes) throw new UsageError(`--${name} is ${bytes.length} bytes, at most ${maxBytes}`);
  return bytes;
}
