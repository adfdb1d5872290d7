import { readFile } from "node:fs/promises";
import { parseListen, type ListenEndpoint } from "./listen.js";
import type { LogLevel } from "./observability/log.js";
import { parseTrustPolicy, MAX_TRUST_POLICY_BYTES } from "../attestation/trust-policy.js";
import { MAX_OPERATIONS_BYTES } from "./operations.js";
import { ConfigError } from "./runtime-config.js";

/**
 * The one place the enclave process reads its environment. Everything is
 * read once, validated, and passed on as a typed value.
 *
 * | variable / flag              | meaning                                                        |
 * |------------------------------|----------------------------------------------------------------|
 * | EGW_TRUST_POLICY / --trust-policy | path of the trust policy JSON (attested, served to clients) |
 * | EGW_OPERATIONS / --operations | path of the operations JSON (client tokens, limits)         |
 * | EGW_LISTEN / --listen        | tcp://host:port or unix:///path (default tcp://127.0.0.1:8443) |
 * | EGW_ATTESTER / --dev         | "nsm" (default: real /dev/nsm) or "simulated" (development)    |
 * | EGW_STATE_DIR / --state-dir  | development CA directory for the simulated NSM (.egw-dev)      |
 * | EGW_LOG_LEVEL                | debug, info (default), warn, error                             |
 * | EGW_HOSTNAMES                | comma-separated DNS names for the TLS certificate              |
 * | EGW_EGRESS_PROXY / --egress-proxy | http://host:port of the host's CONNECT proxy (production) |
 * | --upstream-ca <pem file>     | development only (refused with the real NSM): extra CA for     |
 * |                              | upstream TLS (local model)                                     |
 * | NODE_TLS_REJECT_UNAUTHORIZED | "0" is refused with the real NSM (egress verifies regardless)   |
 * | EGW_SEALED_SECRETS / --sealed-secrets | KMS-sealed provider keys (replaces env secrets) |
 * | EGW_KMS_ENDPOINT / --kms-endpoint | KMS endpoint override (VPC endpoint, tests)        |
 * | AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN | credentials for KMS, handed in by the host; |
 * |                              | useless without the attestation the key policy requires; also |
 * |                              | Bedrock's, used only once STS confirms the pinned account     |
 * | <secret names>               | development only (simulated NSM): each provider's `secret` names an env var |
 * | EGW_PROVISION_LISTEN / --provision-listen | instead of the trust policy, operations, sealed-secrets files and AWS_*: |
 * |                              | receive them from the host over this endpoint at boot (Nitro: |
 * |                              | vsock://4294967295:9000); see enclave/provision/              |
 * | EGW_PROVISION_TIMEOUT / --provision-timeout | seconds to wait for the host (default 300) |
 * | --bring-up-loopback          | Nitro: bring `lo` up (it is down at enclave boot) before serving; needs root |
 *
 * With provisioning, EGW_TRUST_POLICY, EGW_OPERATIONS, EGW_SEALED_SECRETS and EGW_KMS_ENDPOINT
 * (and their flags) are refused rather than ignored, AWS_* are not read,
 * and no provider key is taken from the environment: keys arrive sealed in
 * the bundle, or not at all.
 *
 * "simulated" must never be used in production: its documents chain to a
 * development root that no production verifier trusts.
 */
export type EnclaveSettings = FileEnclaveSettings | ProvisionedEnclaveSettings;

/** What both ways of starting share. */
export interface CommonEnclaveSettings {
  listen: ListenEndpoint;
  attester: "nsm" | "simulated";
  stateDir: string;
  logLevel: LogLevel;
  hostnames: string[];
  egressProxy: string | undefined;
  upstreamCa: string | undefined;
  bringUpLoopback: boolean;
}

/** Inputs arrive over the boot provisioning channel (enclave/provision/): the Nitro case. */
export interface ProvisionedEnclaveSettings extends CommonEnclaveSettings {
  mode: "provision";
  provision: { listen: ListenEndpoint; acceptTimeoutMs: number };
}

