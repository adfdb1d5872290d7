import tls from "node:tls";
import { Agent, ProxyAgent, request, type Dispatcher } from "undici";
import { ConfigError, hostPort } from "./runtime-config.js";
import { UpstreamError } from "./providers/types.js";
import type { UpstreamFetch, UpstreamRequest, UpstreamResponse } from "./http/upstream-response.js";
import { peerFromContext, peerRecordingPoolFactory } from "./egress-peer.js";

/**
 * The only way the enclave reaches the network. It refuses any URL whose
 * host:port is not on the attested egress allowlist (defence in depth: the
 * host's CONNECT proxy enforces its own list, but the enclave must not rely
 * on an untrusted party for that), and bounds connection setup.
 * It answers the adapters with an UpstreamResponse (http/upstream-response.ts),
 * built on undici's `request` with a shared keep-alive Agent: undici's WHATWG
 * fetch costs about 0.8 ms more CPU per call on the reference machine, which
 * would be most of the gateway's added latency.
 */
export interface EgressOptions {
  allowlist: readonly string[];
  connectTimeoutMs: number;
  /** Upper bound on response headers arriving, on top of the caller's first-byte timeout. */
  headersTimeoutMs: number;
  /** Max sockets per origin. */
  connections?: number;
  /**
   * The host's egress CONNECT proxy (http://host:port). When set, every
   * upstream connection is a CONNECT tunnel through it, TLS to the provider
   * running end to end inside the tunnel; the proxy sees only the
   * destination host:port and ciphertext.
   */
  proxy?: string;
  /**
   * Extra PEM certificates to trust for upstream TLS, on top of the bundled
   * roots. Development only (the local model's self-signed certificate):
   * enclave/config.ts and boot.ts refuse it unless the attester is the
   * simulated NSM.
   */
  extraCa?: string;
}

/**
 * The roots upstream certificates are checked against: Node's bundled
 * Mozilla store, given explicitly. Left unset, Node's default store would
 * also hold whatever NODE_EXTRA_CA_CERTS names, an environment variable the
 * host could set; `tls.rootCertificates` does not: "An immutable array of
 * strings representing the root certificates (in PEM format) from the
 * bundled Mozilla CA store as supplied by the current Node.js version. The
 * bundled CA store, as supplied by Node.js, is a snapshot of curl's Mozilla
 * CA store that is fixed at release time." (Node 20 docs, tls.rootCertificates;
 * checked in test/enclave/egress-trust.test.ts with a child process).
 */
export function upstreamRoots(extraCa: string | undefined): string[] {
  return extraCa ? [...tls.rootCertificates, extraCa] : [...tls.rootCertificates];
}

/**
 * An extra upstream root only with the simulated NSM. enclave/config.ts
 * refuses --upstream-ca first; this is the same rule where the boot
 * builds the egress path, for callers that skip the settings loader.
 */
export function refuseExtraCaOutsideDev(extraCa: string | undefined, attesterKind: "nsm" | "simulated"): void {
  if (extraCa !== undefined && attesterKind !== "simulated") {
    throw new ConfigError("an extra upstream CA is for development only (the simulated NSM); upstream TLS trusts only the bundled roots");
  }
}

/**
 * TLS options for every upstream connection. rejectUnauthorized is explicit
 * so NODE_TLS_REJECT_UNAUTHORIZED=0 (Node's default follows it) cannot turn
 * verification off. No session resumption: a resumed session skips the
 * certificate check, and the receipt says the leaf was verified on the
 * connection that answered (egress-peer.ts); that costs one full handshake
 * per new keep-alive connection, not per request.
 */
function upstreamTls(options: EgressOptions) {
  return { ca: upstreamRoots(options.extraCa), rejectUnauthorized: true, maxCachedSessions: 0 } as const;
}

export function createEgressFetch(options: EgressOptions): UpstreamFetch {
  const allowed = new Set(options.allowlist.map((e) => e.toLowerCase()));
  const tlsOptions = upstreamTls(options);
  const agentOptions = {
    connect: { timeout: options.connectTimeoutMs, ...tlsOptions },
    headersTimeout: options.headersTimeoutMs,
    // Streams may idle for long; the gateway's own idle timer governs that.
    bodyTimeout: 0,
    connections: options.connections ?? 128,
    // HTTP/1.1 only: one socket per undici Client is what lets egress-peer.ts
    // name the connection a response came on.
    allowH2: false,
    // Pools of Clients that record each connection's verified TLS peer.
    factory: peerRecordingPoolFactory,
  };
  // Through the host's proxy the TLS to the provider still runs inside the
  // enclave (requestTls, over the CONNECT tunnel), so the peer recorded is
  // the provider's leaf, verified here, never the proxy's.
  const agent: Dispatcher = options.proxy
    ? new ProxyAgent({
        ...agentOptions,
        uri: options.proxy,
        proxyTunnel: true,
        proxyTls: { timeout: options.connectTimeoutMs, rejectUnauthorized: true },
        requestTls: { ...tlsOptions },
      })
    : new Agent(agentOptions);
  return async function egressFetch(input: string, init?: UpstreamRequest): Promise<UpstreamResponse> {
    const url = new URL(input);
    if (!allowed.has(hostPort(url).toLowerCase())) {
      // The message names the rule, not the URL (a path can carry data).
      throw new UpstreamError("connect", "egress denied: host is not on the enclave's allowlist");
    }
    const method = (init?.method ?? "GET").toUpperCase();
    const headers = plainHeaders(init?.headers);
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) {
      throw new TypeError("egress fetch sends string or byte bodies only");
    }
    const res = await request(url, {
      method: method as "GET",
      headers,
      ...(body !== undefined && body !== null && { body }),
      ...(init?.signal && { signal: init.signal }),
      dispatcher: agent,
    });
    const responseHeaders = new Headers();
    for (const [key, value] of Object.entries(res.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(key, v);
      else if (value !== undefined) responseHeaders.set(key, value);
    }
    // 1xx/204/304 carry no body.
    const nullBody = res.statusCode === 204 || res.statusCode === 304 || res.statusCode < 200;
    if (nullBody) res.body.destroy();
    // The peer travels in the result, not in a header, so nothing upstream can set it.
    const peer = peerFromContext(res.context);
    return { status: res.statusCode, headers: responseHeaders, body: nullBody ? null : res.body, ...(peer && { peer }) };
  };
}

/**
 * Request headers as undici takes them. The adapters pass plain objects with
 * lower-case names; anything else goes through Headers, which normalises.
 */
function plainHeaders(init: RequestInit["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  if (init && typeof init === "object" && !Array.isArray(init) && !(init instanceof Headers)) {
    let plain = true;
    for (const [key, value] of Object.entries(init)) {
      if (typeof value !== "string" || key !== key.toLowerCase()) {
        plain = false;
        break;
      }
      out[key] = value;
    }
    if (plain) return out;
  }
  new Headers(init).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}
