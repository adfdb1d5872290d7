import { randomBytes } from "node:crypto";
import net from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { ATTEST_PROOF_HEADER, attestProofHeader } from "../attest-proof.js";
import type { ChainCache } from "../chain.js";
import { MAX_DOCUMENT_BYTES } from "../cose-sign1.js";
import { RECEIPT_HEADER, sha256 } from "../receipt.js";
import { MAX_TRUST_POLICY_BYTES } from "../trust-policy.js";
import { ClientError, asClientError, withSteps, type ClientStep } from "./errors.js";
import { checkNotExpired } from "../manifest/rollback.js";
import { exchangeHttp1 } from "./http1-exchange.js";
import { checkPeer, spkiSha256, type AttestedPeer } from "./peer.js";
import type { ResolvedPolicy } from "./policy.js";
import { decodeReceiptText, verifyReceiptDigests } from "./receipt-check.js";
import { checkServedTrustPolicy, TRUST_POLICY_PATH } from "./trust-check.js";

/**
 * Opens one TLS connection to the gateway and attests it before anyone else
 * may use it:
 *
 *  0. A policy whose manifest has expired (`policy.expires` at or before
 *     now()) dials nothing: ERR_MANIFEST_EXPIRED. checkPeer checks it again
 *     at the time the document is judged.
 *  1. TLS 1.3 handshake. The certificate is self-signed and no CA vouches
 *     for it, so chain validation is off here; the handshake still proves
 *     the peer holds the private key of the certificate it presented. TLS 1.3
 *     has no renegotiation, so that certificate is the only one this
 *     connection will ever carry (its key is "pinned" for the connection's
 *     life). No session is resumed, so the certificate is always presented.
 *  2. On that same socket, `GET /v1/attestation?nonce=<32 fresh random
 *     bytes>` (HTTP/1.1, keep-alive).
 *  3. checkPeer: the document against the policy, and the SHA-256 of the
 *     certificate's SubjectPublicKeyInfo against the attested one.
 *  4. When the document attests a trust policy (binding v3): on the same
 *     socket, `GET /v1/attestation/policy`, at most 256 KiB within the
 *     attestation timeout; its bytes must hash to the attested
 *     policy_sha256, its receipt must verify under the attested key, and it
 *     must satisfy the policy's trust section (trust-check.ts). It is read
 *     once per attested connection, never reused for another.
 *
 * Only then is the socket returned, with nothing buffered, to carry requests.
 * Any failure destroys the socket and throws a ClientError: a request body
 * is never written to a connection that was not attested.
 */
export const NONCE_BYTES = 32;
export const ATTESTATION_PATH = "/v1/attestation";

export interface ConnectOptions {
  /** https://host[:port] of the gateway. */
  origin: string;
  policy: ResolvedPolicy;
  /** The clock; every check runs at now(). */
  now: () => Date;
  cache?: ChainCache;
  /** TCP + TLS handshake limit. Default 10 s. */
  connectTimeoutMs?: number;
  /** Attestation response limit. Default 10 s. */
  attestationTimeoutMs?: number;
  /**
   * The client token of the request this connection is opened for, if any.
   * Never sent: only its x-egw-attest-proof for the nonce is, so the request
   * may use the gateway's fresh-document share kept for configured clients
   * (attestation/attest-proof.ts, docs/PROTOCOL.md §2).
   */
  proofToken?: string;
}

export interface AttestedConnection {
  socket: TLSSocket;
  peer: AttestedPeer;
}

function connectError(message: string, cause?: unknown, steps?: ClientStep[]): ClientError {
  return new ClientError("ERR_CONNECT", message, { ...(cause !== undefined && { cause }), ...(steps && { steps }) });
}

export function parseGatewayOrigin(value: string | URL): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new ClientError("ERR_ORIGIN", `"${String(value).slice(0, 200)}" is not a URL`, { cause });
  }
  if (url.protocol !== "https:") throw new ClientError("ERR_ORIGIN", `the gateway URL must be https:, not ${url.protocol}`);
  if (url.username || url.password) throw new ClientError("ERR_ORIGIN", "the gateway URL must not carry credentials");
  return url;
}

