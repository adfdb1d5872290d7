/**
 * The egress proxy's log interface. Fields are typed so that no request text
 * has a way in: connection ids, status codes, rule and outcome labels, the
 * allowlist entry that matched (configuration, not the request), byte counts
 * and durations. A denied request's target is never logged: the name the
 * enclave asked for could itself carry data (think DNS exfiltration).
 * The shape `log(level, event, fields)` matches the enclave's structured
 * logger, so one JSON-lines implementation serves both processes.
 */
export interface EgressLogFields {
  conn?: number;
  status?: number;
  rule?: string;
  code?: string;
  outcome?: string;
  reason?: string;
  /** The allowlist entry that matched, as configured. */
  entry?: string;
  addressClass?: string;
  bytesUp?: number;
  bytesDown?: number;
  ms?: number;
  port?: number;
  count?: number;
}

export type EgressLogLevel = "debug" | "info" | "warn" | "error";

export interface EgressLogger {
  log(level: EgressLogLevel, event: string, fields?: EgressLogFields): void;
}

export const silentLogger: EgressLogger = { log() {} };
