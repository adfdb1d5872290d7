import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import https from "node:https";
import { EncryptCommand } from "@aws-sdk/client-kms";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import { parseTrustPolicy, secretBindings, trustPolicySha256, upstreamOrigins } from "../../attestation/trust-policy.js";
import { DEV_ROOT_FILE, loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { defaultCodeBundle, measureCodeBundle } from "../../attestation/dev/simulated-nsm.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { startMockKms, type MockKms } from "../dev/local-kms.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { DEV_USAGE } from "./usage.js";

/**
 * `egw dev` (npm start): the whole stack on one machine, with the same
 * process split as on Nitro:
 *   local model (HTTPS)  ←TLS─ host egress proxy ←CONNECT─ enclave ←TLS─ host ingress relay ← client
 * Each part is its own `egw` process, started with the same commands an
 * operator runs. Provider keys found in the environment are sealed under a
 * local KMS; no process receives them in the clear.
 *
 * The state dir holds the two inputs, written as an operator and a key owner
 * would: `trust-policy.json` (providers, the KMS key, the identity mode;
 * attested and served to clients) and `operations.json` (the client token's
 * hash, the PROXY switch). The trust policy is deterministic JSON, rewritten
 * only when its content must change (another provider key in the
 * environment), and the local model keeps its port and the local KMS its key
 * id across restarts, so the policy's hash, which the dev manifest pins,
 * stays put. `manifest.json` is the dev manifest: the simulated PCRs as the
 * attestation shows them, the development root, and a trust section.
 */
const EGW = fileURLToPath(new URL("./egw.js", import.meta.url));
const READY_TIMEOUT_MS = 30_000;

/** Real providers used when their key is in the environment: first-party kinds, fixed to their official origins. */
const PROVIDERS = [
  { env: "OPENAI_API_KEY", name: "openai", kind: "openai" },
  { env: "ANTHROPIC_API_KEY", name: "anthropic", kind: "anthropic" },
  { env: "GEMINI_API_KEY", name: "gemini", kind: "gemini" },
  { env: "XAI_API_KEY", name: "xai", kind: "xai" },
] as const;

export const TRUST_POLICY_FILE = "trust-policy.json";
export const OPERATIONS_FILE = "operations.json";
export const MANIFEST_FILE = "manifest.json";

interface Child {
  name: string;
  process: ChildProcess;
  ready: Record<string, unknown>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function start(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EGW, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
    void fs.open(path.join(logDir, `${name}.log`), "a", 0o600).then((handle) => {
      const log = handle.createWriteStream();
      child.stderr!.pipe(log);
    });
    let buffer = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not become ready within ${READY_TIMEOUT_MS / 1000} s (see ${path.join(logDir, `${name}.log`)})`));
    }, READY_TIMEOUT_MS);
    const onData = (data: Buffer) => {
      buffer += data.toString("utf8");
      const nl = buffer.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      try {
        resolve({ name, process: child, ready: JSON.parse(buffer.slice(0, nl)) as Record<string, unknown> });
      } catch {
        reject(new Error(`${name} printed an unreadable ready line`));
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before it was ready (see ${path.join(logDir, `${name}.log`)})`));
    });
  });
}

/**
 * The measurements to print: fetched through the relay like a client would,
 * and verified against the development root before they are shown.
 */
