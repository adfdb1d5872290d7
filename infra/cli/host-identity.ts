import { constants } from "node:fs";
import { access } from "node:fs/promises";
import path from "node:path";
import { Registry } from "prom-client";
import { captureTransport } from "../../host/capture/capture-transport.js";
import { createEgressProxy, DEFAULT_EGRESS_LIMITS, type EgressLogger } from "../../host/egress/index.js";
import { createIngressLogger } from "../../host/ingress/index.js";
import { defaultChainCredentials, encodeBundle, isProvisionError, MAX_IDENTITY_DAYS, type AwsCredentials } from "../../host/provision/index.js";
import { formatEndpoint, nodeTransport, type Transport } from "../../host/transport/index.js";
import { EXIT, print, UsageError, type CliContext } from "./context.js";
import {
  checkKmsEndpoint,
  egressRules,
  endpoint,
  kmsEndpointRule,
  kmsRegion,
  provisionDeadlineMs,
  provisionEnclave,
  readInput,
  signalled,
  trustPolicyOnHost,
  type HostCommandDeps,
} from "./host-common.js";
import { readSealedFile, sealedFileWithIdentity, writeFileAtomic } from "./identity-out.js";
import { isEgwError } from "../../attestation/egw-error.js";

/**
 * `egw host --generate-identity`: have a freshly started measured enclave
 * make the shared identity (docs/IDENTITY.md), and write it into a copy of
 * the sealed-secrets file. One-shot, no serving:
 *
 *   check flags and files → egress proxy up (the enclave reaches KMS only
 *   through it) → bundle with the identity request → the enclave's identity
 *   status → the new file, checked with the enclave's parser, written to a
 *   temporary file and renamed → one JSON line on stdout → exit 0.
 *
 * No ingress relay and no metrics run: no client may reach an enclave that
 * is only making keys, and the process ends when it is done. Nothing is
 * written unless the enclave answered with an identity.
 */
export interface HostIdentityFlags {
  provision?: string | undefined;
  "trust-policy"?: string | undefined;
  operations?: string | undefined;
  "sealed-secrets"?: string | undefined;
  "kms-endpoint"?: string | undefined;
  "provision-timeout"?: string | undefined;
  "egress-listen"?: string | undefined;
  allow?: string[] | undefined;
  "allow-private"?: string[] | undefined;
  "capture-dir"?: string | undefined;
  enclave?: string | undefined;
  listen?: string | undefined;
  "proxy-protocol"?: boolean | undefined;
  "metrics-listen"?: string | undefined;
  "validity-days"?: string | undefined;
  "overlap-days"?: string | undefined;
  "rotate-tls"?: boolean | undefined;
  "identity-out"?: string | undefined;
}

/** The egress proxy only carries the enclave's few KMS calls; once the status is in, an idle tunnel is not worth waiting for. */
const EGRESS_DRAIN_MS = 1_000;

function days(value: string, flag: string, min: number): number {
  if (!/^(?:0|[1-9]\d{0,3})$/.test(value) || Number(value) < min || Number(value) > MAX_IDENTITY_DAYS)
    throw new UsageError(`--${flag} must be whole days, ${min}..${MAX_IDENTITY_DAYS}`);
  return Number(value);
}

function required(values: HostIdentityFlags, flag: keyof HostIdentityFlags, why: string): string {
  const value = values[flag];
  if (typeof value !== "string") throw new UsageError(`--generate-identity needs --${flag} ${why}`);
  return value;
}