/** Inputs are read from files and the environment (development, tests, non-Nitro hosts). */
export interface FileEnclaveSettings extends CommonEnclaveSettings {
  mode: "files";
  trustPolicyPath: string;
  trustPolicyBytes: Uint8Array;
  operationsPath: string;
  operationsBytes: Uint8Array;
  /** Provider secrets found in the environment (development). */
  secrets: Map<string, string>;
  sealedSecrets: { file: Uint8Array; endpoint: string | undefined; credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } } | undefined;
  /** AWS_* when set (Bedrock signs with them once STS confirms the pinned account; see enclave/providers/bedrock/). */
  awsCredentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface EnclaveFlags {
  trustPolicy?: string;
  operations?: string;
  listen?: string;
  dev?: boolean;
  stateDir?: string;
  egressProxy?: string;
  upstreamCaFile?: string;
  sealedSecretsFile?: string;
  kmsEndpoint?: string;
  provisionListen?: string;
  /** Seconds, as given on the command line. */
  provisionTimeout?: string;
  bringUpLoopback?: boolean;
}

/** Waiting for the host: nitro-cli run-enclave and the host's start take seconds; a few minutes covers a slow host restart. */
export const DEFAULT_PROVISION_TIMEOUT_SECONDS = 300;
const MAX_PROVISION_TIMEOUT_SECONDS = 3600;

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

export async function loadEnclaveSettings(env: Readonly<Record<string, string | undefined>>, flags: EnclaveFlags): Promise<EnclaveSettings> {
  const provisionListen = flags.provisionListen ?? env.EGW_PROVISION_LISTEN;
  if (provisionListen !== undefined) return provisionedSettings(env, flags, provisionListen);
  if (flags.provisionTimeout !== undefined) throw new ConfigError("--provision-timeout needs --provision-listen");
  return fileSettings(env, flags);
}