async function readMeasurements(ingress: string, devRootFile: string, now: Date): Promise<Record<string, string>> {
  const doc = await new Promise<Uint8Array>((resolve, reject) => {
    // The certificate is checked through the document below, not by a CA.
    const req = https.get(`${ingress}/v1/attestation`, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? resolve(new Uint8Array(Buffer.concat(chunks))) : reject(new Error(`attestation answered ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error("attestation timed out")));
    req.on("error", reject);
  });
  const anchor = trustAnchorFromPem(await fs.readFile(devRootFile, "utf8"), "development");
  const result = await verifyAttestation(doc, { currentDate: now, expectedPcrs: "any", trustedRoots: [anchor] });
  const out: Record<string, string> = {};
  for (const i of [0, 1, 2]) out[String(i)] = Buffer.from(result.document.pcrs.get(i) ?? new Uint8Array()).toString("hex");
  return out;
}

async function stopAll(children: Child[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.process.exitCode !== null || c.process.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.process.kill("SIGKILL"), 10_000);
          c.process.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          c.process.kill("SIGTERM");
        }),
    ),
  );
}

/** The local model's port in an earlier trust policy of this state dir, to keep the policy's bytes (and hash) across restarts. */
async function previousModelPort(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const policy = parseTrustPolicy(new TextEncoder().encode(text), { dev: true });
    const local = policy.providers.find((p) => p.name === "local");
    const m = local && /^https:\/\/127\.0\.0\.1:(\d{1,5})\/v1$/.exec(local.baseUrl);
    return m ? Number(m[1]) : undefined;
  } catch {
    // Not one egw dev wrote (or damaged): it is replaced below.
    return undefined;
  }
}

/**
 * The local KMS key's id, derived from the development root so that it is
 * the same at every start in this state dir (and differs between state
 * dirs): the trust policy names the key's full ARN.
 */
function devKeyId(rootPem: string): string {
  const h = createHash("sha256").update("egw dev: local KMS key id\0").update(rootPem).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Writes `bytes` to `file` unless it already holds exactly them; true when written. */
async function writeIfChanged(file: string, bytes: Uint8Array): Promise<boolean> {
  try {
    if (Buffer.from(await fs.readFile(file)).equals(Buffer.from(bytes))) return false;
  } catch {
    // Absent: written below.
  }
  await fs.writeFile(file, bytes, { mode: 0o644 });
  return true;
}

/** The development trust policy: deterministic JSON (fixed field order, 2-space indent, one trailing newline). */
export function devTrustPolicy(input: { modelPort: number; localKey: boolean; providers: readonly { env: string; name: string; kind: string }[]; kmsKeyArn: string }): string {
  const providers = [
    {
      name: "local",
      kind: "openai-compatible",
      baseUrl: `https://127.0.0.1:${input.modelPort}/v1`,
      // Optional: a key for the local model, so key handling can be exercised without a real provider.
      ...(input.localKey && { secret: "EGW_DEV_LOCAL_KEY" }),
      capabilities: { chat: true, embeddings: true, images: true },
    },
    ...input.providers.map((p) => ({ name: p.name, kind: p.kind, secret: p.env })),
  ];
  const usesSecrets = providers.some((p) => "secret" in p);
  const policy = {
    version: 1,
    providers,
    models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } },
    prefixRouting: true,
    ...(usesSecrets && { secrets: { kmsKeyArn: input.kmsKeyArn } }),
    identity: { mode: "ephemeral" },
  };
  return `${JSON.stringify(policy, null, 2)}\n`;
}

export async function devCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    "state-dir": { type: "string" },
    port: { type: "string" },
    "capture-dir": { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("dev takes no positional arguments");
  const portText = values.port ?? "8443";
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new UsageError("--port must be a TCP port (0 picks a free one)");
  const stateDir = path.resolve(ctx.cwd, values["state-dir"] ?? ".egw-dev");
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const logDir = path.join(stateDir, "logs");
  await fs.mkdir(logDir, { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateDevCa(stateDir, { now: ctx.now });

  // The development client token: kept across runs, 0600.
  const tokenFile = path.join(stateDir, "client-token");
  let token: string;
  try {
    token = (await fs.readFile(tokenFile, "utf8")).trim();
    if (!/^egw-dev-[0-9a-f]{32}$/.test(token)) throw new Error("bad token file");
  } catch {
    token = `egw-dev-${randomBytes(16).toString("hex")}`;
    await fs.writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  }

  const children: Child[] = [];
  let kms: MockKms | undefined;
  const baseEnv: NodeJS.ProcessEnv = { ...ctx.env };
  for (const p of PROVIDERS) delete baseEnv[p.env];
  delete baseEnv.EGW_DEV_LOCAL_KEY;
  if (values["capture-dir"] !== undefined) await fs.mkdir(path.resolve(ctx.cwd, values["capture-dir"]), { recursive: true });
  try {
    // 1. The model process (what a provider is in production).
    const certFile = path.join(stateDir, "local-model-cert.pem");
    const localKey = ctx.env.EGW_DEV_LOCAL_KEY ?? "";
    const keyCheck = localKey ? ["--require-key-sha256", createHash("sha256").update(localKey).digest("hex")] : [];
    const trustFile = path.join(stateDir, TRUST_POLICY_FILE);
    const startModel = (port: number) => start("local-model", ["local-model", "--listen", `tcp://127.0.0.1:${port}`, "--cert-out", certFile, ...keyCheck], baseEnv, logDir);
    // The same port as last time when it is free, so the trust policy (which names it) keeps its hash.
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
    const modelHost = `127.0.0.1:${modelPort}`;

    // 2. Provider keys from the environment are sealed under a local KMS,
    //    which releases them only to an enclave whose attestation chains to
    //    the development root and whose PCR0 is this code's; the enclave
    //    never receives them in its environment.
    const available = PROVIDERS.filter((p) => (ctx.env[p.env] ?? "") !== "");
    const bundle = await defaultCodeBundle();
    const pcr0 = await measureCodeBundle(bundle.root, { include: bundle.include });
    kms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: pcr0 } }, now: ctx.now, keyId: devKeyId(ca.rootPem) });
    const kmsHost = new URL(kms.endpoint).host;

    // 3. The trust policy (the key owner's: where prompts and keys may go)
    //    and the operations file (the operator's: the client token's hash).
    const trustText = devTrustPolicy({ modelPort, localKey: localKey !== "", providers: available, kmsKeyArn: kms.keyArn });
    const trustBytes = new TextEncoder().encode(trustText);
    // The enclave parses it again; this is for the secrets' origins and the manifest.
    const policy = parseTrustPolicy(trustBytes, { dev: true });
    await writeIfChanged(trustFile, trustBytes);
    const operationsFile = path.join(stateDir, OPERATIONS_FILE);
    const operations = {
      version: 1,
      clients: [{ name: "dev", tokenSha256: createHash("sha256").update(token).digest("hex"), models: ["*"] }],
      // The relay tells the enclave each client's address (PROXY v2), for per-address limits.
      proxyProtocol: true,
    };
    await writeIfChanged(operationsFile, new TextEncoder().encode(`${JSON.stringify(operations, null, 2)}\n`));

    // Each key is sealed for the one origin the trust policy sends it to (enclave/secrets/secret-context.ts).
    const keys: Record<string, string> = { EGW_DEV_LOCAL_KEY: localKey, ...Object.fromEntries(available.map((p) => [p.env, ctx.env[p.env]!])) };
    const toSeal: Record<string, { value: string; origin: string }> = {};
    for (const b of secretBindings(policy)) toSeal[b.name] = { value: keys[b.name]!, origin: b.origin };
    const sealedFile = path.join(stateDir, "sealed-secrets.json");
    const sealed: Record<string, string> = {};
    const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
    try {
      for (const [name, { value, origin }] of Object.entries(toSeal)) {
        const EncryptionContext = { ...providerSecretContext(name, origin) };
        const out = await operator.send(new EncryptCommand({ KeyId: kms.keyArn, Plaintext: Buffer.from(value), EncryptionContext }));
        sealed[name] = Buffer.from(out.CiphertextBlob!).toString("base64");
      }
    } finally {
      operator.destroy();
    }
    if (Object.keys(sealed).length > 0) {
      await fs.writeFile(sealedFile, `${JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: sealed }, null, 2)}\n`, { mode: 0o644 });
    }

    // 4. The host: ingress relay and egress proxy (allowlist derived from the
    //    trust policy). It dials the enclave per connection, so it can start first.
    const enclavePort = await freePort();
    const capture = values["capture-dir"] !== undefined ? ["--capture-dir", path.resolve(ctx.cwd, values["capture-dir"])] : [];
    const host = await start(
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
        "--allow-private",
        modelHost,
        "--allow-private",
        kmsHost,
        ...capture,
      ],
      baseEnv,
      logDir,
    );
    children.push(host);
    const egress = String(host.ready.egress).replace(/^tcp:/, "http:");

    // 5. The enclave: no provider key in its environment, only the sealed
    //    file and (dummy) KMS credentials, which are useless without its attestation.
    const enclaveEnv: NodeJS.ProcessEnv = { ...baseEnv, AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey };
    const enclave = await start(
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
        "--upstream-ca",
        certFile,
        ...(Object.keys(sealed).length > 0 ? ["--sealed-secrets", sealedFile, "--kms-endpoint", kms.endpoint] : []),
      ],
      enclaveEnv,
      logDir,
    );
    children.push(enclave);

    const ingress = String(host.ready.listen).replace(/^tcp:/, "https:");
    const devRoot = path.join(stateDir, DEV_ROOT_FILE);
    const measurements = await readMeasurements(ingress, devRoot, ctx.now());
    const policySha256 = Buffer.from(trustPolicySha256(trustBytes)).toString("hex");
    // The enclave attests the hash of the bytes it read; a different one means the file changed under us.
    if (enclave.ready.policySha256 !== policySha256)
      throw new Error(`the enclave attests trust policy ${String(enclave.ready.policySha256)}, not ${policySha256} (was ${trustFile} changed meanwhile?)`);
    // 6. The dev manifest: what a relying party pins for this stack.
    const manifestFile = path.join(stateDir, MANIFEST_FILE);
    const manifest = {
      version: 1,
      measurements: [{ label: "egw dev (simulated NSM)", pcrs: measurements }],
      trust: { upstreamOrigins: upstreamOrigins(policy), identity: { mode: "ephemeral" }, policySha256: [policySha256] },
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
      configSha256: enclave.ready.configSha256,
      policySha256,
      tlsSpkiSha256: enclave.ready.tlsSpkiSha256,
      pcrs: measurements,
      providers: ["local", ...available.map((p) => p.name)],
      sealedSecrets: Object.keys(sealed),
      pids: Object.fromEntries(children.map((c) => [c.name, c.process.pid])),
    };
    print(ctx.stdout, JSON.stringify(ready));
    print(
      ctx.stdout,
      [
        "",
        `enclave-gateway development stack is up at ${ingress}/v1 (host relay → enclave → egress proxy → providers)`,
        `  providers: local (deterministic, NOT an LLM)${available.length ? `, ${available.map((p) => p.name).join(", ")}` : " — set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or XAI_API_KEY to add real ones"}`,
        ...Object.entries(measurements).map(([i, hex]) => `  PCR${i}: ${hex}`),
        `  upstream origins:       ${upstreamOrigins(policy).join(", ")}`,
        `  trust policy sha256:    ${policySha256}  (${trustFile})`,
        `  attested config sha256: ${String(enclave.ready.configSha256)}`,
        `  TLS key (SPKI sha256):  ${String(enclave.ready.tlsSpkiSha256)}`,
        `  dev manifest:           ${manifestFile}`,
        "",
        "Verify it (measurements, trust policy and development root from the dev manifest):",
        `  npx egw verify ${ingress} --policy ${manifestFile}`,
        "Use it through the local verifying proxy (every answer checked):",
        `  npx egw proxy --upstream ${ingress} --policy ${manifestFile} --listen 127.0.0.1:8787 &`,
        `  curl -s http://127.0.0.1:8787/v1/chat/completions -H "authorization: Bearer $(cat ${tokenFile})" \\`,
        `       -H 'content-type: application/json' -d '{"model":"local","messages":[{"role":"user","content":"hello"}]}'`,
        "Or from TypeScript with the openai SDK:",
        `  import OpenAI from "openai";`,
        `  import { createVerifiedFetch, loadPolicyFile } from "enclave-gateway/client";`,
        `  const token = process.env.EGW_TOKEN; // the contents of ${tokenFile}`,
        `  const { policy } = await loadPolicyFile(${JSON.stringify(manifestFile)}, { now: () => new Date() });`,
        `  const openai = new OpenAI({ baseURL: "${ingress}/v1", apiKey: token, fetch: createVerifiedFetch({ baseURL: "${ingress}", policy }) });`,
        "",
        `Logs: ${logDir}. Ctrl-C stops everything.`,
      ].join("\n"),
    );

    const exited = new Promise<string>((resolve) => {
      for (const c of children) c.process.once("exit", (code) => resolve(`${c.name} exited (code ${code})`));
    });
    const stopped = new Promise<string>((resolve) => {
      process.once("SIGINT", () => resolve("stop"));
      process.once("SIGTERM", () => resolve("stop"));
    });
    const why = await Promise.race([exited, stopped]);
    await stopAll(children);
    await kms.close();
    if (why !== "stop") {
      print(ctx.stderr, `egw dev: ${why}; stopped the others (logs in ${logDir})`);
      return EXIT.rejected;
    }
    return EXIT.ok;
  } catch (err) {
    await stopAll(children);
    await kms?.close();
    print(ctx.stderr, `egw dev: ${(err as Error).message}`);
    return EXIT.rejected;
  }
}
