import type { AttestationService } from "../attestation-service.js";
import { ClientDirectory } from "../auth.js";
import type { EnclaveIdentity } from "../identity.js";
import { ByteBudget } from "../limits/byte-budget.js";
import { Semaphore, TokenBuckets } from "../limits/token-bucket.js";
import type { Logger } from "../observability/log.js";
import type { GatewayMetrics } from "../observability/metrics.js";
import type { ProviderAdapter } from "../providers/types.js";
import { Router } from "../router.js";
import type { RuntimeConfig } from "../runtime-config.js";
import type { UpstreamDeps } from "../upstream.js";
import { receiptKeyValidity, type IdentityValidity } from "./middleware/identity-validity.js";
import { Responder } from "./responder.js";

/** What the enclave's HTTP service is built from (enclave/boot.ts passes the real ones; tests their own). */
export interface GatewayDeps {
  config: RuntimeConfig;
  /**
   * The trust policy's exact bytes, served at GET /v1/attestation/policy: a
   * client hashes them, compares with the document's `policy_sha256`, and
   * judges what they say before it sends a request.
   */
  trustPolicyBytes: Uint8Array;
  adapters: ReadonlyMap<string, ProviderAdapter>;
  attestation: AttestationService;
  identity: EnclaveIdentity;
  log: Logger;
  metrics: GatewayMetrics;
  upstream: UpstreamDeps;
}

/**
 * The state one gateway app shares across its middleware and surfaces, made
 * once per app: the limits' counters live here, so two apps never share them.
 */
export interface GatewayServices {
  deps: GatewayDeps;
  config: RuntimeConfig;
  now: () => Date;
  router: Router;
  clients: ClientDirectory;
  rates: TokenBuckets;
  concurrency: Semaphore;
  bodyBytes: ByteBudget;
  responder: Responder;
  validity: IdentityValidity;
}

export function gatewayServices(deps: GatewayDeps): GatewayServices {
  const { config, log, metrics } = deps;
  const now = () => deps.upstream.now();
  return {
    deps,
    config,
    now,
    router: new Router(config, deps.adapters),
    clients: new ClientDirectory(config.clients),
    rates: new TokenBuckets(() => now().getTime()),
    concurrency: new Semaphore(config.limits.maxConcurrentRequests),
    bodyBytes: new ByteBudget(config.limits.maxInFlightBodyBytes),
    responder: new Responder({ identity: deps.identity, now, metrics, log }),
    validity: receiptKeyValidity(deps.identity, now),
  };
}
