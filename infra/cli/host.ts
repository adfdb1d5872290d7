import http from "node:http";
import path from "node:path";
import { Registry } from "prom-client";
import { captureTransport } from "../../host/capture/capture-transport.js";
import { createEgressProxy, DEFAULT_EGRESS_LIMITS, type EgressLogger } from "../../host/egress/index.js";
import { createIngressLogger, createIngressMetrics, DEFAULT_INGRESS_LIMITS, startIngressRelay } from "../../host/ingress/index.js";
import {
  createBootStatusMetric,
  defaultChainCredentials,
  encodeBundle,
  isProvisionError,
  sealedFileRegion,
  type AwsCredentials,
  type BootStatus,
} from "../../host/provision/index.js";
import { formatEndpoint, nodeTransport, type Endpoint, type Transport } from "../../host/transport/index.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import {
  checkKmsEndpoint,
  egressRules,
  endpoint,
  kmsEndpointRule,
  type HostCommandDeps,
  kmsRegion,
  provisionDeadlineMs,
  provisionEnclave,
  proxyProtocolFromOperations,
  readInput,
  signalled,
  trustPolicyOnHost,
} from "./host-common.js";

export { HOST_USAGE } from "./usage.js";

/**
 * `egw host`: the untrusted side on the parent instance. It runs the ingress
 * relay (clients → enclave, TLS untouched) and the egress CONNECT proxy
 * (enclave → providers and KMS, default deny), and nothing that could read
 * a prompt: it imports only host/ code (and the trust-policy codec, which
 * handles no plaintext). With --provision it also hands a fresh enclave its
 * trust policy, operations file, sealed secrets and KMS credentials at boot
 * (host/provision/). With --generate-identity it instead has the
 * enclave make the shared identity and writes it into a sealed-secrets
 * file (host-identity.ts, loaded only in that mode, with the one enclave/
 * module the host side uses: the sealed-file parser, which handles only
 * ciphertext; see identity-out.ts).
 */

/** What the command needs besides the CLI context; tests pass fakes. */
// Declared beside what both modes share, so host-identity.ts needs nothing of this file (no import circle).
export type { HostCommandDeps } from "./host-common.js";

/** Flags only identity mode (--generate-identity) takes. */
const IDENTITY_FLAGS = ["validity-days", "overlap-days", "rotate-tls", "identity-out"] as const;

