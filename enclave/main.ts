/**
 * The enclave program: what the measured image runs (enclave/bin.ts is its
 * executable; infra/deploy/image/Dockerfile's ENTRYPOINT passes the production
 * flags) and what `egw enclave` delegates to for development and tests
 * (infra/cli/enclave.ts). Flags are parsed here and nowhere else. It imports
 * only enclave/, attestation/ and the vsock transport (host/transport), the
 * allowlist infra/deploy/image/allowlist.ts enforces on the image's bundle.
 */
import path from "node:path";
import { loadOrCreateDevCa } from "../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../attestation/dev/simulated-nsm.js";
import { NsmAttester } from "../attestation/nsm/nsm-attester.js";
import type { Attester } from "../attestation/attester.js";
import { trustAnchorFromPem, type TrustAnchor } from "../attestation/roots.js";
import { bootEnclave, type BootOptions } from "./boot.js";
import { formatEndpoint, parseEndpoint, type Endpoint } from "../host/transport/endpoint.js";
import { nodeTransport } from "../host/transport/transport.js";
import { loadEnclaveSettings, type CommonEnclaveSettings, type EnclaveSettings } from "./config.js";
import { DEFAULT_BRIDGE_LIMITS, startBridge as startPipe } from "./init/bridge.js";
import { bringUpLoopback } from "./init/loopback.js";
import { createLogger, type Logger } from "./observability/log.js";
import { generateIdentityFromBundle } from "./provision/identity-mode.js";
import { DEFAULT_PROVISION_LIMITS, provisionedBoot, type IdentityStatus, type ProvisionBundle } from "./provision/index.js";
import { staticSecrets } from "./secrets.js";
import { EXIT, parseFlags, print, EnclaveUsageError as UsageError, type EnclaveContext as CliContext } from "./main-context.js";

/** A byte pipe between two endpoints (enclave/init/bridge.ts). */
async function startBridge(listen: string, upstream: string) {
  return startPipe({ listen: parseEndpoint(listen), upstream: parseEndpoint(upstream), limits: { ...DEFAULT_BRIDGE_LIMITS } });
}

