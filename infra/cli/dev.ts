import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { DEV_ROOT_FILE, loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { defaultCodeBundle, measureCodeBundle } from "../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { hostPort, parseTrustPolicy, trustPolicySha256, upstreamOrigins, type TrustPolicy } from "../../attestation/trust-policy.js";
import { startMockKms, type MockKms } from "../dev/local-kms.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { bannerText } from "./dev/banner.js";
import { startChild, stopAll, freePort, childFailure, type Child } from "./dev/child-process.js";
import { checkTogether, operationsWithDevClient } from "./dev/config-operations.js";
import { prepareTrustPolicy, type LocalKmsKey } from "./dev/config-trust-policy.js";
import { DevError } from "./dev/dev-error.js";
import { devKeyId, loadOrCreateToken, MANIFEST_FILE, OPERATIONS_FILE, previousModelPort, TRUST_POLICY_FILE, writeIfChanged } from "./dev/dev-state.js";
import { devTrustPolicy, ENV_PROVIDERS, LOCAL_KEY_ENV } from "./dev/generated-policy.js";
import { sealWithLocalKms, secretsFromEnv, type SecretToSeal } from "./dev/provider-secrets.js";
import { readMeasurements } from "./dev/measurements.js";
import { readDevConfig } from "./dev/user-config.js";

export { DEV_USAGE } from "./usage.js";
export { devTrustPolicy } from "./dev/generated-policy.js";
export { MANIFEST_FILE, OPERATIONS_FILE, TRUST_POLICY_FILE } from "./dev/dev-state.js";

/**
 * `egw dev` (npm start): the whole stack on one machine, with the same
 * process split as on Nitro:
 *   provider (or local model) ←TLS─ host egress proxy ←CONNECT─ enclave ←TLS─ host ingress relay ← client
 * Each part is its own `egw` process, started with the same commands an
 * operator runs (dev/child-process.ts). Provider keys are sealed under a
 * local KMS; no process receives them in the clear (dev/provider-secrets.ts).
 *
 * Two sources for the two inputs an enclave boots with:
 *  - none given: a generated trust policy (dev/generated-policy.ts) with
 *    the local model and each provider whose key is in the environment,
 *    plus default model routes; operations with the state dir's token;
 *  - `--config <file>` (dev/user-config.ts): the user's own trust policy
 *    and operations, parsed under the development rules (base-URL
 *    overrides to local mocks allowed), checked before anything starts.
 * Both are written to the state dir (`trust-policy.json`, `operations.json`)
 * and only rewritten when their content changes, and the local model keeps
 * its port and the local KMS its key id across restarts, so the policy's
 * hash, which the dev manifest (`manifest.json`) pins, stays put.
 */

/** What the enclave boots with, and what egw dev must start for it. */
interface Plan {
  trustBytes: Uint8Array;
  policy: TrustPolicy;
  operationsBytes: Uint8Array;
  secrets: SecretToSeal[];
  kmsKey: LocalKmsKey;
  /** "generated" or the --config file. */
  source: string;
  notes: string[];
  /** host:port pairs the egress proxy may dial although they are private (loopback mocks, the local model, the local KMS). */
  privateEgress: string[];
  /** The local model's certificate, for the enclave's upstream TLS (generated policy only). */
  upstreamCa?: string;
}

const DEV_ACCOUNT = "111122223333";
const DEV_REGION = "us-east-1";

function devOperations(tokenSha256: string): Uint8Array {
  const operations = {
    version: 1,
    clients: [{ name: "dev", tokenSha256, models: ["*"] }],
    // The relay tells the enclave each client's address (PROXY v2), for per-address limits.
    proxyProtocol: true,
  };
  return new TextEncoder().encode(`${JSON.stringify(operations, null, 2)}\n`);
}

/** Provider origins on loopback or a private literal (local mocks): the egress proxy refuses those unless told. */
function privateProviderEgress(policy: TrustPolicy): string[] {
  const out: string[] = [];
  for (const p of policy.providers) {
    if (p.kind === "local") continue;
    const url = new URL(p.baseUrl);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (net.isIP(host) !== 0 || host === "localhost" || host.endsWith(".localhost")) out.push(hostPort(url));
  }
  return out;
}

async function planFromConfig(file: string, env: CliContext["env"], tokenSha256: string, devKey: { arn: string; key: LocalKmsKey }): Promise<Plan> {
  const config = await readDevConfig(file);
  const prepared = prepareTrustPolicy(config.trustPolicy, devKey);
  const operationsBytes = operationsWithDevClient(config.operations, tokenSha256);
  checkTogether(prepared.bytes, operationsBytes, config.trustPolicy, config.operations);
  const secrets = secretsFromEnv(prepared.policy, env, config.secretsEnv);
  return {
    trustBytes: prepared.bytes,
    policy: prepared.policy,
    operationsBytes,
    secrets,
    kmsKey: prepared.kmsKey,
    source: config.trustPolicy.ownFile ? `${config.trustPolicy.file} (from --config ${file})` : `--config ${file}`,
    notes: prepared.notes,
    privateEgress: privateProviderEgress(prepared.policy),
  };
}

export async function devCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    "state-dir": { type: "string" },
    port: { type: "string" },
    "capture-dir": { type: "string" },
    config: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("dev takes no positional arguments");
  const portText = values.port ?? "8443";
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new UsageError("--port must be a TCP port (0 picks a free one)");
  const stateDir = path.resolve(ctx.cwd, values["state-dir"] ?? ".egw-dev");
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const logDir = path.join(stateDir, "logs");
  await fs.mkdir(logDir, { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateDevCa(stateDir, { now: ctx.now });
  const { token, file: tokenFile } = await loadOrCreateToken(stateDir);
  const tokenSha256 = createHash("sha256").update(token).digest("hex");
  const devKey = { key: { region: DEV_REGION, account: DEV_ACCOUNT, keyId: devKeyId(ca.rootPem) } } as { arn: string; key: LocalKmsKey };
  devKey.arn = `arn:aws:kms:${DEV_REGION}:${DEV_ACCOUNT}:key/${devKey.key.keyId}`;
  const trustFile = path.join(stateDir, TRUST_POLICY_FILE);
  const operationsFile = path.join(stateDir, OPERATIONS_FILE);

  const children: Child[] = [];
  let kms: MockKms | undefined;
  // No child gets a provider key in its environment: every variable a key may come from is removed.
  const baseEnv: NodeJS.ProcessEnv = { ...ctx.env };
  for (const p of ENV_PROVIDERS) delete baseEnv[p.env];
  delete baseEnv[LOCAL_KEY_ENV];
  if (values["capture-dir"] !== undefined) await fs.mkdir(path.resolve(ctx.cwd, values["capture-dir"]), { recursive: true });
  // Ctrl-C is ours from the first child on: a signal that arrived before a
  // listener existed would kill this process with Node's default action and
  // leave the children running (it did, right after the ready line).
  // During the boot it stops what is running; the pending start then fails
  // and is reported as a stop, not as a boot error.
  let stopRequested = false;
  let onStop: () => void = () => {};
  const stopped = new Promise<"stop">((resolve) => {
    onStop = () => {
      stopRequested = true;
      resolve("stop");
      void stopAll(children);
    };
  });
  process.once("SIGINT", onStop);
  process.once("SIGTERM", onStop);
  /** Between boot steps: a stop asked for during the last one ends the boot here. */
  const unlessStopped = () => {
    if (stopRequested) throw new DevError("ERR_DEV_BOOT", "stopped");
  };
  const releaseSignals = () => {
    process.off("SIGINT", onStop);
    process.off("SIGTERM", onStop);
  };
  try {
    // 1. What the enclave boots with. A user's file is checked whole before anything starts.
    let plan: Plan;
    if (values.config !== undefined) {
      plan = await planFromConfig(path.resolve(ctx.cwd, values.config), ctx.env, tokenSha256, devKey);
    } else {
      // The local model (what a provider is in production), on the same port as last time when it is free.
      const certFile = path.join(stateDir, "local-model-cert.pem");
      const localKey = ctx.env[LOCAL_KEY_ENV] ?? "";
      const keyCheck = localKey ? ["--require-key-sha256", createHash("sha256").update(localKey).digest("hex")] : [];
      const startModel = (port: number) => startChild("local-model", ["local-model", "--listen", `tcp://127.0.0.1:${port}`, "--cert-out", certFile, ...keyCheck], baseEnv, logDir);
      const previousPort = await previousModelPort(trustFile);
      let model: Child;
      try {
        model = await startModel(previousPort ?? 0);
      } catch (err) {
        if (previousPort === undefined) throw err;
        model = await startModel(0);
      }
      children.push(model);
      const modelPort = Number(model.ready.port);
      const available = ENV_PROVIDERS.filter((p) => (ctx.env[p.env] ?? "") !== "");
      const trustBytes = new TextEncoder().encode(devTrustPolicy({ modelPort, localKey: localKey !== "", providers: available, kmsKeyArn: devKey.arn }));
      const policy = parseTrustPolicy(trustBytes, { dev: true });
      plan = {
        trustBytes,
        policy,
        operationsBytes: devOperations(tokenSha256),
        secrets: secretsFromEnv(policy, ctx.env),
        kmsKey: devKey.key,
        source: "generated",
        notes: [],
        privateEgress: [`127.0.0.1:${modelPort}`],
        upstreamCa: certFile,
      };
    }
    for (const s of plan.secrets) {
      delete baseEnv[s.env];
      delete baseEnv[s.name];
    }
    await writeIfChanged(trustFile, plan.trustBytes);
    await writeIfChanged(operationsFile, plan.operationsBytes);

    // 2. Provider keys are sealed under a local KMS, which releases them only
    //    to an enclave whose attestation chains to the development root and
    //    whose PCR0 is this code's; the enclave never receives them in its environment.
    const sealedFile = path.join(stateDir, "sealed-secrets.json");
    let sealed: Record<string, string> = {};
    if (plan.secrets.length > 0) {
      const bundle = await defaultCodeBundle();
      const pcr0 = await measureCodeBundle(bundle.root, { include: bundle.include });
      kms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: pcr0 } }, now: ctx.now, ...plan.kmsKey });
      sealed = await sealWithLocalKms(kms, plan.secrets);
      await fs.writeFile(sealedFile, `${JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: sealed }, null, 2)}\n`, { mode: 0o644 });
      plan.privateEgress.push(new URL(kms.endpoint).host);
    }

    // 3. The host: ingress relay and egress proxy (allowlist derived from the
    //    trust policy). It dials the enclave per connection, so it can start first.
    unlessStopped();
    const enclavePort = await freePort();
    const capture = values["capture-dir"] !== undefined ? ["--capture-dir", path.resolve(ctx.cwd, values["capture-dir"])] : [];
    const host = await startChild(
      "host",
      [
        "host",
        "--listen",
        `tcp://127.0.0.1:${portText}`,
        "--enclave",
        `tcp://127.0.0.1:${enclavePort}`,
        "--egress-listen",
        "tcp://127.0.0.1:0",
        "--trust-policy",
        trustFile,
        "--operations",
        operationsFile,
        ...[...new Set(plan.privateEgress)].flatMap((e) => ["--allow-private", e]),
        ...capture,
      ],
      baseEnv,
      logDir,
    );
    children.push(host);
    unlessStopped();
    const egress = String(host.ready.egress).replace(/^tcp:/, "http:");

    // 4. The enclave: no provider key in its environment, only the sealed
    //    file and (dummy) KMS credentials, which are useless without its attestation.
    const enclaveEnv: NodeJS.ProcessEnv = kms ? { ...baseEnv, AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey } : baseEnv;
    const enclave = await startChild(
      "enclave",
      [
        "enclave",
        "--dev",
        "--trust-policy",
        trustFile,
        "--operations",
        operationsFile,
        "--listen",
        `tcp://127.0.0.1:${enclavePort}`,
        "--state-dir",
        stateDir,
        "--egress-proxy",
        egress,
        ...(plan.upstreamCa ? ["--upstream-ca", plan.upstreamCa] : []),
        ...(kms ? ["--sealed-secrets", sealedFile, "--kms-endpoint", kms.endpoint] : []),
      ],
      enclaveEnv,
      logDir,
    );
    children.push(enclave);
    unlessStopped();

    const ingress = String(host.ready.listen).replace(/^tcp:/, "https:");
    const devRoot = path.join(stateDir, DEV_ROOT_FILE);
    const measurements = await readMeasurements(ingress, devRoot, ctx.now());
    const policySha256 = Buffer.from(trustPolicySha256(plan.trustBytes)).toString("hex");
    // The enclave attests the hash of the bytes it read; a different one means the file changed under us.
    if (enclave.ready.policySha256 !== policySha256)
      throw new DevError("ERR_DEV_BOOT", `the enclave attests trust policy ${String(enclave.ready.policySha256)}, not ${policySha256} (was ${trustFile} changed meanwhile?)`);
    // 5. The dev manifest: what a relying party pins for this stack.
    const manifestFile = path.join(stateDir, MANIFEST_FILE);
    const manifest = {
      version: 1,
      measurements: [{ label: "egw dev (simulated NSM)", pcrs: measurements }],
      trust: { upstreamOrigins: upstreamOrigins(plan.policy), identity: { mode: "ephemeral" }, policySha256: [policySha256] },
      // Relative to the manifest: both live in the state dir.
      devRootPem: DEV_ROOT_FILE,
    };
    await fs.writeFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
    const ready = {
      ready: true,
      url: `${ingress}/v1`,
      stateDir,
      devRoot,
      tokenFile,
      trustPolicy: trustFile,
      operations: operationsFile,
      manifest: manifestFile,
      ...(values.config !== undefined && { config: path.resolve(ctx.cwd, values.config) }),
      configSha256: enclave.ready.configSha256,
      policySha256,
      tlsSpkiSha256: enclave.ready.tlsSpkiSha256,
      pcrs: measurements,
      providers: plan.policy.providers.map((p) => p.name),
      models: Object.keys(plan.policy.models),
      sealedSecrets: Object.keys(sealed),
      pids: Object.fromEntries(children.map((c) => [c.name, c.process.pid])),
    };
    print(ctx.stdout, JSON.stringify(ready));
    print(
      ctx.stdout,
      bannerText({
        origin: ingress,
        policy: plan.policy,
        source: plan.source,
        notes: plan.notes,
        measurements,
        trustFile,
        policySha256,
        configSha256: String(enclave.ready.configSha256),
        tlsSpkiSha256: String(enclave.ready.tlsSpkiSha256),
        manifestFile,
        tokenFile,
        logDir,
        sealedSecrets: Object.keys(sealed),
      }),
    );

    const exited = new Promise<string>((resolve) => {
      for (const c of children) {
        c.process.once("exit", (code, signal) => {
          const said = childFailure(c.tail());
          resolve(`${c.name} exited (${signal ? `signal ${signal}` : `code ${code}`})${said ? `: ${said}` : ""}`);
        });
      }
    });
    const why = await Promise.race([exited, stopped]);
    await stopAll(children);
    await kms?.close();
    releaseSignals();
    if (why !== "stop") {
      print(ctx.stderr, `egw dev: ${why}; stopped the others (logs in ${logDir})`);
      return EXIT.rejected;
    }
    return EXIT.ok;
  } catch (err) {
    await stopAll(children);
    await kms?.close();
    releaseSignals();
    if (stopRequested) {
      print(ctx.stderr, "egw dev: stopped before the stack was up");
      return EXIT.ok;
    }
    if (err instanceof DevError) {
      print(ctx.stderr, `egw dev: ${err.code}: ${err.message}`);
      return err.code === "ERR_DEV_BOOT" ? EXIT.rejected : EXIT.usage;
    }
    const errno = (err as NodeJS.ErrnoException).code;
    print(ctx.stderr, `egw dev: ${typeof errno === "string" && !(err as Error).message.includes(errno) ? `${errno}: ` : ""}${(err as Error).message}`);
    return EXIT.rejected;
  }
}