export async function hostCommand(args: string[], ctx: CliContext, deps: HostCommandDeps = {}): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    listen: { type: "string" },
    enclave: { type: "string" },
    "proxy-protocol": { type: "boolean" },
    "egress-listen": { type: "string" },
    "trust-policy": { type: "string" },
    operations: { type: "string" },
    allow: { type: "string", multiple: true },
    "allow-private": { type: "string", multiple: true },
    "metrics-listen": { type: "string" },
    "capture-dir": { type: "string" },
    provision: { type: "string" },
    "sealed-secrets": { type: "string" },
    "kms-endpoint": { type: "string" },
    "provision-timeout": { type: "string" },
    "generate-identity": { type: "boolean" },
    "validity-days": { type: "string" },
    "overlap-days": { type: "string" },
    "rotate-tls": { type: "boolean" },
    "identity-out": { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("host takes no positional arguments");
  if (values["generate-identity"] === true) {
    // Loaded only here: it reads the sealed-secrets file with the enclave's
    // own parser, which the serving host has no use for.
    const { hostIdentityCommand } = await import("./host-identity.js");
    return hostIdentityCommand(values, ctx, deps);
  }
  for (const flag of IDENTITY_FLAGS) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --generate-identity`);
  }
  if (values.enclave === undefined) throw new UsageError("--enclave <endpoint> is required (e.g. vsock://16:8443)");
  const listen = endpoint(values.listen ?? "tcp://127.0.0.1:8443", "listen");
  const enclave = endpoint(values.enclave, "enclave");

  // Boot provisioning: the files and credentials a fresh enclave needs, read
  // and checked before anything listens, so a mistake fails at once.
  const provision = values.provision !== undefined ? endpoint(values.provision, "provision") : undefined;
  if (provision === undefined) {
    for (const flag of ["sealed-secrets", "kms-endpoint", "provision-timeout"] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --provision <endpoint>`);
    }
  } else if (values["trust-policy"] === undefined || values.operations === undefined) {
    throw new UsageError("--provision needs --trust-policy <trust-policy.json> and --operations <operations.json>: they are what the enclave boots with");
  }
  checkKmsEndpoint(values["kms-endpoint"], values["sealed-secrets"]);
  const deadlineMs = provisionDeadlineMs(values["provision-timeout"]);
  // Read once: the bytes the egress allowlist comes from are the bytes sent (and attested).
  const trustFile = values["trust-policy"] !== undefined ? path.resolve(ctx.cwd, values["trust-policy"]) : undefined;
  const trust = trustFile !== undefined ? { file: trustFile, bytes: await readInput(trustFile, "trust-policy") } : undefined;
  const opsFile = values.operations !== undefined ? path.resolve(ctx.cwd, values.operations) : undefined;
  const operations = opsFile !== undefined ? { file: opsFile, bytes: await readInput(opsFile, "operations") } : undefined;
  const policy = trust !== undefined ? trustPolicyOnHost(trust) : undefined;
  let bundle: Uint8Array | undefined;
  if (provision !== undefined) {
    // This host is untrusted and could send any trust policy or sealed
    // file. That is fine: the enclave attests the SHA-256 of exactly these
    // bytes and serves the policy, and a client checks what it says before
    // it sends anything; KMS releases keys only under the policy's ARNs.
    const sealedSecrets = values["sealed-secrets"] !== undefined ? await readInput(path.resolve(ctx.cwd, values["sealed-secrets"]), "sealed-secrets") : undefined;
    let awsCredentials: AwsCredentials | undefined;
    try {
      // Only with sealed secrets: without them the enclave never calls KMS,
      // and credentials it would not use are not sent.
      if (sealedSecrets !== undefined) awsCredentials = await (deps.fetchCredentials ?? defaultChainCredentials)(kmsRegion(policy!, "secrets") ?? sealedFileRegion(sealedSecrets));
      bundle = encodeBundle({
        trustPolicy: trust!.bytes,
        operations: operations!.bytes,
        ...(sealedSecrets && { sealedSecrets }),
        ...(awsCredentials && { awsCredentials }),
        ...(values["kms-endpoint"] !== undefined && { kmsEndpoint: values["kms-endpoint"] }),
      });
    } catch (err) {
      if (!isProvisionError(err)) throw err;
      print(ctx.stderr, `egw host: ${err.code}: ${err.message}`);
      return EXIT.rejected;
    }
  }

  // The enclave adds a checked --kms-endpoint to its own derived list; the proxy must let it through too.
  const allow = [...(values.allow ?? []), ...(provision !== undefined && values["kms-endpoint"] !== undefined ? [kmsEndpointRule(values["kms-endpoint"])] : [])];
  const rules = egressRules(policy, allow, values["allow-private"] ?? []);
  // The enclave expects the header exactly when its operations file says so.
  const proxyProtocol = values["proxy-protocol"] === true || (operations !== undefined && proxyProtocolFromOperations(operations));

  const registry = new Registry();
  const logger = createIngressLogger({ stream: ctx.stderr, now: ctx.now });
  const bootStatus = provision !== undefined ? createBootStatusMetric(registry) : undefined;
  let ingressTransport: Transport = nodeTransport;
  let egressTransport: Transport = nodeTransport;
  if (values["capture-dir"] !== undefined) {
    const dir = path.resolve(ctx.cwd, values["capture-dir"]);
    ingressTransport = captureTransport(nodeTransport, path.join(dir, "host-ingress.bin"));
    egressTransport = captureTransport(nodeTransport, path.join(dir, "host-egress.bin"));
    logger.log("warn", "host.capture_on", { endpoint: dir });
  }

  const ingressMetrics = createIngressMetrics();
  const relay = await startIngressRelay({
    listen,
    upstream: enclave,
    limits: { ...DEFAULT_INGRESS_LIMITS },
    proxyProtocol,
    transport: ingressTransport,
    metrics: ingressMetrics,
    logger,
  });
  // Same JSON-lines writer for both halves: every field either logs is a number or a label.
  const egressLogger: EgressLogger = { log: (level, event, fields) => logger.log(level, event, fields as Record<string, never>) };

  let egressServer: { close(): Promise<void>; address: Endpoint } | undefined;
  let egress: ReturnType<typeof createEgressProxy> | undefined;
  if (values["egress-listen"] !== undefined) {
    egress = createEgressProxy({ rules, limits: { ...DEFAULT_EGRESS_LIMITS }, registry, logger: egressLogger });
    const proxy = egress;
    egressServer = await egressTransport.listen(endpoint(values["egress-listen"], "egress-listen"), (socket) => proxy.handle(socket));
  } else if (rules.length > 0) {
    throw new UsageError("--trust-policy/--allow given without --egress-listen: the egress proxy would not run");
  }

  let metricsServer: http.Server | undefined;
  let metricsAddress: string | undefined;
  if (values["metrics-listen"] !== undefined) {
    const m = endpoint(values["metrics-listen"], "metrics-listen");
    if (m.kind !== "tcp") throw new UsageError("--metrics-listen must be tcp://host:port");
    metricsServer = http.createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      const merged = Registry.merge([registry, ingressMetrics.registry]);
      void merged.metrics().then((text) => res.writeHead(200, { "content-type": merged.contentType }).end(text));
    });
    await new Promise<void>((resolve) => metricsServer!.listen(m.port, m.host, resolve));
    const address = metricsServer.address();
    metricsAddress = `tcp://${m.host}:${typeof address === "object" && address ? address.port : m.port}`;
  }

  print(
    ctx.stdout,
    JSON.stringify({
      ready: true,
      listen: formatEndpoint(relay.address),
      enclave: formatEndpoint(enclave),
      egress: egressServer ? formatEndpoint(egressServer.address) : null,
      metrics: metricsAddress ?? null,
    }),
  );

  // Listening for signals from here on, so a stop during provisioning aborts it cleanly.
  const signals = deps.stop ? undefined : signalled();
  const stopped = deps.stop ?? signals!.stopped;
  const closeAll = () =>
    Promise.all([
      relay.close({ deadlineMs: 10_000 }),
      egressServer?.close(),
      egress?.close({ drainMs: 10_000 }),
      metricsServer ? new Promise<void>((resolve) => metricsServer!.close(() => resolve())) : undefined,
    ]);

  if (provision !== undefined && bundle !== undefined) {
    // Relay, egress proxy and metrics are already up: the enclave reaches
    // KMS through this egress proxy while it boots, and the gauge shows
    // "pending" meanwhile.
    const status = await provisionEnclave({ endpoint: provision, bundle, deadlineMs, stopped, transport: deps.provisionTransport ?? nodeTransport, logger, expect: "ready" });
    bundle.fill(0);
    // sendBundle refuses any success but "ready" here (expect).
    bootStatus!.set(status.status === "ready" ? "ready" : "failed");
    print(ctx.stdout, JSON.stringify({ provision: status.status, ...statusFields(status) }));
    if (status.status === "failed") {
      // Exit non-zero with the code on stderr, so `systemctl status` says why.
      print(ctx.stderr, `egw host: enclave boot failed: ${status.code}`);
      signals?.dispose();
      await closeAll();
      return EXIT.rejected;
    }
  }

  await stopped;
  signals?.dispose();
  logger.log("info", "host.stopping");
  await closeAll();
  return EXIT.ok;
}

/** Fields of the stdout status line: hashes and codes, never anything the bundle carried. */
function statusFields(status: BootStatus) {
  if (status.status === "ready") {
    return {
      configSha256: status.configSha256,
      policySha256: status.policySha256,
      tlsSpkiSha256: status.tlsSpkiSha256,
      ...(status.port !== undefined && { port: status.port }),
      ...(status.vsock && { vsock: status.vsock }),
    };
  }
  if (status.status === "failed") return { code: status.code, message: status.message };
  // Not reached (sendBundle was told to expect "ready"); the blob is never printed.
  return { tlsSpkiSha256: status.tlsSpkiSha256 };
}