export async function hostIdentityCommand(values: HostIdentityFlags, ctx: CliContext, deps: HostCommandDeps): Promise<number> {
  for (const flag of ["enclave", "listen", "proxy-protocol", "metrics-listen"] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is not used with --generate-identity: no relay or metrics run while the enclave makes an identity`);
  }
  const provision = endpoint(required(values, "provision", "<endpoint> (the enclave's provisioning listener)"), "provision");
  const trustFile = path.resolve(ctx.cwd, required(values, "trust-policy", "<trust-policy.json> (its identity.kmsKeyArn seals the identity)"));
  const opsFile = path.resolve(ctx.cwd, required(values, "operations", "<operations.json> (the enclave boots with it)"));
  const sealedFile = path.resolve(ctx.cwd, required(values, "sealed-secrets", "<file> (the identity is written into a copy of it)"));
  const out = path.resolve(ctx.cwd, required(values, "identity-out", "<file> (where the new sealed-secrets file goes)"));
  const egressListen = endpoint(required(values, "egress-listen", "<endpoint> (the enclave reaches KMS through the egress proxy)"), "egress-listen");
  const validityDays = days(required(values, "validity-days", "<days> (how long the new receipt key is valid)"), "validity-days", 1);
  const overlapDays = values["overlap-days"] !== undefined ? days(values["overlap-days"], "overlap-days", 0) : undefined;
  checkKmsEndpoint(values["kms-endpoint"], values["sealed-secrets"]);
  const deadlineMs = provisionDeadlineMs(values["provision-timeout"]);
  try {
    await access(path.dirname(out), constants.W_OK);
  } catch {
    throw new UsageError(`--identity-out ${out}: its directory does not exist or is not writable`);
  }

  const trust = { file: trustFile, bytes: await readInput(trustFile, "trust-policy") };
  const operationsBytes = await readInput(opsFile, "operations");
  const policy = trustPolicyOnHost(trust);
  // The enclave refuses too (ERR_IDENTITY_POLICY), and trusts no host to
  // have checked: a shared identity exists only under the policy's key.
  if (policy.identity.mode !== "sealed") {
    throw new UsageError(`--trust-policy ${trustFile}: its identity is ephemeral; a shared identity needs "identity": { "mode": "sealed", "kmsKeyArn": … } in the trust policy`);
  }
  const sealedBytes = await readInput(sealedFile, "sealed-secrets");
  let sealed;
  try {
    sealed = readSealedFile(sealedBytes);
  } catch (err) {
    if (!isEgwError(err)) throw err;
    print(ctx.stderr, `egw host: ${err.code}: --sealed-secrets ${sealedFile}: ${err.message}`);
    return EXIT.rejected;
  }
  // Decided here so the operator hears at once, and again in the enclave
  // (identity-mode.ts), which trusts no host: a rotation must name its
  // overlap (0 is the emergency cut-off, so there is no safe default);
  // a first identity has nothing to overlap or rotate.
  const rotation = sealed.identity !== undefined;
  if (rotation && overlapDays === undefined) {
    throw new UsageError(`--overlap-days is required: ${sealedFile} already has an identity, so this rotates it (0 cuts the old receipt key off at once)`);
  }
  if (!rotation && overlapDays !== undefined) throw new UsageError(`--overlap-days: ${sealedFile} has no identity to rotate`);
  if (!rotation && values["rotate-tls"] === true) throw new UsageError(`--rotate-tls: ${sealedFile} has no identity to rotate (a first identity always has a new TLS key)`);

  // Derived from the trust policy (its identity key's KMS endpoint among them), plus a checked --kms-endpoint.
  const allow = [...(values.allow ?? []), ...(values["kms-endpoint"] !== undefined ? [kmsEndpointRule(values["kms-endpoint"])] : [])];
  const rules = egressRules(policy, allow, values["allow-private"] ?? []);
  let bundle: Uint8Array;
  try {
    const awsCredentials: AwsCredentials = await (deps.fetchCredentials ?? defaultChainCredentials)(kmsRegion(policy, "identity")!);
    bundle = encodeBundle({
      trustPolicy: trust.bytes,
      operations: operationsBytes,
      sealedSecrets: sealedBytes,
      awsCredentials,
      ...(values["kms-endpoint"] !== undefined && { kmsEndpoint: values["kms-endpoint"] }),
      identity: { generate: { validityDays, ...(overlapDays !== undefined && { overlapDays }), ...(values["rotate-tls"] === true && { rotateTls: true }) } },
    });
  } catch (err) {
    if (!isProvisionError(err)) throw err;
    print(ctx.stderr, `egw host: ${err.code}: ${err.message}`);
    return EXIT.rejected;
  }

  const logger = createIngressLogger({ stream: ctx.stderr, now: ctx.now });
  let egressTransport: Transport = nodeTransport;
  if (values["capture-dir"] !== undefined) {
    const dir = path.resolve(ctx.cwd, values["capture-dir"]);
    egressTransport = captureTransport(nodeTransport, path.join(dir, "host-egress.bin"));
    logger.log("warn", "host.capture_on", { endpoint: dir });
  }
  const egressLogger: EgressLogger = { log: (level, event, fields) => logger.log(level, event, fields as Record<string, never>) };
  const egress = createEgressProxy({ rules, limits: { ...DEFAULT_EGRESS_LIMITS }, registry: new Registry(), logger: egressLogger });
  const egressServer = await egressTransport.listen(egressListen, (socket) => egress.handle(socket));
  // On stderr: stdout carries exactly one line, the result.
  logger.log("info", "host.egress_listening", { endpoint: formatEndpoint(egressServer.address) });

  const signals = deps.stop ? undefined : signalled();
  let status;
  try {
    status = await provisionEnclave({
      endpoint: provision,
      bundle,
      deadlineMs,
      stopped: deps.stop ?? signals!.stopped,
      transport: deps.provisionTransport ?? nodeTransport,
      logger,
      expect: "identity",
    });
  } finally {
    bundle.fill(0);
    signals?.dispose();
    await Promise.all([egressServer.close(), egress.close({ drainMs: EGRESS_DRAIN_MS })]);
  }
  if (status.status !== "identity") {
    const failed = status.status === "failed" ? status : { code: "ERR_PROVISION_MALFORMED", message: "unexpected status" };
    print(ctx.stdout, JSON.stringify({ provision: "failed", code: failed.code, message: failed.message }));
    print(ctx.stderr, `egw host: identity generation failed: ${failed.code}`);
    return EXIT.rejected;
  }
  try {
    await writeFileAtomic(out, sealedFileWithIdentity(sealed, status.identity));
  } catch (err) {
    if (!isEgwError(err)) throw err;
    print(ctx.stdout, JSON.stringify({ provision: "failed", code: err.code, message: err.message }));
    print(ctx.stderr, `egw host: identity generation failed: ${err.code}`);
    return EXIT.rejected;
  }
  logger.log("info", "host.identity_written", { count: status.receiptKeys.length });
  // Public only: what clients pin (TLS SPKI) and the receipt keys' windows. The blob is in the file.
  print(ctx.stdout, JSON.stringify({ provision: "identity", rotated: rotation, out, tlsSpkiSha256: status.tlsSpkiSha256, receiptKeys: status.receiptKeys }));
  return EXIT.ok;
}
