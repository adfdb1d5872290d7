import path from "node:path";
import { loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { NsmAttester } from "../../attestation/nsm/nsm-attester.js";
import type { Attester } from "../../attestation/attester.js";
import { bootEnclave } from "../../enclave/boot.js";
import { loadEnclaveSettings } from "../../enclave/config.js";
import { createLogger } from "../../enclave/observability/log.js";
import { staticSecrets } from "../../enclave/secrets.js";
export { ENCLAVE_USAGE } from "./usage.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export async function enclaveCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    config: { type: "string" },
    listen: { type: "string" },
    dev: { type: "boolean" },
    "state-dir": { type: "string" },
    "egress-proxy": { type: "string" },
    "upstream-ca": { type: "string" },
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
  const enclave = await bootEnclave({
    configBytes: settings.configBytes,
    attester,
    secrets: staticSecrets(settings.secrets),
    log,
    now: ctx.now,
    listen: settings.listen,
    hostnames: settings.hostnames,
    ...(settings.egressProxy && { egressProxy: settings.egressProxy }),
    ...(settings.upstreamCa && { upstreamCa: settings.upstreamCa }),
  });
  print(ctx.stdout, JSON.stringify({ ready: true, port: enclave.server.port, configSha256: Buffer.from(enclave.configSha256).toString("hex"), tlsSpkiSha256: Buffer.from(enclave.identity.tls.spkiSha256).toString("hex") }));
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log.log("info", "enclave.stopping");
  await enclave.close();
  return EXIT.ok;
}
