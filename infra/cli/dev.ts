import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import https from "node:https";
import { EncryptCommand } from "@aws-sdk/client-kms";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
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
 * operator runs. Provider keys found in the environment go to the enclave
 * process only; the host processes never receive them.
 */
const EGW = fileURLToPath(new URL("./egw.js", import.meta.url));
const READY_TIMEOUT_MS = 30_000;

/** Real providers used when their key is in the environment. */
const PROVIDERS = [
  { env: "OPENAI_API_KEY", name: "openai", kind: "openai", host: "api.openai.com:443" },
  { env: "ANTHROPIC_API_KEY", name: "anthropic", kind: "anthropic", host: "api.anthropic.com:443" },
  { env: "GEMINI_API_KEY", name: "gemini", kind: "gemini", host: "generativelanguage.googleapis.com:443" },
  { env: "XAI_API_KEY", name: "xai", kind: "openai-compatible", host: "api.x.ai:443", baseUrl: "https://api.x.ai/v1" },
] as const;

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
    const model = await start("local-model", ["local-model", "--listen", "tcp://127.0.0.1:0", "--cert-out", certFile, ...keyCheck], baseEnv, logDir);
    children.push(model);
    const modelHost = `127.0.0.1:${String(model.ready.port)}`;

    // 2. Provider keys from the environment are sealed under a local KMS,
    //    which releases them only to an enclave whose attestation chains to
    //    the development root and whose PCR0 is this code's; the enclave
    //    never receives them in its environment.
    const available = PROVIDERS.filter((p) => (ctx.env[p.env] ?? "") !== "");
    const bundle = await defaultCodeBundle();
    const pcr0 = await measureCodeBundle(bundle.root, { include: bundle.include });
    kms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: pcr0 } }, now: ctx.now });
    const kmsHost = new URL(kms.endpoint).host;
    // Each key is sealed for the one origin its provider sends it to (enclave/secrets/secret-context.ts).
    const toSeal: Record<string, { value: string; origin: string }> = {};
    for (const p of available) toSeal[p.env] = { value: ctx.env[p.env]!, origin: `https://${p.host}` };
    if (localKey) toSeal.EGW_DEV_LOCAL_KEY = { value: localKey, origin: `https://${modelHost}` };
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

    // 3. The runtime config (attested by hash, with the sealed file).
    const config = {
      version: 1,
      providers: [
        {
          name: "local",
          kind: "openai-compatible",
          baseUrl: `https://${modelHost}/v1`,
          capabilities: { chat: true, embeddings: true, images: true },
          // Optional: a key for the local model, so key handling can be exercised without a real provider.
          ...(localKey && { secret: "EGW_DEV_LOCAL_KEY" }),
        },
        ...available.map((p) => ({ name: p.name, kind: p.kind, secret: p.env, ...("baseUrl" in p && { baseUrl: p.baseUrl }) })),
      ],
      models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } },
      prefixRouting: true,
      // The relay tells the enclave each client's address (PROXY v2), for per-address limits.
      proxyProtocol: true,
      egressAllowlist: [modelHost, kmsHost, ...available.map((p) => p.host)],
      clients: [{ name: "dev", tokenSha256: createHash("sha256").update(token).digest("hex"), models: ["*"] }],
    };
    const configFile = path.join(stateDir, "runtime-config.json");
    await fs.writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });

    // 3. The host: ingress relay and egress proxy. It dials the enclave per
    //    connection, so it can start first.
    const enclavePort = await freePort();
    const capture = values["capture-dir"] !== undefined ? ["--capture-dir", path.resolve(ctx.cwd, values["capture-dir"])] : [];
    const host = await start(
      "host",
      ["host", "--listen", `tcp://127.0.0.1:${portText}`, "--enclave", `tcp://127.0.0.1:${enclavePort}`, "--egress-listen", "tcp://127.0.0.1:0", "--config", configFile, "--allow-private", modelHost, "--allow-private", kmsHost, ...capture],
      baseEnv,
      logDir,
    );
    children.push(host);
    const egress = String(host.ready.egress).replace(/^tcp:/, "http:");

    // 4. The enclave: no provider key in its environment, only the sealed
    //    file and (dummy) KMS credentials, which are useless without its attestation.
    const enclaveEnv: NodeJS.ProcessEnv = { ...baseEnv, AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey };
    const enclave = await start(
      "enclave",
      ["enclave", "--dev", "--config", configFile, "--listen", `tcp://127.0.0.1:${enclavePort}`, "--state-dir", stateDir, "--egress-proxy", egress, "--upstream-ca", certFile, ...(Object.keys(sealed).length > 0 ? ["--sealed-secrets", sealedFile, "--kms-endpoint", kms.endpoint] : [])],
      enclaveEnv,
      logDir,
    );
    children.push(enclave);

    const ingress = String(host.ready.listen).replace(/^tcp:/, "https:");
    const devRoot = path.join(stateDir, DEV_ROOT_FILE);
    const measurements = await readMeasurements(ingress, devRoot, ctx.now());
    const ready = {
      ready: true,
      url: `${ingress}/v1`,
      stateDir,
      devRoot,
      tokenFile,
      configSha256: enclave.ready.configSha256,
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
        `  attested config sha256: ${String(enclave.ready.configSha256)}`,
        `  TLS key (SPKI sha256):  ${String(enclave.ready.tlsSpkiSha256)}`,
        "",
        "Verify it:",
        `  npx egw verify ${ingress} --dev-root ${devRoot}`,
        "Use it through the local verifying proxy (every answer checked):",
        `  npx egw proxy --upstream ${ingress} --dev-root ${devRoot} --listen 127.0.0.1:8787 &`,
        `  curl -s http://127.0.0.1:8787/v1/chat/completions -H "authorization: Bearer $(cat ${tokenFile})" \\`,
        `       -H 'content-type: application/json' -d '{"model":"local","messages":[{"role":"user","content":"hello"}]}'`,
        "Or from TypeScript with the openai SDK:",
        `  new OpenAI({ baseURL: "${ingress}/v1", apiKey: token, fetch: createVerifiedFetch({ baseURL: "${ingress}", policy }) })`,
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
