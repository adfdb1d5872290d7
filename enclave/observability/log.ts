import type { Writable } from "node:stream";

/**
 * Structured JSON logs that cannot carry content by construction: the only
 * fields a line may have are the ones typed below — ids, codes, names from
 * the configuration, counts, sizes and durations. There is no free-form
 * string field, so a prompt, a completion, a key or a token has no way in.
 * Error messages are never logged, only their stable codes.
 */
export interface LogFields {
  reqId?: string;
  surface?: string;
  /** A configured model name, or "(unrouted)" / "(prefix)": never the raw client string. */
  model?: string;
  provider?: string;
  status?: number;
  code?: string;
  stream?: boolean;
  attempt?: number;
  ms?: number;
  reqBytes?: number;
  resBytes?: number;
  count?: number;
  port?: number;
  attester?: "nsm" | "simulated";
  configSha256?: string;
  policySha256?: string;
  tlsSpkiSha256?: string;
  /** ISO time a key or credential stops being valid. */
  notAfter?: string;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

const EVENT = /^[a-z][a-z0-9_.]{0,63}$/;

export function createLogger(options: { stream: Writable; level?: LogLevel; now: () => Date }): Logger {
  const min = LEVELS[options.level ?? "info"];
  return {
    log(level, event, fields = {}) {
      if (LEVELS[level] < min) return;
      // Event names are code constants; refuse anything that looks like data.
      const name = EVENT.test(event) ? event : "invalid_event_name";
      const line: Record<string, unknown> = { t: options.now().toISOString(), level, event: name };
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        if (typeof value === "number" || typeof value === "boolean") line[key] = value;
        else if (typeof value === "string") line[key] = value.slice(0, 128);
      }
      options.stream.write(`${JSON.stringify(line)}\n`);
    },
  };
}

/** A logger that keeps lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log(level, event, fields = {}) {
      lines.push(JSON.stringify({ level, event, ...fields }));
    },
  };
}
