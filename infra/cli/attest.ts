import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { NSM_MAX_NONCE, NSM_MAX_PUBLIC_KEY, NSM_MAX_USER_DATA } from "../../attestation/attester.js";
import { MAX_DOCUMENT_BYTES } from "../../attestation/cose-sign1.js";
import { AttestationError } from "../../attestation/errors.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation, type VerificationResult } from "../../attestation/verify.js";
import type { VerifyOptions } from "../../attestation/verify-options.js";
export { ATTEST_USAGE } from "./usage.js";
import { EXIT, parseFlags as parse, print, UsageError, type CliContext } from "./context.js";
import { decodeDocumentText, parseHexOption, readInput } from "./input.js";

export const DEFAULT_STATE_DIR = ".egw-dev";

/**
 * The development CA (and with it @peculiar/x509 and its reflect polyfill,
 * about 150 ms of module loading) only for `attest issue --dev` and
 * `attest dev-root`: `attest verify`, `inspect` and `receipt verify`, which
 * import this file, never need it.
 */
const devCa = () => import("../../attestation/dev/dev-ca.js");

export async function attestCommand(args: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "verify":
      return verifyCommand(rest, ctx);
    case "issue":
      return issueCommand(rest, ctx);
    case "dev-root":
      return devRootCommand(rest, ctx);
    default:
      throw new UsageError(sub ? `unknown subcommand "attest ${sub}"` : "attest needs a subcommand");
  }
}

// An explicit offset is required: a bare local time would make the verdict
// depend on the machine's time zone.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function parseAt(value: string | undefined, ctx: CliContext): Date {
  if (value === undefined) return ctx.now();
  const date = new Date(value);
  if (!ISO_INSTANT.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(`--at "${value}" must be an ISO 8601 instant with Z or an offset, e.g. 2024-09-07T14:37:40Z`);
  }
  return date;
}

export function parsePcrFlags(values: string[] | undefined): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  for (const value of values ?? []) {
    const match = /^(\d{1,2})=(?:0x)?([0-9a-fA-F]+)$/.exec(value);
    if (!match) throw new UsageError(`--pcr "${value}" must be <index>=<hex>`);
    const index = Number(match[1]);
    if (index > 31) throw new UsageError(`--pcr index ${index} is not in 0..31`);
    if (pcrs.has(index)) throw new UsageError(`--pcr ${index} given twice`);
    const bytes = parseHexOption(match[2]!, "pcr", 48);
    if (bytes.length !== 48) throw new UsageError(`--pcr ${index} must be 48 bytes (96 hex digits), got ${bytes.length}`);
    pcrs.set(index, bytes);
  }
  return pcrs;
}

