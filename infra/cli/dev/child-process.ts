import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DevError } from "./dev-error.js";

/**
 * The stack's processes: each part is its own `egw` process, started with
 * the same command an operator runs, and ready when it prints its one JSON
 * ready line on stdout. Their stderr (content-free JSON logs, and the one
 * line `egw` prints when a command fails) goes to a log file per child; the
 * last lines are also kept in memory, bounded, so a child that dies before
 * it is ready is reported on the terminal with its own error (e.g.
 * `egw host: ERR_LISTEN_FAILED: listen tcp://127.0.0.1:8443 failed
 * (EADDRINUSE)`), not as a pointer to a log file.
 */
const EGW = fileURLToPath(new URL("../egw.js", import.meta.url));
export const READY_TIMEOUT_MS = 30_000;
/** Lines of stderr kept per child for the terminal, and the bytes kept of each. */
const TAIL_LINES = 32;
const TAIL_LINE_BYTES = 2048;
/** Bytes of stdout read while waiting for the ready line. */
const MAX_READY_LINE_BYTES = 64 * 1024;

export interface Child {
  name: string;
  process: ChildProcess;
  ready: Record<string, unknown>;
  /** The last stderr lines (bounded), for a report when it exits later. */
  tail(): string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Keeps the last complete lines of a stream, each cut to TAIL_LINE_BYTES. */
function lineTail(): { push(chunk: Buffer): void; lines(): string[] } {
  const lines: string[] = [];
  let partial = "";
  return {
    push(chunk) {
      partial += chunk.toString("utf8");
      let nl = partial.indexOf("\n");
      while (nl >= 0) {
        lines.push(partial.slice(0, Math.min(nl, TAIL_LINE_BYTES)));
        if (lines.length > TAIL_LINES) lines.shift();
        partial = partial.slice(nl + 1);
        nl = partial.indexOf("\n");
      }
      if (partial.length > TAIL_LINE_BYTES) partial = partial.slice(0, TAIL_LINE_BYTES);
    },
    lines: () => (partial ? [...lines, partial] : [...lines]),
  };
}

/**
 * The child's own account of why it stopped: the lines `egw` prints for a
 * failed command (not JSON), else the last error-level log event with its
 * code. Undefined when it said nothing.
 */
export function childFailure(lines: readonly string[]): string | undefined {
  const plain = lines.map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("{"));
  if (plain.length > 0) return plain.slice(-3).join(" / ");
  for (let i = lines.length - 1; i >= 0; i--) {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(lines[i]!) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (event.level !== "error" && event.level !== "fatal") continue;
    const parts = [event.event, event.code, event.message ?? event.error].filter((p) => typeof p === "string" && p !== "");
    if (parts.length > 0) return parts.join(": ");
  }
  return undefined;
}

export function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string): Promise<Child> {
  const logFile = path.join(logDir, `${name}.log`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EGW, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
    const tail = lineTail();
    child.stderr!.on("data", (d: Buffer) => tail.push(d));
    void fs.open(logFile, "a", 0o600).then(
      (handle) => child.stderr!.pipe(handle.createWriteStream()),
      () => {
        // No log file: the tail still reaches the terminal on failure.
      },
    );
    const fail = (what: string) => {
      const said = childFailure(tail.lines());
      reject(new DevError("ERR_DEV_BOOT", `${name} ${what}${said ? `: ${said}` : ""} (log: ${logFile})`));
    };
    let buffer = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(`did not become ready within ${READY_TIMEOUT_MS / 1000} s`);
    }, READY_TIMEOUT_MS);
    const onData = (data: Buffer) => {
      buffer += data.toString("utf8");
      const nl = buffer.indexOf("\n");
      if (nl < 0) {
        if (buffer.length > MAX_READY_LINE_BYTES) {
          clearTimeout(timer);
          child.kill("SIGKILL");
          fail("printed no ready line");
        }
        return;
      }
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      // Later stdout is not read, but must be drained so the child never blocks on a full pipe.
      child.stdout!.resume();
      try {
        resolve({ name, process: child, ready: JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>, tail: tail.lines });
      } catch {
        child.kill("SIGKILL");
        fail("printed an unreadable ready line");
      }
    };
    child.stdout!.on("data", onData);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new DevError("ERR_DEV_BOOT", `${name} could not be started: ${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`.trim(), { cause: err }));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      // stderr may still hold the last line: read it before reporting.
      child.stderr!.once("close", () => fail(`exited with ${signal ? `signal ${signal}` : `code ${code}`} before it was ready`));
      if (child.stderr!.closed) fail(`exited with ${signal ? `signal ${signal}` : `code ${code}`} before it was ready`);
    });
  });
}

export async function stopAll(children: readonly Child[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.process.exitCode !== null || c.process.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.process.kill("SIGKILL"), 10_000);
          c.process.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          c.process.kill("SIGTERM");
        }),
    ),
  );
}
