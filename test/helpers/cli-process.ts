import net from "node:net";
import { PassThrough } from "node:stream";
import type { CliContext } from "../../infra/cli/context.js";

/**
 * For tests that run `egw` commands in-process, side by side (host and
 * enclave): captured output streams, a CLI context, and small waits.
 */

/** A stream that keeps what is written, with the JSON lines parsed and a bounded wait for one. */
export function captureStream() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => (text += d.toString()));
  const lines = () =>
    text
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 30_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const tick = () => {
        const hit = lines().find(pred);
        if (hit) return resolve(hit);
        if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}; got:\n${text}`));
        setTimeout(tick, 20);
      };
      tick();
    });
  return { stream, text: () => text, lines, waitFor };
}

export type Captured = ReturnType<typeof captureStream>;

export function cliContext(stdout: PassThrough, stderr: PassThrough, cwd: string, now: () => Date): CliContext {
  return { stdout, stderr, stdin: new PassThrough(), cwd, now, env: {} };
}

export function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
