import { readFile } from "node:fs/promises";
import { parseEgressRule, type EgressRule } from "../../host/egress/index.js";
import type { IngressLogger } from "../../host/ingress/index.js";
import { isProvisionError, sendBundle, type BootStatus, type CredentialsFetcher, type ProvisionLogger } from "../../host/provision/index.js";
import { isTransportError, parseEndpoint, type Endpoint, type Transport } from "../../host/transport/index.js";
import { derivedEgress, hostPort, kmsKeyRegion, parseTrustPolicy, TrustPolicyError, type TrustPolicy } from "../../attestation/trust-policy.js";
import { UsageError } from "./context.js";

/**
 * What both modes of `egw host` share: serving (host.ts) and making the
 * shared identity (host-identity.ts). Host code only: nothing here loads
 * enclave code (the trust-policy codec is the client's too, and handles no
 * plaintext).
 */

/** Whole provisioning (dial retries, the enclave's boot, KMS calls) within this by default. */
/** What tests replace in `egw host`, in both modes (host.ts, host-identity.ts). */
export interface HostCommandDeps {
  /** Resolves when the host should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
  /** AWS credentials handed to the enclave for KMS; default: the SDK's default chain (instance role via IMDSv2). */
  fetchCredentials?: CredentialsFetcher;
  /** The transport the provisioning connection uses; default: the real one. */
  provisionTransport?: Transport;
}

export const DEFAULT_PROVISION_TIMEOUT_SECONDS = 300;

export function endpoint(value: string, flag: string): Endpoint {
  try {
    return parseEndpoint(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
}

export function provisionDeadlineMs(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PROVISION_TIMEOUT_SECONDS * 1000;
  if (!/^[1-9]\d{0,4}$/.test(value) || Number(value) > 3600) throw new UsageError("--provision-timeout must be whole seconds, 1..3600");
  return Number(value) * 1000;
}

export function checkKmsEndpoint(value: string | undefined, sealedSecrets: string | undefined): void {
  if (value === undefined) return;
  if (sealedSecrets === undefined) throw new UsageError("--kms-endpoint needs --sealed-secrets: KMS is only used to open them");
  if (!/^https?:\/\/[^\s/]{1,253}\/?$/.test(value)) throw new UsageError("--kms-endpoint must be a URL without a path");
}

export async function readInput(file: string, flag: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (err) {
    throw new UsageError(`--${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** A file the host read once: the bytes it derives from are the bytes it sends (and the enclave attests). */
export interface HostInputFile {
  file: string;
  bytes: Uint8Array;
}

/**
 * The egress allowlist, derived from the trust policy exactly as the
 * enclave derives its own (attestation/trust-policy.ts derivedEgress:
 * provider origins plus the KMS endpoint of each key ARN's region). The
 * host is untrusted, so reading the policy for its own proxy only decides
 * availability: whatever this host lets through, the enclave dials nothing
 * outside its own derived list.
 *
 * Parsed under development rules on purpose: the host cannot tell a
 * simulated enclave from a real one, and the enclave applies the real
 * rules (https only, first-party origins fixed) to these same bytes at boot.
 */
export function trustPolicyOnHost(input: HostInputFile): TrustPolicy {
  try {
    return parseTrustPolicy(input.bytes, { dev: true });
  } catch (err) {
    if (err instanceof TrustPolicyError) throw new UsageError(`--trust-policy ${input.file}: ${err.message}`);
    throw err;
  }
}

/**
 * The PROXY protocol switch from the operations file, so relay and enclave
 * agree. Only this field is read: the enclave parses the whole document
 * strictly (enclave/operations.ts), and the host loads no enclave code.
 */
export function proxyProtocolFromOperations(input: HostInputFile): boolean {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input.bytes));
  } catch {
    throw new UsageError(`--operations ${input.file}: not a UTF-8 JSON operations file`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new UsageError(`--operations ${input.file}: must be a JSON object`);
  const value = (raw as { proxyProtocol?: unknown }).proxyProtocol;
  if (value !== undefined && typeof value !== "boolean") throw new UsageError(`--operations ${input.file}: proxyProtocol must be a boolean`);
  return value === true;
}

/** The region the enclave's KMS calls go to (credentials are asked for it): the trust policy's key ARN, never the sealed file's own claim. */
export function kmsRegion(policy: TrustPolicy, use: "secrets" | "identity"): string | undefined {
  const arn =
    use === "identity"
      ? policy.identity.mode === "sealed"
        ? policy.identity.kmsKeyArn
        : undefined
      : (policy.secrets?.kmsKeyArn ?? (policy.identity.mode === "sealed" ? policy.identity.kmsKeyArn : undefined));
  return arn === undefined ? undefined : kmsKeyRegion(arn);
}

/** host:port of a --kms-endpoint URL (checked by checkKmsEndpoint), as an egress rule names it. */
export function kmsEndpointRule(value: string): string {
  return hostPort(new URL(value));
}

/** Egress rules: derived from the trust policy, then --allow and --allow-private (which wins for the same pair). */
export function egressRules(policy: TrustPolicy | undefined, allow: readonly string[], allowPrivate: readonly string[]): (EgressRule | string)[] {
  const rules: (EgressRule | string)[] = [];
  if (policy !== undefined) rules.push(...derivedEgress(policy));
  for (const rule of allow) rules.push(rule);
  for (const rule of allowPrivate) {
    let parsed: EgressRule;
    try {
      parsed = { ...parseEgressRule(rule), allowPrivate: true };
    } catch (err) {
      throw new UsageError(`--allow-private ${rule}: ${(err as Error).message}`);
    }
    // The same pair may come from the trust policy too; the explicit flag wins.
    const same = (r: EgressRule | string) => {
      const e = typeof r === "string" ? parseEgressRule(r) : r;
      return e.host.toLowerCase() === parsed.host.toLowerCase() && e.port === parsed.port;
    };
    for (let i = rules.length - 1; i >= 0; i--) if (same(rules[i]!)) rules.splice(i, 1);
    rules.push(parsed);
  }
  return rules;
}

/** Resolves on SIGINT or SIGTERM; `dispose` removes the handlers once they are no longer needed. */
export function signalled(): { stopped: Promise<void>; dispose(): void } {
  let dispose = () => {};
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      dispose();
      resolve();
    };
    dispose = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return { stopped, dispose: () => dispose() };
}

/**
 * Sends the bundle and returns the enclave's status; a failure on this side
 * (no enclave before the deadline, no or a malformed answer, a stop) comes
 * back as a failed status with the host's own code.
 */
export async function provisionEnclave(options: {
  endpoint: Endpoint;
  bundle: Uint8Array;
  deadlineMs: number;
  stopped: Promise<void>;
  transport: Transport;
  logger: IngressLogger;
  expect?: "ready" | "identity";
}): Promise<BootStatus> {
  const abort = new AbortController();
  void options.stopped.then(() => abort.abort());
  const log: ProvisionLogger = { log: (level, event, fields) => options.logger.log(level, event, fields as Record<string, never>) };
  try {
    return await sendBundle({
      endpoint: options.endpoint,
      transport: options.transport,
      bundle: options.bundle,
      deadlineMs: options.deadlineMs,
      signal: abort.signal,
      log,
      ...(options.expect && { expect: options.expect }),
    });
  } catch (err) {
    if (!isProvisionError(err) && !isTransportError(err)) throw err;
    log.log("error", "provision.failed", { outcome: "failed", code: err.code });
    return { status: "failed", code: err.code, message: err.message.slice(0, 512) };
  }
}