async function commonSettings(env: Readonly<Record<string, string | undefined>>, flags: EnclaveFlags): Promise<CommonEnclaveSettings> {
  let listen: ListenEndpoint;
  try {
    listen = parseListen(flags.listen ?? env.EGW_LISTEN ?? "tcp://127.0.0.1:8443");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const attesterName = flags.dev ? "simulated" : (env.EGW_ATTESTER ?? "nsm");
  if (attesterName !== "nsm" && attesterName !== "simulated") throw new ConfigError('EGW_ATTESTER must be "nsm" or "simulated"');
  const logLevel = (env.EGW_LOG_LEVEL ?? "info") as LogLevel;
  if (!LEVELS.includes(logLevel)) throw new ConfigError(`EGW_LOG_LEVEL must be one of ${LEVELS.join(", ")}`);
  const egressProxy = flags.egressProxy ?? env.EGW_EGRESS_PROXY;
  // vsock://3:<port> on Nitro (the parent is cid 3); egw enclave bridges it to loopback.
  if (egressProxy !== undefined && !/^http:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(egressProxy) && !/^vsock:\/\/\d{1,10}:\d{1,10}$/.test(egressProxy)) {
    throw new ConfigError("egress proxy must be http://host:port or vsock://cid:port (the host's CONNECT proxy)");
  }
  // Upstream certificates are checked against the roots bundled in the image
  // (egress.ts upstreamRoots); on the real NSM nothing the host hands in may
  // add a root or switch verification off.
  if (attesterName === "nsm" && flags.upstreamCaFile !== undefined) {
    throw new ConfigError("--upstream-ca is for development only (the simulated NSM); upstream TLS trusts only the bundled roots");
  }
  if (attesterName === "nsm" && env.NODE_TLS_REJECT_UNAUTHORIZED === "0") {
    throw new ConfigError("NODE_TLS_REJECT_UNAUTHORIZED=0 is refused outside development: upstream TLS is always verified");
  }
  let upstreamCa: string | undefined;
  if (flags.upstreamCaFile !== undefined) {
    try {
      upstreamCa = await readFile(flags.upstreamCaFile, "utf8");
    } catch {
      throw new ConfigError(`cannot read --upstream-ca ${flags.upstreamCaFile}`);
    }
    if (!upstreamCa.includes("-----BEGIN CERTIFICATE-----")) throw new ConfigError("--upstream-ca must be a PEM certificate");
  }
  return {
    listen,
    attester: attesterName,
    stateDir: flags.stateDir ?? env.EGW_STATE_DIR ?? ".egw-dev",
    logLevel,
    hostnames: (env.EGW_HOSTNAMES ?? "localhost")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    egressProxy,
    upstreamCa,
    bringUpLoopback: flags.bringUpLoopback ?? false,
  };
}

async function provisionedSettings(env: Readonly<Record<string, string | undefined>>, flags: EnclaveFlags, endpoint: string): Promise<ProvisionedEnclaveSettings> {
  // One source per input: a file given as well would be silently ignored,
  // or worse, disagree with what the host sends.
  const conflicts = [
    flags.trustPolicy !== undefined && "--trust-policy",
    flags.operations !== undefined && "--operations",
    flags.sealedSecretsFile !== undefined && "--sealed-secrets",
    flags.kmsEndpoint !== undefined && "--kms-endpoint",
    env.EGW_TRUST_POLICY !== undefined && "EGW_TRUST_POLICY",
    env.EGW_OPERATIONS !== undefined && "EGW_OPERATIONS",
    env.EGW_SEALED_SECRETS !== undefined && "EGW_SEALED_SECRETS",
    env.EGW_KMS_ENDPOINT !== undefined && "EGW_KMS_ENDPOINT",
  ].filter((c): c is string => c !== false);
  if (conflicts.length > 0)
    throw new ConfigError(`--provision-listen receives the trust policy, operations, sealed secrets and KMS endpoint from the host; remove ${conflicts.join(", ")}`);
  let listen: ListenEndpoint;
  try {
    listen = parseListen(endpoint);
  } catch (err) {
    throw new ConfigError(`--provision-listen: ${(err as Error).message}`);
  }
  const timeoutText = flags.provisionTimeout ?? env.EGW_PROVISION_TIMEOUT ?? String(DEFAULT_PROVISION_TIMEOUT_SECONDS);
  const seconds = /^[1-9]\d{0,4}$/.test(timeoutText) ? Number(timeoutText) : NaN;
  if (!(seconds <= MAX_PROVISION_TIMEOUT_SECONDS)) throw new ConfigError(`--provision-timeout must be whole seconds, 1..${MAX_PROVISION_TIMEOUT_SECONDS}`);
  return { mode: "provision", ...(await commonSettings(env, flags)), provision: { listen, acceptTimeoutMs: seconds * 1000 } };
}

async function fileSettings(env: Readonly<Record<string, string | undefined>>, flags: EnclaveFlags): Promise<FileEnclaveSettings> {
  const trustPolicyPath = flags.trustPolicy ?? env.EGW_TRUST_POLICY;
  if (!trustPolicyPath) throw new ConfigError("no trust policy: pass --trust-policy <file> or set EGW_TRUST_POLICY");
  const operationsPath = flags.operations ?? env.EGW_OPERATIONS;
  if (!operationsPath) throw new ConfigError("no operations file: pass --operations <file> or set EGW_OPERATIONS");
  const trustPolicyBytes = await readInput(trustPolicyPath, "trust policy", MAX_TRUST_POLICY_BYTES);
  const operationsBytes = await readInput(operationsPath, "operations file", MAX_OPERATIONS_BYTES);
  const common = await commonSettings(env, flags);
  // Parsed here only to learn the secret names to read from the environment
  // in development; the boot parses both inputs again, with their errors.
  const secrets = new Map<string, string>();
  if (common.attester === "simulated") {
    let policy: ReturnType<typeof parseTrustPolicy>;
    try {
      policy = parseTrustPolicy(trustPolicyBytes, { dev: true });
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    for (const p of policy.providers) {
      if (p.secret && env[p.secret]) secrets.set(p.secret, env[p.secret]!);
    }
  }
  let sealedSecrets: FileEnclaveSettings["sealedSecrets"];
  const sealedFile = flags.sealedSecretsFile ?? env.EGW_SEALED_SECRETS;
  if (sealedFile !== undefined) {
    let file: Uint8Array;
    try {
      file = new Uint8Array(await readFile(sealedFile));
    } catch {
      throw new ConfigError(`cannot read the sealed-secrets file ${sealedFile}`);
    }
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) throw new ConfigError("sealed secrets need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for KMS");
    const endpoint = flags.kmsEndpoint ?? env.EGW_KMS_ENDPOINT;
    if (endpoint !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(endpoint)) throw new ConfigError("the KMS endpoint must be a URL without a path");
    sealedSecrets = { file, endpoint, credentials: { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }) } };
  }
  const awsCredentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }) }
      : undefined;
  return { mode: "files", ...common, sealedSecrets, trustPolicyPath, trustPolicyBytes, operationsPath, operationsBytes, secrets, ...(awsCredentials && { awsCredentials }) };
}

async function readInput(file: string, what: string, max: number): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (err) {
    throw new ConfigError(`cannot read the ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (bytes.byteLength > max) throw new ConfigError(`the ${what} is larger than ${max} bytes`);
  return bytes;
}
