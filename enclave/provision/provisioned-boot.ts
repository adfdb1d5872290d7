import type { Duplex } from "node:stream";
import type { Logger } from "../observability/log.js";
import { decodeBundle, MAX_BUNDLE_BYTES, type ProvisionBundle } from "../../host/transport/codec/bundle.js";
import { ProvisionError } from "../../host/transport/codec/provision-errors.js";
import { readFrame } from "../../host/transport/codec/frame.js";
import { encodeStatus, failedStatus, type BootStatus, type IdentityStatus, type ReadyStatus } from "../../host/transport/codec/status.js";

/**
 * Boot over the provisioning channel, the enclave half:
 *
 *   listen → accept ONE host connection → read one bounded frame → strict
 *   bundle parse → boot (the caller's function: bootEnclave with the same
 *   options as from files, or identity generation when the bundle asks for
 *   it) → reply ready / identity / failed on the same connection.
 *
 * Fail closed: every failure (no host in time, a slow, oversized or
 * malformed bundle, a boot that throws, e.g. KMS refusing the release) is
 * logged by code, answered with a failed status when the connection still
 * works, and thrown, so the process exits non-zero and never serves. There
 * is no retry on the same enclave: a malformed bundle means the host is
 * misconfigured or hostile, and a fresh enclave (the host restarts it)
 * starts from a known state with nothing half-received in memory.
 *
 * The socket layer is passed in (`listen`): on Nitro it is AF_VSOCK through
 * host/transport, in tests TCP or Unix; enclave/ itself holds no socket FFI.
 */
export type ProvisionListen = (onConnection: (socket: Duplex) => void) => Promise<{ close(): Promise<void> }>;

export interface ProvisionLimits {
  /** From listening until the host connects; nitro-cli run-enclave then the host's start take seconds, not minutes. */
  acceptTimeoutMs: number;
  /** From accept until the whole bundle is in (a slow host fails here). */
  readTimeoutMs: number;
  /** Writing the status reply. */
  replyTimeoutMs: number;
  /** Largest bundle frame body. */
  maxBundleBytes: number;
  /** Further connections answered with ERR_PROVISION_BUSY at once; beyond this many at a time they are just closed. */
  maxExtraConnections: number;
}

export const DEFAULT_PROVISION_LIMITS: Readonly<ProvisionLimits> = Object.freeze({
  acceptTimeoutMs: 300_000,
  readTimeoutMs: 10_000,
  replyTimeoutMs: 5_000,
  maxBundleBytes: MAX_BUNDLE_BYTES,
  maxExtraConnections: 8,
});

/** What the caller's boot produced: a serving gateway (ready) or a generated identity (identity mode, nothing serves). */
export type ProvisionOutcome<T> = { ready: Omit<ReadyStatus, "status">; value: T } | { identity: Omit<IdentityStatus, "status">; value: T };

export interface ProvisionedBootOptions<T> {
  listen: ProvisionListen;
  limits: ProvisionLimits;
  log: Logger;
  /**
   * Boots from the bundle. Its `ready` (or `identity`) is sent to the host;
   * its `value` is returned. If it throws, the host gets a failed status
   * with the error's stable code, and this function rethrows.
   */
  boot(bundle: ProvisionBundle): Promise<ProvisionOutcome<T>>;
  /** Monotonic milliseconds, for durations in the logs. */
  now?: () => number;
}