function tlsConnect(url: URL, timeoutMs: number): Promise<TLSSocket> {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || 443);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      ...(net.isIP(host) === 0 && { servername: host }),
      // Trust comes from the attestation, checked before the socket is used.
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["http/1.1"],
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(connectError(`TLS connection to ${url.host} not established within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(connectError(`cannot connect to ${url.host} (${(err as NodeJS.ErrnoException).code ?? err.message})`, err));
    };
    socket.once("error", onError);
  });
}

/** Opens and attests one connection. See the module comment. */
export async function openAttestedConnection(options: ConnectOptions): Promise<AttestedConnection> {
  const url = parseGatewayOrigin(options.origin);
  if (options.policy.expires !== undefined) {
    try {
      checkNotExpired(options.policy.expires, options.now(), "the policy's manifest");
    } catch (err) {
      throw err instanceof ClientError ? withSteps(err, [], "expiry") : err;
    }
  }
  const socket = await tlsConnect(url, options.connectTimeoutMs ?? 10_000);
  // Until the socket is handed on, an error (e.g. a reset while the document
  // is being verified) must not go unhandled; it fails the attestation.
  let socketError: Error | undefined;
  const guard = (err: Error) => {
    socketError ??= err;
  };
  socket.on("error", guard);
  const steps: ClientStep[] = [];
  try {
    const cert = socket.getPeerX509Certificate();
    if (!cert) throw connectError("the gateway presented no certificate");
    const spkiDer = new Uint8Array(cert.publicKey.export({ type: "spki", format: "der" }));
    const peerSpkiSha256 = spkiSha256(spkiDer);
    steps.push({
      step: "tls",
      status: "passed",
      detail: `${socket.getProtocol() ?? "TLS"} to ${url.host}, certificate "${cert.subject.replace(/\n/g, ", ")}", SPKI sha256 ${Buffer.from(peerSpkiSha256).toString("hex")} (trusted only through the attestation)`,
    });

    const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
    const request =
      `GET ${ATTESTATION_PATH}?nonce=${Buffer.from(nonce).toString("hex")} HTTP/1.1\r\n` +
      `Host: ${url.host}\r\nAccept: application/cbor\r\nUser-Agent: enclave-gateway-verifying-client\r\n` +
      (options.proofToken !== undefined ? `${ATTEST_PROOF_HEADER}: ${attestProofHeader(options.proofToken, nonce)}\r\n` : "") +
      "\r\n";
    const response = await exchangeHttp1(socket, request, {
      maxHeaderBytes: 16 * 1024,
      maxBodyBytes: MAX_DOCUMENT_BYTES,
      timeoutMs: options.attestationTimeoutMs ?? 10_000,
    });
    if (response.status !== 200) {
      const retry = response.headers.get("retry-after")?.[0];
      throw new ClientError("ERR_ATTESTATION_UNAVAILABLE", `the attestation endpoint answered ${response.status}${retry ? ` (retry after ${retry} s)` : ""}`);
    }
    const type = response.headers.get("content-type")?.[0] ?? "";
    if (!/^application\/cbor\s*(;|$)/i.test(type)) {
      throw new ClientError("ERR_ATTESTATION_PROTOCOL", `attestation response has content-type "${type.slice(0, 64)}", expected application/cbor`);
    }
    const receiptHeader = response.headers.get(RECEIPT_HEADER);
    const peer = await checkPeer({
      origin: url.origin,
      document: response.body,
      nonce,
      peerSpkiSha256,
      receiptHeader: receiptHeader?.length === 1 ? receiptHeader[0] : undefined,
      policy: options.policy,
      currentDate: options.now(),
      ...(options.cache && { cache: options.cache }),
      steps,
    });
    if (peer.policySha256 !== null) await readTrustPolicy(socket, url, peer, options);
    if (socketError || socket.destroyed || !socket.writable) throw connectError("the connection failed during attestation", socketError);
    socket.off("error", guard);
    return { socket, peer };
  } catch (err) {
    socket.destroy();
    const wrapped = asClientError(err);
    throw wrapped instanceof ClientError ? withSteps(wrapped, steps, steps.length === 0 ? "tls" : "attestation") : wrapped;
  }
}

/**
 * Step 4: reads the trust policy over the attested socket and checks it;
 * sets `peer.trust` and appends to `peer.steps`. Throws a ClientError whose
 * steps end with the failed one.
 */
async function readTrustPolicy(socket: TLSSocket, url: URL, peer: AttestedPeer, options: ConnectOptions): Promise<void> {
  const steps = peer.steps;
  const failed = (err: unknown, step: string): unknown => {
    const wrapped = asClientError(err);
    if (!(wrapped instanceof ClientError)) return wrapped;
    const own = wrapped.steps.length > 0 ? wrapped.steps : [{ step, status: "failed" as const, detail: `${wrapped.code}: ${wrapped.message}` }];
    return new ClientError(wrapped.code, wrapped.message, { cause: wrapped.cause ?? wrapped, action: wrapped.action, steps: [...steps, ...own] });
  };
  let response;
  try {
    const request = `GET ${TRUST_POLICY_PATH} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: application/json\r\nUser-Agent: enclave-gateway-verifying-client\r\n\r\n`;
    response = await exchangeHttp1(socket, request, {
      maxHeaderBytes: 16 * 1024,
      maxBodyBytes: MAX_TRUST_POLICY_BYTES,
      timeoutMs: options.attestationTimeoutMs ?? 10_000,
    });
    if (response.status !== 200) throw new ClientError("ERR_ATTESTATION_UNAVAILABLE", `the trust-policy endpoint answered ${response.status}`);
  } catch (err) {
    throw failed(err, "trust-policy");
  }
  const body = response.body;
  // First the hash: only the document says which policy the enclave runs.
  let checked;
  try {
    checked = checkServedTrustPolicy({ bytes: body, attestedSha256: peer.policySha256!, dev: !peer.result.root.production, trust: options.policy.trust });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw failed(err, code === "ERR_TRUST_NOT_ALLOWED" ? "trust" : "trust-policy");
  }
  // Then the receipt: the attested key served these bytes on this connection.
  try {
    const receiptHeader = response.headers.get(RECEIPT_HEADER);
    if (receiptHeader?.length !== 1) throw new ClientError("ERR_RECEIPT_MISSING", "the trust-policy response carries no receipt");
    const claims = verifyReceiptDigests(decodeReceiptText(receiptHeader[0]!), {
      publicKey: peer.receiptKey,
      requestSha256: sha256(new Uint8Array()),
      responseSha256: sha256(body),
    });
    if (claims.status !== 200 || claims.method !== "GET" || claims.path !== TRUST_POLICY_PATH) {
      throw new ClientError("ERR_RECEIPT_CLAIMS_MISMATCH", "the trust-policy response's receipt is for another request");
    }
  } catch (err) {
    throw failed(err, "trust-policy");
  }
  steps.push(...checked.steps);
  peer.trust = checked.attested;
}