export async function readTrustAnchor(file: string, ctx: CliContext) {
  let pem: string;
  try {
    pem = await readFile(path.resolve(ctx.cwd, file), "utf8");
  } catch (err) {
    throw new UsageError(`--root ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    return trustAnchorFromPem(pem, `caller-supplied root ${path.basename(file)}`);
  } catch {
    throw new UsageError(`--root ${file}: not a PEM certificate`);
  }
}

async function verifyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(args, {
    at: { type: "string" },
    root: { type: "string" },
    pcr: { type: "string", multiple: true },
    nonce: { type: "string" },
    "user-data": { type: "string" },
    "public-key": { type: "string" },
    "max-age": { type: "string" },
    "allow-debug": { type: "boolean" },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("attest verify takes exactly one document (a path or -)");
  const raw = await readInput(positionals[0]!, ctx.stdin, ctx.cwd, MAX_DOCUMENT_BYTES);
  const { bytes } = decodeDocumentText(raw);
  const pcrs = parsePcrFlags(values.pcr);
  const options: VerifyOptions = {
    currentDate: parseAt(values.at, ctx),
    expectedPcrs: pcrs.size > 0 ? pcrs : "any",
    allowDebug: values["allow-debug"] === true,
  };
  if (values.root !== undefined) options.trustedRoots = [await readTrustAnchor(values.root, ctx)];
  if (values.nonce !== undefined) options.nonce = parseHexOption(values.nonce, "nonce", NSM_MAX_NONCE);
  if (values["user-data"] !== undefined) options.userData = parseHexOption(values["user-data"], "user-data", NSM_MAX_USER_DATA);
  if (values["public-key"] !== undefined) options.publicKey = parseHexOption(values["public-key"], "public-key", NSM_MAX_PUBLIC_KEY);
  if (values["max-age"] !== undefined) {
    const text = values["max-age"];
    if (!/^\d{1,12}(\.\d{1,3})?$/.test(text)) throw new UsageError("--max-age must be a non-negative number of seconds");
    const seconds = Number(text);
    options.maxAgeMs = seconds * 1000;
  }

  let result: VerificationResult;
  try {
    result = await verifyAttestation(bytes, options);
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    if (values.json) print(ctx.stdout, JSON.stringify({ accepted: false, code: err.code, action: err.action, message: err.message }, null, 2));
    else print(ctx.stdout, `REJECTED ${err.code}\n  ${err.message}`);
    return EXIT.rejected;
  }
  if (values.json) {
    print(ctx.stdout, JSON.stringify({ accepted: true, ...resultJson(result) }, null, 2));
  } else {
    const lines = [
      `ACCEPTED ${result.moduleId} (${result.debug ? "DEBUG MODE" : "debug mode off"}, root ${result.root.name}${result.root.production ? "" : ", NOT the AWS root"})`,
      ...result.steps.map((s) => `  ${s.status === "passed" ? "ok " : "-- "} ${s.step.padEnd(11)} ${s.detail}`),
    ];
    print(ctx.stdout, lines.join("\n"));
  }
  return EXIT.ok;
}

export function resultJson(result: VerificationResult) {
  const hex = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));
  return {
    moduleId: result.moduleId,
    timestamp: result.timestamp.toISOString(),
    debug: result.debug,
    root: result.root,
    chainFromCache: result.chainFromCache,
    pcrs: Object.fromEntries([...result.document.pcrs].map(([i, v]) => [i, hex(v)])),
    publicKey: hex(result.document.publicKey),
    userData: hex(result.document.userData),
    nonce: hex(result.document.nonce),
    chain: result.chain.map((c) => ({ ...c, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() })),
    steps: result.steps,
  };
}

async function issueCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(args, {
    dev: { type: "boolean" },
    nonce: { type: "string" },
    "user-data": { type: "string" },
    "public-key": { type: "string" },
    pcr: { type: "string", multiple: true },
    "state-dir": { type: "string" },
    out: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("attest issue takes no positional arguments");
  // Only the simulated NSM can be reached from a CLI on a dev machine; on
  // Nitro the enclave service issues documents through /dev/nsm itself.
  if (!values.dev) throw new UsageError("attest issue needs --dev (documents from the simulated NSM, signed by the development CA)");
  if (values.out === undefined && ctx.stdout.isTTY) {
    throw new UsageError("refusing to write a binary document to a terminal; redirect stdout or pass --out <file>");
  }
  const request = {
    ...(values.nonce !== undefined && { nonce: parseHexOption(values.nonce, "nonce", NSM_MAX_NONCE) }),
    ...(values["user-data"] !== undefined && { userData: parseHexOption(values["user-data"], "user-data", NSM_MAX_USER_DATA) }),
    ...(values["public-key"] !== undefined && { publicKey: parseHexOption(values["public-key"], "public-key", NSM_MAX_PUBLIC_KEY) }),
  };
  const stateDir = path.resolve(ctx.cwd, values["state-dir"] ?? DEFAULT_STATE_DIR);
  const { loadOrCreateDevCa } = await devCa();
  const ca = await loadOrCreateDevCa(stateDir, { now: ctx.now });
  const pcrs = parsePcrFlags(values.pcr);
  const { SimulatedNsm } = await import("../../attestation/dev/simulated-nsm.js");
  const nsm = new SimulatedNsm({ ca, now: ctx.now, ...(pcrs.size > 0 && { pcrs }) });
  try {
    const doc = await nsm.attest(request);
    if (values.out !== undefined) await writeFile(path.resolve(ctx.cwd, values.out), doc);
    else ctx.stdout.write(doc);
  } finally {
    await nsm.close();
  }
  ctx.stderr.write(`issued a development document (not valid in production); trust root: ${path.join(stateDir, (await devCa()).DEV_ROOT_FILE)}\n`);
  return EXIT.ok;
}

async function devRootCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(args, { "state-dir": { type: "string" } });
  if (positionals.length > 0) throw new UsageError("attest dev-root takes no positional arguments");
  const stateDir = path.resolve(ctx.cwd, values["state-dir"] ?? DEFAULT_STATE_DIR);
  const { loadOrCreateDevCa } = await devCa();
  const ca = await loadOrCreateDevCa(stateDir, { now: ctx.now });
  print(ctx.stdout, ca.rootPem);
  return EXIT.ok;
}
