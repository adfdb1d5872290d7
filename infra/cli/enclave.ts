import path from "node:path";
import { loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { NsmAttester } from "../../attestation/nsm/nsm-attester.js";
import type { Attester } from "../../attestation/attester.js";
import { bootEnclave } from "../../enclave/boot.js";
import { DEFAULT_INGRESS_LIMITS, startIngressRelay } from "../../host/ingress/index.js";
import { formatEndpoint, parseEndpoint } from "../../host/transport/index.js";
import { loadEnclaveSettings } from "../../enclave/config.js";
import { createLogger } from "../../enclave/observability/log.js";
import { staticSecrets } from "../../enclave/secrets.js";
export { ENCLAVE_USAGE } from "./usage.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

/** A byte pipe between two endpoints (the host's ingress relay, without PROXY headers). */
async function startBridge(listen: string, upstream: string) {
  return startIngressRelay({
    listen: parseEndpoint(listen),
    upstream: parseEndpoint(upstream),
    limits: { ...DEFAULT_INGRESS_LIMITS },
    proxyProtocol: false,
  });
}

export async function enclaveCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    config: { type: "string" },
    listen: { type: "string" },
    dev: { type: "boolean" },
    "state-dir": { type: "string" },
    "egress-proxy": { type: "string" },
    "upstream-ca": { type: "string" },
    "sealed-secrets": { type: "string" },
    "kms-endpoint": { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("enclave takes no positional arguments");
  let settings;
  try {
    settings = await loadEnclaveSettings(ctx.env, {
      ...(values.config !== undefined && { config: path.resolve(ctx.cwd, values.config) }),
      ...(values.listen !== undefined && { listen: values.listen }),
      ...(values.dev !== undefined && { dev: values.dev }),
      ...(values["state-dir"] !== undefined && { stateDir: path.resolve(ctx.cwd, values["state-dir"]) }),
      ...(values["egress-proxy"] !== undefined && { egressProxy: values["egress-proxy"] }),
      ...(values["upstream-ca"] !== undefined && { upstreamCaFile: path.resolve(ctx.cwd, values["upstream-ca"]) }),
      ...(values["sealed-secrets"] !== undefined && { sealedSecretsFile: path.resolve(ctx.cwd, values["sealed-secrets"]) }),
      ...(values["kms-endpoint"] !== undefined && { kmsEndpoint: values["kms-endpoint"] }),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = createLogger({ stream: ctx.stderr, level: settings.logLevel, now: ctx.now });
  let attester: Attester;
  if (settings.attester === "simulated") {
    const ca = await loadOrCreateDevCa(path.resolve(ctx.cwd, settings.stateDir), { now: ctx.now });
    attester = new SimulatedNsm({ ca, now: ctx.now });
  } else {
    attester = NsmAttester.open();
  }
  // On Nitro the enclave's only network is vsock. The gateway serves TCP on
  // loopback; byte pipes built from the host's tested relay code bridge
  // vsock to it (inbound) and loopback to the parent's egress proxy
  // (outbound). They carry TLS only, like their counterparts on the host.
  const bridges: { close(): Promise<unknown> }[] = [];
  let egressProxy = settings.egressProxy;
  if (egressProxy?.startsWith("vsock://")) {
    const outbound = await startBridge(`tcp://127.0.0.1:0`, egressProxy);
    bridges.push(outbound);
    egressProxy = `http://127.0.0.1:${(outbound.address as { port: number }).port}`;
  }
  const vsockListen = settings.listen.kind === "vsock" ? settings.listen : undefined;
  const enclave = await bootEnclave({
    configBytes: settings.configBytes,
    attester,
    secrets: staticSecrets(settings.secrets),
    log,
    now: ctx.now,
    listen: vsockListen ? { kind: "tcp", host: "127.0.0.1", port: 0 } : settings.listen,
    hostnames: settings.hostnames,
    ...(egressProxy && { egressProxy }),
    ...(settings.upstreamCa && { upstreamCa: settings.upstreamCa }),
    ...(settings.sealedSecrets && {
      sealedSecrets: {
        file: settings.sealedSecrets.file,
        credentials: settings.sealedSecrets.credentials,
        ...(settings.sealedSecrets.endpoint && { endpoint: settings.sealedSecrets.endpoint }),
      },
    }),
  });
  let vsockAddress: string | undefined;
  if (vsockListen) {
    const inbound = await startBridge(`vsock://${vsockListen.cid}:${vsockListen.port}`, `tcp://127.0.0.1:${enclave.server.port}`);
    bridges.push(inbound);
    vsockAddress = formatEndpoint(inbound.address);
  }
  print(ctx.stdout, JSON.stringify({ ready: true, port: enclave.server.port, ...(vsockAddress && { vsock: vsockAddress }), configSha256: Buffer.from(enclave.configSha256).toString("hex"), tlsSpkiSha256: Buffer.from(enclave.identity.tls.spkiSha256).toString("hex") }));
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log.log("info", "enclave.stopping");
  await Promise.all(bridges.map((b) => b.close()));
  await enclave.close();
  return EXIT.ok;
}
