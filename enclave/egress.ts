import { Agent, fetch as undiciFetch } from "undici";
import { hostPort } from "./runtime-config.js";
import { UpstreamError } from "./providers/types.js";

/**
 * The only way the enclave reaches the network. It refuses any URL whose
 * host:port is not on the attested egress allowlist (defence in depth: the
 * host's CONNECT proxy enforces its own list, but the enclave must not rely
 * on an untrusted party for that), and bounds connection setup.
 * Uses undici's fetch and Agent together so the connect timeout and pool
 * limits apply; Node's global fetch cannot take an Agent from another undici.
 */
export interface EgressOptions {
  allowlist: readonly string[];
  connectTimeoutMs: number;
  /** Upper bound on response headers arriving, on top of the caller's first-byte timeout. */
  headersTimeoutMs: number;
  /** Max sockets per origin. */
  connections?: number;
}

export function createEgressFetch(options: EgressOptions): typeof fetch {
  const allowed = new Set(options.allowlist.map((e) => e.toLowerCase()));
  const agent = new Agent({
    connect: { timeout: options.connectTimeoutMs },
    headersTimeout: options.headersTimeoutMs,
    // Streams may idle for long; the gateway's own idle timer governs that.
    bodyTimeout: 0,
    connections: options.connections ?? 128,
  });
  const egressFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    if (!allowed.has(hostPort(url).toLowerCase())) {
      // The message names the rule, not the URL (a path can carry data).
      throw new UpstreamError("connect", "egress denied: host is not on the enclave's allowlist");
    }
    return (await undiciFetch(url, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: agent })) as unknown as Response;
  };
  return egressFetch as typeof fetch;
}