/** What the command needs from outside besides the CLI context; tests pass `stop` to end a running enclave in-process. */
export interface EnclaveCommandDeps {
  /** Resolves when the enclave should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
}

type Closer = { close(): Promise<unknown> };

/** The gateway's inputs: from files (`--trust-policy`, `--operations`) or from the host over the provisioning channel. */
interface BootInputs {
  trustPolicyBytes: Uint8Array;
  operationsBytes: Uint8Array;
  secrets: Map<string, string>;
  sealedSecrets: BootOptions["sealedSecrets"];
}

interface Running {
  enclave: Awaited<ReturnType<typeof bootEnclave>>;
  vsockAddress: string | undefined;
  inbound: Closer | undefined;
}

/** Identity mode (the bundle asked for a new identity): its public summary; nothing serves. */
interface Generated {
  identity: Omit<IdentityStatus, "status">;
}

/**
 * Boots the gateway and, on Nitro, bridges vsock to it. The same function
 * for both input paths, so a provisioned enclave runs exactly what
 * `--trust-policy`/`--operations`/`--sealed-secrets` would have run with the same bytes.
 */
async function bootAndBridge(
  settings: CommonEnclaveSettings,
  inputs: BootInputs,
  attester: Attester,
  egressProxy: string | undefined,
  log: Logger,
  now: () => Date,
  devRoot: TrustAnchor | undefined,
): Promise<Running> {
  const vsockListen = settings.listen.kind === "vsock" ? settings.listen : undefined;
  const enclave = await bootEnclave({
    trustPolicyBytes: inputs.trustPolicyBytes,
    operationsBytes: inputs.operationsBytes,
    attester,
    secrets: staticSecrets(inputs.secrets),
    log,
    now,
    listen: vsockListen ? { kind: "tcp", host: "127.0.0.1", port: 0 } : settings.listen,
    hostnames: settings.hostnames,
    ...(egressProxy && { egressProxy }),
    ...(settings.upstreamCa && { upstreamCa: settings.upstreamCa }),
    ...(inputs.sealedSecrets && { sealedSecrets: inputs.sealedSecrets }),
    ...(devRoot && { devRoot }),
  });
  if (!vsockListen) return { enclave, vsockAddress: undefined, inbound: undefined };
  try {
    const inbound = await startBridge(`vsock://${vsockListen.cid}:${vsockListen.port}`, `tcp://127.0.0.1:${enclave.server.port}`);
    return { enclave, vsockAddress: formatEndpoint(inbound.address), inbound };
  } catch (err) {
    await enclave.close();
    throw err;
  }
}

function readyFields(running: Running) {
  return {
    ...(running.enclave.server.port !== undefined && { port: running.enclave.server.port }),
    ...(running.vsockAddress && { vsock: running.vsockAddress }),
    configSha256: Buffer.from(running.enclave.configSha256).toString("hex"),
    policySha256: Buffer.from(running.enclave.policySha256).toString("hex"),
    tlsSpkiSha256: Buffer.from(running.enclave.identity.tls.spkiSha256).toString("hex"),
  };
}

function inputsFromBundle(bundle: ProvisionBundle): BootInputs {
  // Provider keys arrive sealed or not at all: a provisioned enclave takes
  // none from its environment.
  return { trustPolicyBytes: bundle.trustPolicyBytes, operationsBytes: bundle.operationsBytes, secrets: new Map(), sealedSecrets: bundle.sealedSecrets };
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

/** The program's flags, parsed strictly (unknown ones are usage errors); the only list of them. */
const FLAGS = {
  "trust-policy": { type: "string" },
  operations: { type: "string" },
  listen: { type: "string" },
  dev: { type: "boolean" },
  "state-dir": { type: "string" },
  "egress-proxy": { type: "string" },
  "upstream-ca": { type: "string" },
  "sealed-secrets": { type: "string" },
  "kms-endpoint": { type: "string" },
  "provision-listen": { type: "string" },
  "provision-timeout": { type: "string" },
  "bring-up-loopback": { type: "boolean" },
} as const;

/**
 * --help of the image's program, made from FLAGS so it cannot drift; the
 * prose is `egw help enclave` (infra/cli/usage.ts ENCLAVE_USAGE), kept out
 * of this module so the host's CLI loads no enclave/ file.
 */
export const ENCLAVE_PROGRAM_USAGE = `usage: enclave ${Object.entries(FLAGS)
  .map(([name, spec]) => (spec.type === "boolean" ? `[--${name}]` : `[--${name} <value>]`))
  .join(" ")}
Runs the gateway service; the same program as \`egw enclave\` (see \`egw help\` for each flag). Exit 0 stopped, 1 refused, 2 usage.`;

export async function main(args: string[], ctx: CliContext, deps: EnclaveCommandDeps = {}): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS);
  if (positionals.length > 0) throw new UsageError("enclave takes no positional arguments");
  let settings: EnclaveSettings;
  try {
    settings = await loadEnclaveSettings(ctx.env, {
      ...(values["trust-policy"] !== undefined && { trustPolicy: path.resolve(ctx.cwd, values["trust-policy"]) }),
      ...(values.operations !== undefined && { operations: path.resolve(ctx.cwd, values.operations) }),
      ...(values.listen !== undefined && { listen: values.listen }),
      ...(values.dev !== undefined && { dev: values.dev }),
      ...(values["state-dir"] !== undefined && { stateDir: path.resolve(ctx.cwd, values["state-dir"]) }),
      ...(values["egress-proxy"] !== undefined && { egressProxy: values["egress-proxy"] }),
      ...(values["upstream-ca"] !== undefined && { upstreamCaFile: path.resolve(ctx.cwd, values["upstream-ca"]) }),
      ...(values["sealed-secrets"] !== undefined && { sealedSecretsFile: path.resolve(ctx.cwd, values["sealed-secrets"]) }),
      ...(values["kms-endpoint"] !== undefined && { kmsEndpoint: values["kms-endpoint"] }),
      ...(values["provision-listen"] !== undefined && { provisionListen: values["provision-listen"] }),
      ...(values["provision-timeout"] !== undefined && { provisionTimeout: values["provision-timeout"] }),
      ...(values["bring-up-loopback"] !== undefined && { bringUpLoopback: values["bring-up-loopback"] }),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = createLogger({ stream: ctx.stderr, level: settings.logLevel, now: ctx.now });
  if (settings.bringUpLoopback) {
    // A Nitro enclave boots with lo down; the gateway and its vsock bridges
    // listen on 127.0.0.1. A failure throws InitError, and the enclave stops.
    const lo = await bringUpLoopback();
    log.log("info", "enclave.loopback", { count: lo.alreadyUp ? 0 : 1 });
  }
  let attester: Attester;
  let devRoot: TrustAnchor | undefined;
  if (settings.attester === "simulated") {
    const ca = await loadOrCreateDevCa(path.resolve(ctx.cwd, settings.stateDir), { now: ctx.now });
    attester = new SimulatedNsm({ ca, now: ctx.now });
    // What a sealed identity's generator document must chain to in development.
    devRoot = trustAnchorFromPem(ca.rootPem, "development");
  } else {
    attester = NsmAttester.open();
  }
  // On Nitro the enclave's only network is vsock. The gateway serves TCP on
  // loopback; byte pipes (enclave/init/bridge.ts) bridge
  // vsock to it (inbound) and loopback to the parent's egress proxy
  // (outbound). They carry TLS only, like their counterparts on the host.
  // The outbound one exists before boot: KMS is reached through it.
  const bridges: Closer[] = [];
  let egressProxy = settings.egressProxy;
  let running: Running | Generated;
  try {
    if (egressProxy?.startsWith("vsock://")) {
      const outbound = await startBridge(`tcp://127.0.0.1:0`, egressProxy);
      bridges.push(outbound);
      egressProxy = `http://127.0.0.1:${(outbound.address as { port: number }).port}`;
    }
    if (settings.mode === "files") {
      running = await bootAndBridge(
        settings,
        { trustPolicyBytes: settings.trustPolicyBytes, operationsBytes: settings.operationsBytes, secrets: settings.secrets, sealedSecrets: settings.sealedSecrets ?? undefined },
        attester,
        egressProxy,
        log,
        ctx.now,
        devRoot,
      );
    } else {
      running = await runProvisioned(settings, attester, egressProxy, log, ctx, devRoot);
    }
  } catch (err) {
    await Promise.all(bridges.map((b) => b.close()));
    await attester.close();
    // Provisioning failures were logged by code and answered to the host;
    // the exit status is what the supervisor sees. Never serve after one.
    if (settings.mode === "provision") return EXIT.rejected;
    throw err;
  }
  if ("identity" in running) {
    // Identity mode ends here: the host has the sealed blob, and a gateway
    // was never started. Public hashes only on stdout, never the blob.
    print(ctx.stdout, JSON.stringify({ identity: "generated", tlsSpkiSha256: running.identity.tlsSpkiSha256, receiptKeys: running.identity.receiptKeys }));
    await Promise.all(bridges.map((b) => b.close()));
    await attester.close();
    return EXIT.ok;
  }
  if (running.inbound) bridges.push(running.inbound);
  print(ctx.stdout, JSON.stringify({ ready: true, ...readyFields(running) }));
  await (deps.stop ?? signalled());
  log.log("info", "enclave.stopping");
  await Promise.all(bridges.map((b) => b.close()));
  await running.enclave.close();
  return EXIT.ok;
}

/**
 * `--provision-listen`: wait for the host's one connection, boot from its
 * bundle with exactly the code path of the file inputs, and answer it.
 * A bundle with an `identity` request makes the shared identity instead
 * (enclave/provision/identity-mode.ts) and answers with it; the same
 * measured image and command line do both, so no separate image or flag
 * has to be trusted for it. Throws (after logging and replying) on every
 * failure.
 */
async function runProvisioned(
  settings: Extract<EnclaveSettings, { mode: "provision" }>,
  attester: Attester,
  egressProxy: string | undefined,
  log: Logger,
  ctx: CliContext,
  devRoot: TrustAnchor | undefined,
): Promise<Running | Generated> {
  const endpoint: Endpoint = settings.provision.listen;
  return provisionedBoot<Running | Generated>({
    limits: { ...DEFAULT_PROVISION_LIMITS, acceptTimeoutMs: settings.provision.acceptTimeoutMs },
    log,
    listen: async (onConnection) => {
      try {
        // Paused: nothing is read before the frame reader is in place. A
        // small backlog: one host is expected, the rest are refused.
        const server = await nodeTransport.listen(endpoint, (socket) => onConnection(socket), { pauseOnConnect: true, backlog: 8 });
        // Where the host should connect (the kernel's port when 0 was asked for).
        print(ctx.stdout, JSON.stringify({ provision: "listening", endpoint: formatEndpoint(server.address) }));
        return server;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        log.log("error", "provision.failed", { code: typeof code === "string" ? code : "ERR_PROVISION_LISTEN" });
        throw err;
      }
    },
    boot: async (bundle) => {
      if (bundle.identity) {
        const identity = await generateIdentityFromBundle({
          bundle,
          attester,
          log,
          now: ctx.now,
          ...(egressProxy && { egressProxy }),
          ...(settings.upstreamCa && { upstreamCa: settings.upstreamCa }),
          ...(devRoot && { devRoot }),
        });
        return { identity, value: { identity } };
      }
      const running = await bootAndBridge(settings, inputsFromBundle(bundle), attester, egressProxy, log, ctx.now, devRoot);
      return { ready: readyFields(running), value: running };
    },
  });
}

/**
 * The image's program (enclave/bin.ts): `main` with help and the exit codes
 * of `egw enclave` (infra/cli/main.ts run()), so both print and exit alike.
 * Errors print their code and message, never a stack or an input's content.
 */
export async function run(args: string[], ctx: CliContext, deps: EnclaveCommandDeps = {}): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    print(ctx.stdout, ENCLAVE_PROGRAM_USAGE);
    return EXIT.ok;
  }
  try {
    return await main(args, ctx, deps);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (err instanceof UsageError || typeof code === "string") {
      const message = (err as Error).message;
      print(ctx.stderr, `enclave: ${err instanceof UsageError || message.startsWith(code as string) ? message : `${String(code)}: ${message}`}`);
      return EXIT.usage;
    }
    throw err;
  }
}