export async function provisionedBoot<T>(options: ProvisionedBootOptions<T>): Promise<T> {
  const { limits, log } = options;
  const now = options.now ?? (() => performance.now());
  const started = now();
  let first: Duplex | undefined;
  let onFirst: ((socket: Duplex) => void) | undefined;
  let extras = 0;
  let accepting = true;
  const server = await options.listen((socket) => {
    // An error with no listener would crash the process; every failure of
    // these sockets is handled where it is read or written.
    socket.on("error", () => {});
    // Arrived after the wait for a host timed out, while the listener closes.
    if (!accepting) {
      socket.destroy();
      return;
    }
    if (first === undefined) {
      first = socket;
      onFirst?.(socket);
      return;
    }
    extras++;
    log.log("warn", "provision.extra_connection", { count: extras });
    if (extras > limits.maxExtraConnections) {
      socket.destroy();
      return;
    }
    const busy = new ProvisionError("ERR_PROVISION_BUSY", "another host connection is already provisioning this enclave");
    void reply(socket, failedStatus(busy), limits.replyTimeoutMs).finally(() => extras--);
  });
  log.log("info", "provision.listening");

  let socket: Duplex | undefined;
  let never: string[] = [];
  try {
    socket = await accepted(
      () => first,
      (resolve) => (onFirst = resolve),
      limits.acceptTimeoutMs,
    );
    log.log("info", "provision.connected", { ms: Math.round(now() - started) });
    const frame = await readFrame(socket, { maxBytes: limits.maxBundleBytes, timeoutMs: limits.readTimeoutMs });
    let bundle: ProvisionBundle;
    try {
      bundle = decodeBundle(frame);
    } finally {
      // The frame holds the credentials as text; drop this copy now.
      frame.fill(0);
    }
    const creds = bundle.sealedSecrets?.credentials;
    never = creds ? [creds.accessKeyId, creds.secretAccessKey, creds.sessionToken ?? ""] : [];
    log.log("info", "provision.received", { reqBytes: frame.length, count: 1 + (bundle.sealedSecrets ? 1 : 0) + (bundle.identity ? 1 : 0) });
    const booted = await options.boot(bundle);
    const answer: BootStatus = "ready" in booted ? { status: "ready", ...booted.ready } : { status: "identity", ...booted.identity };
    const sent = await reply(socket, answer, limits.replyTimeoutMs);
    // Booted and serving: a host that went away before the reply does not
    // undo that; it learns the state from the attestation endpoint. (An
    // identity that was not delivered is simply lost: the host writes
    // nothing and generation can run again.)
    log.log(sent ? "info" : "warn", sent ? "provision.replied" : "provision.reply_failed", { ms: Math.round(now() - started) });
    return booted.value;
  } catch (err) {
    const status = failedStatus(err, never);
    log.log("error", "provision.failed", { code: status.code, ms: Math.round(now() - started) });
    if (socket) await reply(socket, status, limits.replyTimeoutMs);
    throw err;
  } finally {
    // No host came: whatever connects while the listener closes is cut.
    // Once one did, latecomers still get ERR_PROVISION_BUSY until it is gone.
    if (first === undefined) accepting = false;
    await server.close();
  }
}

/** Resolves with the first connection, or fails with ERR_PROVISION_TIMEOUT. */
function accepted(current: () => Duplex | undefined, register: (resolve: (s: Duplex) => void) => void, timeoutMs: number): Promise<Duplex> {
  const already = current();
  if (already) return Promise.resolve(already);
  return new Promise<Duplex>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ProvisionError("ERR_PROVISION_TIMEOUT", `no host connected within ${timeoutMs} ms`)), timeoutMs);
    register((socket) => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

/**
 * Writes one status frame and half-closes, then waits (bounded) for the
 * host to close its side before releasing the socket: destroying a TCP
 * socket with unread input sends a reset, which can make the peer drop the
 * reply it has not read yet. Resolves true once the frame was flushed.
 * Whatever the host still sends is read and discarded.
 */
function reply(socket: Duplex, status: BootStatus, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      resolve(false);
      return;
    }
    let flushed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.off("close", finish);
      socket.off("error", finish);
      socket.destroy();
      resolve(flushed);
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.once("close", finish);
    socket.once("error", finish);
    socket.on("data", () => {});
    socket.resume();
    socket.once("finish", () => (flushed = true));
    socket.end(encodeStatus(status));
  });
}
