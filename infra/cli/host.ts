import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { Registry } from "prom-client";
import { captureTransport } from "../../host/capture/capture-transport.js";
import { createEgressProxy, DEFAULT_EGRESS_LIMITS, parseEgressRule, type EgressLogger, type EgressRule } from "../../host/egress/index.js";
import { createIngressLogger, createIngressMetrics, DEFAULT_INGRESS_LIMITS, startIngressRelay } from "../../host/ingress/index.js";
import { formatEndpoint, nodeTransport, parseEndpoint, type Endpoint, type Transport } from "../../host/transport/index.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { HOST_USAGE } from "./usage.js";

/**
 * `egw host`: the untrusted side on the parent instance. It runs the ingress
 * relay (clients → enclave, TLS untouched) and the egress CONNECT proxy
 * (enclave → providers and KMS, default deny), and nothing that could read
 * a prompt: it imports only host/ code.
 */
function endpoint(value: string, flag: string): Endpoint {
  try {
    return parseEndpoint(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
}

/** The egress allowlist and PROXY setting from the enclave's runtime config: the same file, so both sides agree. */
async function fromConfig(file: string): Promise<{ allowlist: string[]; proxyProtocol: boolean }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read a JSON runtime config (${(err as NodeJS.ErrnoException).code ?? "invalid JSON"})`);
  }
  const list = (raw as { egressAllowlist?: unknown }).egressAllowlist;
  if (!Array.isArray(list) || !list.every((e) => typeof e === "string")) throw new UsageError(`--config ${file}: egressAllowlist must be an array of host:port`);
  return { allowlist: list as string[], proxyProtocol: (raw as { proxyProtocol?: unknown }).proxyProtocol === true };
}

export async function hostCommand(args: string[], ctx: CliContext): Promise<number> {
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
  });
  if (positionals.length > 0) throw new UsageError("host takes no positional arguments");
  if (values.enclave === undefined) throw new UsageError("--enclave <endpoint> is required (e.g. vsock://16:8443)");
  const listen = endpoint(values.listen ?? "tcp://127.0.0.1:8443", "listen");
  const enclave = endpoint(values.enclave, "enclave");

  const rules: (EgressRule | string)[] = [];
  let proxyProtocol = values["proxy-protocol"] === true;
  if (values.config !== undefined) {
    const fromFile = await fromConfig(path.resolve(ctx.cwd, values.config));
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

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  logger.log("info", "host.stopping");
  await Promise.all([
    relay.close({ deadlineMs: 10_000 }),
    egressServer?.close(),
    egress?.close({ drainMs: 10_000 }),
    metricsServer ? new Promise<void>((resolve) => metricsServer!.close(() => resolve())) : undefined,
  ]);
  return EXIT.ok;
}
