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
  isProvisionSendError,
  sealedFileRegion,
  type AwsCredentials,
  type BootStatus,
  type CredentialsFetcher,
} from "../../host/provision/index.js";
import { formatEndpoint, nodeTransport, type Endpoint, type Transport } from "../../host/transport/index.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { checkKmsEndpoint, egressRules, endpoint, provisionDeadlineMs, provisionEnclave, readInput, signalled } from "./host-common.js";

export { HOST_USAGE } from "./usage.js";

/**
 * `egw host`: the untrusted side on the parent instance. It runs the ingress
 * relay (clients → enclave, TLS untouched) and the egress CONNECT proxy
 * (enclave → providers and KMS, default deny), and nothing that could read
 * a prompt: it imports only host/ code. With --provision it also hands a
 * fresh enclave its runtime config, sealed secrets and KMS credentials at
 * boot (host/provision/). With --generate-identity it instead has the
 * enclave make the shared identity and writes it into a sealed-secrets
 * file (host-identity.ts, loaded only in that mode, with the one enclave/
 * module the host side uses: the sealed-file parser, which handles only
 * ciphertext; see identity-out.ts).
 */

/** What the command needs besides the CLI context; tests pass fakes. */
export interface HostCommandDeps {
  /** Resolves when the host should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
  /** AWS credentials handed to the enclave for KMS; default: the SDK's default chain (instance role via IMDSv2). */
  fetchCredentials?: CredentialsFetcher;
  /** The transport the provisioning connection uses; default: the real one. */
  provisionTransport?: Transport;
}

/** Flags only identity mode (--generate-identity) takes. */
const IDENTITY_FLAGS = ["validity-days", "overlap-days", "rotate-tls", "identity-out"] as const;

export async function hostCommand(args: string[], ctx: CliContext, deps: HostCommandDeps = {}): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    listen: { type: "string" },
    enclave: { type: "string" },
    "proxy-protocol": { type: "boolean" },
    "egress-listen": { type: "string" },
    config: { type: "string" },
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
  } else if (values.config === undefined) {
    throw new UsageError("--provision needs --config <runtime-config.json>: it is what the enclave boots with");
  }
  checkKmsEndpoint(values["kms-endpoint"], values["sealed-secrets"]);
  const deadlineMs = provisionDeadlineMs(values["provision-timeout"]);
  const configFile = values.config !== undefined ? path.resolve(ctx.cwd, values.config) : undefined;
  // Read once: the bytes the egress allowlist comes from are the bytes sent (and attested).
  const configBytes = configFile !== undefined ? await readInput(configFile, "config") : undefined;
  let bundle: Uint8Array | undefined;
  if (provision !== undefined) {
    // This host is untrusted and could send any config or sealed file. That
    // is fine: the enclave attests the SHA-256 of exactly these bytes, and a
    // client's policy checks that hash before it sends anything.
    const sealedSecrets = values["sealed-secrets"] !== undefined ? await readInput(path.resolve(ctx.cwd, values["sealed-secrets"]), "sealed-secrets") : undefined;
    let awsCredentials: AwsCredentials | undefined;
    try {
      // Only with sealed secrets: without them the enclave never calls KMS,
      // and credentials it would not use are not sent.
      if (sealedSecrets !== undefined) awsCredentials = await (deps.fetchCredentials ?? defaultChainCredentials)(sealedFileRegion(sealedSecrets));
      bundle = encodeBundle({
        config: configBytes!,
        ...(sealedSecrets && { sealedSecrets }),
        ...(awsCredentials && { awsCredentials }),
        ...(values["kms-endpoint"] !== undefined && { kmsEndpoint: values["kms-endpoint"] }),
      });
    } catch (err) {
      if (!isProvisionSendError(err)) throw err;
      print(ctx.stderr, `egw host: ${err.code}: ${err.message}`);
      return EXIT.rejected;
    }
  }

  const config = configFile !== undefined && configBytes !== undefined ? { file: configFile, bytes: configBytes } : undefined;
  const { rules, proxyProtocol: configProxyProtocol } = egressRules(config, values.allow ?? [], values["allow-private"] ?? []);
  // The enclave expects the header exactly when its config says so.
  const proxyProtocol = values["proxy-protocol"] === true || configProxyProtocol;

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
    throw new UsageError("--config/--allow given without --egress-listen: the egress proxy would not run");
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
    return { configSha256: status.configSha256, tlsSpkiSha256: status.tlsSpkiSha256, ...(status.port !== undefined && { port: status.port }), ...(status.vsock && { vsock: status.vsock }) };
  }
  if (status.status === "failed") return { code: status.code, message: status.message };
  // Not reached (sendBundle was told to expect "ready"); the blob is never printed.
  return { tlsSpkiSha256: status.tlsSpkiSha256 };
}
