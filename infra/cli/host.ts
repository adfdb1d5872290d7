import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { Registry } from "prom-client";
import { captureTransport } from "../../host/capture/capture-transport.js";
import { createEgressProxy, DEFAULT_EGRESS_LIMITS, parseEgressRule, type EgressLogger, type EgressRule } from "../../host/egress/index.js";
import { createIngressLogger, createIngressMetrics, DEFAULT_INGRESS_LIMITS, startIngressRelay } from "../../host/ingress/index.js";
import {
  createBootStatusMetric,
  defaultChainCredentials,
  encodeBundle,
  isProvisionSendError,
  sealedFileRegion,
  sendBundle,
  type AwsCredentials,
  type BootStatus,
  type CredentialsFetcher,
  type ProvisionLogger,
} from "../../host/provision/index.js";
import { formatEndpoint, isTransportError, nodeTransport, parseEndpoint, type Endpoint, type Transport } from "../../host/transport/index.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { HOST_USAGE } from "./usage.js";

/**
 * `egw host`: the untrusted side on the parent instance. It runs the ingress
 * relay (clients → enclave, TLS untouched) and the egress CONNECT proxy
 * (enclave → providers and KMS, default deny), and nothing that could read
 * a prompt: it imports only host/ code. With --provision it also hands a
 * fresh enclave its runtime config, sealed secrets and KMS credentials at
 * boot (host/provision/).
 */
function endpoint(value: string, flag: string): Endpoint {
  try {
    return parseEndpoint(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
}

/** What the command needs besides the CLI context; tests pass fakes. */
export interface HostCommandDeps {
  /** Resolves when the host should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
  /** AWS credentials handed to the enclave for KMS; default: the SDK's default chain (instance role via IMDSv2). */
  fetchCredentials?: CredentialsFetcher;
  /** The transport the provisioning connection uses; default: the real one. */
  provisionTransport?: Transport;
}

/** Whole provisioning (dial retries, the enclave's boot, KMS release) within this by default. */
const DEFAULT_PROVISION_TIMEOUT_SECONDS = 300;

/** The egress allowlist and PROXY setting from the enclave's runtime config: the same file, so both sides agree. */
function fromConfig(file: string, bytes: Uint8Array): { allowlist: string[]; proxyProtocol: boolean } {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new UsageError(`--config ${file}: cannot read a JSON runtime config (invalid JSON)`);
  }
  const list = (raw as { egressAllowlist?: unknown }).egressAllowlist;
  if (!Array.isArray(list) || !list.every((e) => typeof e === "string")) throw new UsageError(`--config ${file}: egressAllowlist must be an array of host:port`);
  return { allowlist: list as string[], proxyProtocol: (raw as { proxyProtocol?: unknown }).proxyProtocol === true };
}

async function readInput(file: string, flag: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (err) {
    throw new UsageError(`--${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function signalled(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

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
  });
  if (positionals.length > 0) throw new UsageError("host takes no positional arguments");
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
  if (values["kms-endpoint"] !== undefined) {
    if (values["sealed-secrets"] === undefined) throw new UsageError("--kms-endpoint needs --sealed-secrets: KMS is only used to open them");
    if (!/^https?:\/\/[^\s/]{1,253}\/?$/.test(values["kms-endpoint"])) throw new UsageError("--kms-endpoint must be a URL without a path");
  }
  let deadlineMs = DEFAULT_PROVISION_TIMEOUT_SECONDS * 1000;
  if (values["provision-timeout"] !== undefined) {
    const t = values["provision-timeout"];
    if (!/^[1-9]\d{0,4}$/.test(t) || Number(t) > 3600) throw new UsageError("--provision-timeout must be whole seconds, 1..3600");
    deadlineMs = Number(t) * 1000;
  }
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

  const rules: (EgressRule | string)[] = [];
  let proxyProtocol = values["proxy-protocol"] === true;
  if (configFile !== undefined && configBytes !== undefined) {
    const fromFile = fromConfig(configFile, configBytes);
    rules.push(...fromFile.allowlist);
    // The enclave expects the header exactly when its config says so.
    proxyProtocol ||= fromFile.proxyProtocol;
  }
  for (const rule of values.allow ?? []) rules.push(rule);
  for (const rule of values["allow-private"] ?? []) {
    let parsed: EgressRule;
    try {
      parsed = { ...parseEgressRule(rule), allowPrivate: true };
    } catch (err) {
      throw new UsageError(`--allow-private ${rule}: ${(err as Error).message}`);
    }
    // The same pair may come from the config too; the explicit flag wins.
    const same = (r: EgressRule | string) => {
      const e = typeof r === "string" ? parseEgressRule(r) : r;
      return e.host.toLowerCase() === parsed.host.toLowerCase() && e.port === parsed.port;
    };
    for (let i = rules.length - 1; i >= 0; i--) if (same(rules[i]!)) rules.splice(i, 1);
    rules.push(parsed);
  }

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
  const stopped = deps.stop ?? signalled();
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
    const status = await provisionEnclave({ endpoint: provision, bundle, deadlineMs, stopped, transport: deps.provisionTransport ?? nodeTransport, logger });
    bundle.fill(0);
    bootStatus!.set(status.status);
    print(ctx.stdout, JSON.stringify({ provision: status.status, ...statusFields(status) }));
    if (status.status === "failed") {
      // Exit non-zero with the code on stderr, so `systemctl status` says why.
      print(ctx.stderr, `egw host: enclave boot failed: ${status.code}`);
      await closeAll();
      return EXIT.rejected;
    }
  }

  await stopped;
  logger.log("info", "host.stopping");
  await closeAll();
  return EXIT.ok;
}

/** Fields of the stdout status line: hashes and codes, never anything the bundle carried. */
function statusFields(status: BootStatus) {
  if (status.status === "ready") {
    return { configSha256: status.configSha256, tlsSpkiSha256: status.tlsSpkiSha256, ...(status.port !== undefined && { port: status.port }), ...(status.vsock && { vsock: status.vsock }) };
  }
  return { code: status.code, message: status.message };
}

/**
 * Sends the bundle and returns the enclave's status; a failure on this side
 * (no enclave before the deadline, no or a malformed answer, a stop) comes
 * back as a failed status with the host's own code.
 */
async function provisionEnclave(options: { endpoint: Endpoint; bundle: Uint8Array; deadlineMs: number; stopped: Promise<void>; transport: Transport; logger: ReturnType<typeof createIngressLogger> }): Promise<BootStatus> {
  const abort = new AbortController();
  void options.stopped.then(() => abort.abort());
  const log: ProvisionLogger = { log: (level, event, fields) => options.logger.log(level, event, fields as Record<string, never>) };
  try {
    return await sendBundle({ endpoint: options.endpoint, transport: options.transport, bundle: options.bundle, deadlineMs: options.deadlineMs, signal: abort.signal, log });
  } catch (err) {
    if (!isProvisionSendError(err) && !isTransportError(err)) throw err;
    log.log("error", "provision.failed", { outcome: "failed", code: err.code });
    return { status: "failed", code: err.code, message: err.message.slice(0, 512) };
  }
}
