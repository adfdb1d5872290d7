import type { Socket } from "node:net";
import { isTransportError } from "../transport/errors.js";
import { formatEndpoint, type Endpoint } from "../transport/endpoint.js";
import type { Transport } from "../transport/transport.js";
import { encodeFrame, readFrame } from "../transport/codec/frame.js";
import { ProvisionError } from "../transport/codec/provision-errors.js";
import { decodeStatus, MAX_STATUS_BYTES, type BootStatus } from "../transport/codec/status.js";

/**
 * The host's half of boot provisioning: dial the enclave's provisioning
 * endpoint until it answers (the enclave takes seconds to boot after
 * `nitro-cli run-enclave`, and until then vsock answers a connect with a
 * reset), send the bundle once, and wait for its one status. Everything is
 * under one deadline. After the bundle is sent there is no retry: the
 * enclave takes exactly one connection and exits on any failure, so a
 * second attempt could only reach an enclave that is going away; the
 * supervisor restarts both.
 */
export interface ProvisionLogFields {
  attempt?: number;
  ms?: number;
  code?: string;
  outcome?: string;
  up?: number;
  endpoint?: string;
  configSha256?: string;
  policySha256?: string;
  tlsSpkiSha256?: string;
  count?: number;
}

export interface ProvisionLogger {
  log(level: "debug" | "info" | "warn" | "error", event: string, fields?: ProvisionLogFields): void;
}

export interface ProvisionClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: ProvisionClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    }),
};

export interface ProvisionRetry {
  /** One connect attempt gives up after this long. */
  dialTimeoutMs: number;
  /** Wait after the first failed dial; doubles per attempt up to backoffMaxMs. */
  backoffMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_PROVISION_RETRY: Readonly<ProvisionRetry> = Object.freeze({ dialTimeoutMs: 2_000, backoffMs: 100, backoffMaxMs: 2_000 });

export interface SendBundleOptions {
  endpoint: Endpoint;
  transport: Transport;
  /** The bundle's frame body (encodeBundle). */
  bundle: Uint8Array;
  /** Dialling, sending and waiting for the status, all within this. */
  deadlineMs: number;
  retry?: ProvisionRetry;
  clock?: ProvisionClock;
  signal?: AbortSignal;
  log?: ProvisionLogger;
  /**
   * The success the bundle asks for: "ready" (boot and serve, the default)
   * or "identity" (a bundle with an identity request). The other success
   * is refused as ERR_PROVISION_MALFORMED: an enclave that answered the
   * wrong question did not do what was asked.
   */
  expect?: "ready" | "identity";
}

export async function sendBundle(options: SendBundleOptions): Promise<BootStatus> {
  const clock = options.clock ?? systemClock;
  const retry = options.retry ?? DEFAULT_PROVISION_RETRY;
  const log = options.log ?? { log() {} };
  if (!Number.isFinite(options.deadlineMs) || options.deadlineMs <= 0) throw new RangeError(`"deadlineMs" expected a positive number, got ${options.deadlineMs}`);
  const started = clock.now();
  const deadline = started + options.deadlineMs;
  const where = formatEndpoint(options.endpoint);
  const aborted = () => new ProvisionError("ERR_PROVISION_ABORTED", "provisioning was stopped");

  let socket: Socket | undefined;
  let backoff = retry.backoffMs;
  let lastCode = "none";
  let attempt = 0;
  // Bounded by the deadline: every pass either connects, throws, or sleeps
  // at least min(backoff, remaining) > 0 of the remaining time.
  while (socket === undefined) {
    if (options.signal?.aborted) throw aborted();
    const remaining = deadline - clock.now();
    if (remaining <= 0) {
      throw new ProvisionError("ERR_PROVISION_DEADLINE", `no enclave accepted ${where} within ${options.deadlineMs} ms (${attempt} attempts, last ${lastCode})`);
    }
    attempt++;
    try {
      socket = await options.transport.connect(options.endpoint, {
        timeoutMs: Math.max(1, Math.min(retry.dialTimeoutMs, remaining)),
        ...(options.signal && { signal: options.signal }),
      });
    } catch (err) {
      if (!isTransportError(err) || err.action !== "retry") throw err;
      if (err.code === "ERR_CONNECT_ABORTED" && options.signal?.aborted) throw aborted();
      lastCode = err.code;
      log.log("debug", "provision.dial_failed", { attempt, code: err.code });
      await clock.sleep(Math.min(backoff, Math.max(0, deadline - clock.now())), options.signal);
      backoff = Math.min(backoff * 2, retry.backoffMaxMs);
    }
  }

  const frame = encodeFrame(options.bundle);
  try {
    socket.on("error", () => {}); // read and write failures are reported by readFrame
    log.log("info", "provision.sent", { attempt, up: frame.length, endpoint: where });
    socket.write(frame);
    const remaining = Math.max(1, deadline - clock.now());
    const body = await readFrame(socket, { maxBytes: MAX_STATUS_BYTES, timeoutMs: remaining, ...(options.signal && { signal: options.signal }) });
    const status = decodeStatus(body);
    const expected = options.expect ?? "ready";
    if (status.status !== "failed" && status.status !== expected)
      throw new ProvisionError("ERR_PROVISION_MALFORMED", `enclave status: "${status.status}" where "${expected}" was asked for`);
    const ms = Math.round(clock.now() - started);
    if (status.status === "ready")
      log.log("info", "provision.ready", { outcome: "ready", ms, configSha256: status.configSha256, policySha256: status.policySha256, tlsSpkiSha256: status.tlsSpkiSha256 });
    else if (status.status === "identity")
      log.log("info", "provision.identity", { outcome: "identity", ms, count: status.receiptKeys.length, tlsSpkiSha256: status.tlsSpkiSha256 });
    else log.log("error", "provision.failed", { outcome: "failed", ms, code: status.code });
    return status;
  } finally {
    socket.end();
    socket.destroy();
    // The frame holds the credentials; the socket may still have queued it
    // (write() does not copy), so it is wiped only once the socket is gone.
    frame.fill(0);
  }
}
