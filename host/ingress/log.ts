import type { Writable } from "node:stream";

/**
 * Content-free structured logs for the ingress relay. The relay holds
 * ciphertext only, but even sizes and timing are all a log line may say:
 * the fields are typed ids, codes, counts and durations, with no free-form
 * string; error messages are never logged, only stable codes (errno names
 * and TransportError codes). Client addresses are not logged either: the
 * enclave, not the untrusted host, decides what to record about clients.
 */
export interface IngressLogFields {
  /** Connection id, a counter local to this relay ("c42"). */
  conn?: string;
  outcome?: string;
  code?: string;
  attempt?: number;
  ms?: number;
  /** Bytes client → enclave. */
  up?: number;
  /** Bytes enclave → client. */
  down?: number;
  active?: number;
  count?: number;
  /** The configured listen or upstream endpoint: operator configuration, not traffic. */
  endpoint?: string;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const EVENT = /^[a-z][a-z0-9_.]{0,63}$/;

export interface IngressLogger {
  log(level: LogLevel, event: string, fields?: IngressLogFields): void;
}

export function createIngressLogger(options: { stream: Writable; level?: LogLevel; now: () => Date }): IngressLogger {
  const min = LEVELS[options.level ?? "info"];
  return {
    log(level, event, fields = {}) {
      if (LEVELS[level] < min) return;
      const line: Record<string, unknown> = { t: options.now().toISOString(), level, event: EVENT.test(event) ? event : "invalid_event_name" };
      for (const [key, value] of Object.entries(fields)) {
        if (typeof value === "number" || typeof value === "boolean") line[key] = value;
        else if (typeof value === "string") line[key] = value.slice(0, 128);
      }
      options.stream.write(`${JSON.stringify(line)}\n`);
    },
  };
}

export const silentLogger: IngressLogger = { log() {} };

/** Keeps lines in memory, for tests. */
export function memoryIngressLogger(): IngressLogger & { lines: Array<{ level: LogLevel; event: string } & IngressLogFields> } {
  const lines: Array<{ level: LogLevel; event: string } & IngressLogFields> = [];
  return {
    lines,
    log(level, event, fields = {}) {
      lines.push({ level, event, ...fields });
    },
  };
}
