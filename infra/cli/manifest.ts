import { createHash, randomBytes } from "node:crypto";
import { attestedConfigHash } from "../../host/transport/codec/config-hash.js";
import { MAX_SEALED_FILE_BYTES } from "../../host/transport/codec/sealed-file.js";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { ClientError } from "../../attestation/client/errors.js";
import { releaseFieldProblem } from "../../attestation/manifest/release.js";
import { expiresAt, expiresProblem } from "../../attestation/manifest/rollback.js";
import { MANIFEST_SIGNATURE_SUFFIX } from "../../attestation/manifest/signature.js";
import { loadPolicyFile, parseManifest, type Manifest } from "../../attestation/client/policy.js";
import { DEFAULT_EIF_LIMITS, readEif } from "../review/eif/eif-reader.js";
import { EifError } from "../review/eif/errors.js";
import { measureEif } from "../review/eif/measure.js";
import { ReleaseError } from "../../attestation/manifest/errors.js";
import { createManifest, mergeManifest, releaseEntry, trustFromPolicyFile } from "../../attestation/manifest/create.js";
import { describeTrustConstraints, trustJson, type TrustSetting } from "../../attestation/client/trust-constraints.js";
import { MAX_TRUST_POLICY_BYTES } from "../../attestation/trust-policy.js";
import { serializeManifest } from "../../attestation/manifest/json.js";
import { loadSigningKey, signManifest } from "../../attestation/manifest/sign.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { parseMinSequenceFlag, readManifestPin } from "./manifest-pin.js";

export { MANIFEST_USAGE } from "./usage.js";

/**
 * `egw manifest create | sign | verify | show`: the release side of measurements
 * manifests. create writes the manifest the verifying client reads, with
 * PCRs computed from the EIF by infra/review/eif; sign and verify handle its
 * detached signature (attestation/manifest/signature.ts), always over
 * the file's exact bytes. The rollback fields (`sequence`, `expires`,
 * attestation/manifest/rollback.ts) are set by create, and checked by
 * sign (an expired manifest is not signed) and verify, at ctx.now().
 */
export async function manifestCommand(args: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "create":
      return createCommand(rest, ctx);
    case "sign":
      return signCommand(rest, ctx);
    case "verify":
      return verifyCommand(rest, ctx);
    case "show":
      return showCommand(rest, ctx);
    default:
      throw new UsageError(sub ? `unknown subcommand "manifest ${sub}"` : "manifest needs a subcommand: create, sign, verify or show");
  }
}

const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_KEY_BYTES = 16 * 1024;

/** A whole small file, refused above `max` before it is read. Problems are usage errors naming the flag. */
async function readSmallFile(file: string, max: number, what: string): Promise<Uint8Array> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new UsageError(`${what}: not a regular file`);
    if (info.size > max) throw new UsageError(`${what}: ${info.size} bytes, at most ${max}`);
    const bytes = new Uint8Array(await readFile(file));
    if (bytes.length > max) throw new UsageError(`${what}: grew beyond ${max} bytes while read`);
    return bytes;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** Writes next to the target, then renames: a reader never sees half a file. */
async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, bytes, { flag: "wx", mode: 0o644 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

// ─── create ──────────────────────────────────────────────────────────────

const RELEASE_FLAGS = { version: "--version", gitCommit: "--git-commit", imageDigest: "--image-digest", builtAt: "--built-at" } as const;

async function createCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    eif: { type: "string" },
    version: { type: "string" },
    "git-commit": { type: "string" },
    "image-digest": { type: "string" },
    config: { type: "string", multiple: true },
    "trust-policy": { type: "string" },
    operations: { type: "string", multiple: true },
    "pin-policy-hash": { type: "boolean" },
    "trust-any": { type: "boolean" },
    dev: { type: "boolean" },
    "config-sha256": { type: "string", multiple: true },
    "sealed-secrets": { type: "string" },
    label: { type: "string" },
    "built-at": { type: "string" },
    merge: { type: "string" },
    sequence: { type: "string" },
    expires: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("manifest create takes no positional arguments");
  const missing = (["eif", "version", "git-commit", "image-digest"] as const).filter((f) => values[f] === undefined);
  if (missing.length > 0) throw new UsageError(`manifest create needs ${missing.map((f) => `--${f}`).join(", ")}`);
  const release = { version: values.version!, gitCommit: values["git-commit"]!, imageDigest: values["image-digest"]!, builtAt: values["built-at"] };
  for (const [field, flag] of Object.entries(RELEASE_FLAGS) as [keyof typeof RELEASE_FLAGS, string][]) {
    const value = release[field];
    const problem = value === undefined ? undefined : releaseFieldProblem(field, value);
    if (problem) throw new UsageError(`${flag} "${String(value).slice(0, 80)}": ${problem}`);
  }
  const lifecycle = createLifecycle(values.sequence, values.expires, ctx);

  // --config named the single runtime config, gone since the trust policy /
  // operations split: its hash would match no enclave.
  if ((values.config ?? []).length > 0) {
    throw new UsageError(
      "--config is gone: the runtime config is now a trust policy and operations; give --trust-policy <file> (and --operations <file> to pin the deployment hash)",
    );
  }

  // The trust section: derived from the trust policy the deployment will
  // run, or "any" on purpose; never left out.
  if (values["trust-any"] && values["trust-policy"] !== undefined) throw new UsageError("--trust-any and --trust-policy contradict each other: give one");
  if (values["pin-policy-hash"] && values["trust-policy"] === undefined)
    throw new UsageError("--pin-policy-hash pins the hash of a --trust-policy file; give --trust-policy <file>");
  if (values.dev && values["trust-policy"] === undefined) throw new UsageError("--dev reads a --trust-policy file under development rules; give --trust-policy <file>");
  if (values["trust-policy"] === undefined && !values["trust-any"] && values.merge === undefined) {
    throw new UsageError(
      "manifest create needs a trust section: --trust-policy <trust-policy.json> (its origins, identity and key ARNs become the constraints), or --trust-any to constrain nothing on purpose",
    );
  }
  let trust: TrustSetting | undefined;
  let trustBytes: Uint8Array | undefined;
  if (values["trust-any"]) trust = "any";
  if (values["trust-policy"] !== undefined) {
    trustBytes = await readSmallFile(path.resolve(ctx.cwd, values["trust-policy"]), MAX_TRUST_POLICY_BYTES, `--trust-policy ${values["trust-policy"]}`);
    try {
      trust = trustFromPolicyFile(trustBytes, { dev: values.dev ?? false, pinHash: values["pin-policy-hash"] ?? false });
    } catch (err) {
      if (err instanceof ReleaseError)
        throw new UsageError(`--trust-policy ${values["trust-policy"]}: ${err.message}${values.dev ? "" : " (read under production rules; --dev for a development policy)"}`);
      throw err;
    }
  }

  // Deployment hashes: exactly what the enclave attests as config_sha256
  // (host/transport/codec/config-hash.ts): the trust policy, each operations file, and
  // the sealed-secrets file the host will hand in when given.
  // --config-sha256 gives a hash computed elsewhere.
  if ((values.operations ?? []).length > 0 && trustBytes === undefined)
    throw new UsageError("--operations is folded into the deployment hash with a --trust-policy file; give --trust-policy <file>");
  if (values["sealed-secrets"] !== undefined && (values.operations ?? []).length === 0) {
    throw new UsageError("--sealed-secrets is folded into the deployment hash of --trust-policy and --operations; give both");
  }
  const sealed =
    values["sealed-secrets"] === undefined
      ? undefined
      : await readSmallFile(path.resolve(ctx.cwd, values["sealed-secrets"]), MAX_SEALED_FILE_BYTES, `--sealed-secrets ${values["sealed-secrets"]}`);
  const configs: Uint8Array[] = [];
  for (const file of values.operations ?? []) {
    const bytes = await readSmallFile(path.resolve(ctx.cwd, file), MAX_CONFIG_BYTES, `--operations ${file}`);
    configs.push(attestedConfigHash(trustBytes!, bytes, sealed));
  }
  for (const h of values["config-sha256"] ?? []) {
    if (!/^[0-9a-fA-F]{64}$/.test(h)) throw new UsageError(`--config-sha256 "${h.slice(0, 80)}": expected 64 hex digits`);
    configs.push(new Uint8Array(Buffer.from(h, "hex")));
  }

  let existing: Manifest | undefined;
  if (values.merge !== undefined) {
    const bytes = await readSmallFile(path.resolve(ctx.cwd, values.merge), MAX_MANIFEST_BYTES, `--merge ${values.merge}`);
    try {
      existing = parseManifest(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (err) {
      throw new UsageError(`--merge ${values.merge}: ${err instanceof ClientError ? `${err.code}: ` : ""}${(err as Error).message}`);
    }
  }

  // One read: the bytes hashed into eifSha384 are the bytes measured.
  const eif = await readSmallFile(path.resolve(ctx.cwd, values.eif!), DEFAULT_EIF_LIMITS.maxFileBytes, `--eif ${values.eif}`);
  let entry;
  try {
    const measurements = measureEif(readEif(eif));
    entry = releaseEntry({
      measurements,
      eifSha384: new Uint8Array(createHash("sha384").update(eif).digest()),
      version: release.version,
      gitCommit: release.gitCommit,
      imageDigest: release.imageDigest,
      ...(release.builtAt !== undefined && { builtAt: release.builtAt }),
      ...(values.label !== undefined && { label: values.label }),
    });
  } catch (err) {
    if (err instanceof EifError) {
      print(ctx.stderr, `egw manifest create: INVALID EIF ${err.code}\n  ${err.message}`);
      return EXIT.rejected;
    }
    if (err instanceof ReleaseError) throw new UsageError(`${err.code}: ${err.message}`);
    throw err;
  }

  let manifest: Manifest;
  try {
    manifest = existing ? mergeManifest(existing, entry, configs, lifecycle, trust) : createManifest(entry, configs, lifecycle, trust);
  } catch (err) {
    if (!(err instanceof ReleaseError)) throw err;
    print(ctx.stderr, `egw manifest create: REFUSED ${err.code}\n  ${err.message}`);
    return EXIT.rejected;
  }
  if (manifest.trust === "any")
    print(ctx.stderr, 'egw manifest create: warning: trust "any": clients will not constrain where prompts and provider keys go (upstream origins, identity, key ARNs)');
  if (!entry.pcrs.has(8)) print(ctx.stderr, "egw manifest create: note: the EIF is unsigned, so no PCR8 is pinned");
  if (manifest.sequence === undefined || manifest.expires === undefined) {
    const missing = [manifest.sequence === undefined && "--sequence", manifest.expires === undefined && "--expires"].filter(Boolean).join(" or ");
    print(ctx.stderr, `egw manifest create: warning: no ${missing}: clients cannot tell this manifest from an older one, or stop using it (docs/REVIEW.md)`);
  }
  print(ctx.stdout, serializeManifest(manifest));
  return EXIT.ok;
}

/**
 * --sequence and --expires, checked as the client will check them; an
 * expiry that is not in the future at ctx.now() would publish a manifest
 * every client refuses.
 */
function createLifecycle(sequence: string | undefined, expires: string | undefined, ctx: CliContext): { sequence?: number; expires?: string } {
  const out: { sequence?: number; expires?: string } = {};
  // The same digits-only reading as a relying party's --policy-min-sequence.
  const n = parseMinSequenceFlag(sequence, "--sequence");
  if (n !== undefined) out.sequence = n;
  if (expires !== undefined) {
    const problem = expiresProblem(expires);
    if (problem) throw new UsageError(`--expires "${expires.slice(0, 80)}": ${problem}`);
    if (expiresAt(expires).getTime() <= ctx.now().getTime()) throw new UsageError(`--expires ${expires} is not in the future (now ${ctx.now().toISOString()})`);
    out.expires = expires;
  }
  return out;
}

function lifecycleLine(manifest: Manifest): string {
  return `  sequence ${manifest.sequence ?? "none"}; expires ${manifest.expires ?? "never"}`;
}

// ─── sign ────────────────────────────────────────────────────────────────

async function signCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    key: { type: "string" },
    out: { type: "string" },
  });
  if (positionals.length !== 1) throw new UsageError("manifest sign takes exactly one manifest file");
  if (values.key === undefined) throw new UsageError("manifest sign needs --key <private.pem> (EC P-384)");
  const file = positionals[0]!;
  const manifestPath = path.resolve(ctx.cwd, file);
  const bytes = await readSmallFile(manifestPath, MAX_MANIFEST_BYTES, file);
  // Refuse to sign what the client would refuse to read.
  let manifest: Manifest;
  try {
    manifest = parseManifest(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new UsageError(`${file}: ${err instanceof ClientError ? `${err.code}: ` : ""}${(err as Error).message}`);
  }
  if (manifest.expires !== undefined && expiresAt(manifest.expires).getTime() <= ctx.now().getTime()) {
    throw new UsageError(`${file}: ERR_MANIFEST_EXPIRED: it expired at ${manifest.expires}; clients would refuse it, so it is not signed`);
  }
  // "-": the key comes from standard input, so a key decrypted on the fly
  // (openssl pkey -in key.enc | egw manifest sign --key - …) never touches disk.
  const pem =
    values.key === "-" ? await readStdinKey(ctx) : Buffer.from(await readSmallFile(path.resolve(ctx.cwd, values.key), MAX_KEY_BYTES, `--key ${values.key}`)).toString("utf8");
  let signed;
  try {
    signed = await signManifest(bytes, loadSigningKey(pem));
  } catch (err) {
    if (err instanceof ReleaseError) throw new UsageError(`--key ${values.key}: ${err.message}`);
    throw err;
  }
  const out = values.out === undefined ? `${manifestPath}${MANIFEST_SIGNATURE_SUFFIX}` : path.resolve(ctx.cwd, values.out);
  try {
    await writeAtomically(out, signed.signature);
  } catch (err) {
    throw new UsageError(`${out}: cannot write (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (manifest.allowDebug || manifest.devRootPem !== undefined) {
    print(ctx.stderr, "egw manifest sign: warning: this manifest allows debug enclaves or names a development root; it is not a production manifest");
  }
  print(
    ctx.stdout,
    [
      `signed ${file} (${bytes.length} bytes, sha256 ${createHash("sha256").update(bytes).digest("hex")})`,
      `  signature  ${path.relative(ctx.cwd, out) || out}`,
      `  key        sha256:${signed.keyId}   (relying parties pin this: --policy-pubkey-sha256 ${signed.keyId})`,
      `  entries    ${manifest.measurements.map((m) => `"${m.label}"`).join(", ")}`,
      `  sequence   ${manifest.sequence ?? "none"}; expires ${manifest.expires ?? "never"}`,
    ].join("\n"),
  );
  return EXIT.ok;
}

async function readStdinKey(ctx: CliContext): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.stdin) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += buf.length;
    if (total > MAX_KEY_BYTES) throw new UsageError(`--key -: more than ${MAX_KEY_BYTES} bytes on standard input`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}

// ─── verify ──────────────────────────────────────────────────────────────

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function verifyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    pubkey: { type: "string" },
    "pubkey-sha256": { type: "string" },
    sig: { type: "string" },
    "policy-min-sequence": { type: "string" },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("manifest verify takes exactly one manifest file");
  const minSequence = parseMinSequenceFlag(values["policy-min-sequence"], "--policy-min-sequence");
  const pin = await readManifestPin(values.pubkey, values["pubkey-sha256"], { pem: "--pubkey", sha256: "--pubkey-sha256" }, ctx);
  if (!pin) throw new UsageError("manifest verify needs the signer's key: --pubkey <public.pem> or --pubkey-sha256 <hex of its SPKI>");
  const file = positionals[0]!;
  const manifestPath = path.resolve(ctx.cwd, file);
  try {
    const info = await stat(manifestPath);
    if (!info.isFile()) throw new UsageError(`${file}: not a regular file`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  // The same function relying parties call, so this accepts exactly what they accept.
  let loaded;
  try {
    loaded = await loadPolicyFile(manifestPath, {
      now: ctx.now,
      ...(minSequence !== undefined && { minSequence }),
      signedBy: { spkiSha256: pin, ...(values.sig !== undefined && { signatureFile: path.resolve(ctx.cwd, values.sig) }) },
    });
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    if (values.json) print(ctx.stdout, JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2));
    else print(ctx.stdout, `INVALID ${err.code}\n  ${err.message}`);
    return EXIT.rejected;
  }
  const { manifest, signature } = loaded;
  if (values.json) {
    print(ctx.stdout, JSON.stringify({ valid: true, keySha256: signature!.keyId, ...manifestFields(manifest) }, null, 2));
    return EXIT.ok;
  }
  const lines = [`VALID signature by key sha256:${signature!.keyId} over ${file}`, ...manifestLines(manifest)];
  print(ctx.stdout, lines.join("\n"));
  return EXIT.ok;
}

function entriesOf(manifest: Manifest) {
  return manifest.measurements.map((m) => ({
    label: m.label,
    pcrs: Object.fromEntries([...m.pcrs].map(([i, v]) => [String(i), hex(v)])),
    release: m.release ?? null,
  }));
}

/** The manifest's fields in JSON output (manifest verify, manifest show). */
function manifestFields(manifest: Manifest) {
  return {
    sequence: manifest.sequence ?? null,
    expires: manifest.expires ?? null,
    measurements: entriesOf(manifest),
    trust: trustJson(manifest.trust),
    configSha256: manifest.configSha256?.map(hex) ?? null,
    maxAgeSeconds: manifest.maxAgeSeconds ?? null,
    allowDebug: manifest.allowDebug ?? false,
  };
}

/** The manifest as a person reads it: lifecycle, entries, the trust section, warnings. */
function manifestLines(manifest: Manifest): string[] {
  const lines = [lifecycleLine(manifest)];
  for (const e of entriesOf(manifest)) {
    lines.push(`  "${e.label}"`);
    for (const [i, v] of Object.entries(e.pcrs)) lines.push(`    PCR${i.padEnd(2)} ${v}`);
    if (e.release) {
      const r = e.release;
      lines.push(`    release ${r.version}, commit ${r.gitCommit}`, `    image   ${r.imageDigest}`);
      if (r.eifSha384) lines.push(`    eif     sha384 ${r.eifSha384}`);
      if (r.builtAt) lines.push(`    built   ${r.builtAt}`);
    }
  }
  lines.push(...describeTrustConstraints(manifest.trust).map((l) => `  ${l}`));
  lines.push(manifest.configSha256 ? `  config sha256: ${manifest.configSha256.map(hex).join(", ")}` : "  config sha256: not restricted");
  if (manifest.allowDebug) lines.push("  WARNING: allowDebug is true (debug-mode enclaves, whose memory the parent can read, are accepted)");
  if (manifest.devRootPem !== undefined) lines.push(`  WARNING: names a development root (${manifest.devRootPem}); not a production manifest`);
  return lines;
}

// ─── show ────────────────────────────────────────────────────────────────

/**
 * Prints a manifest as the client reads it (entries, trust section, config
 * hashes), checking no signature: `manifest verify` is for that. Exit 1 when
 * the client would refuse the file.
 */
async function showCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, { json: { type: "boolean" } });
  if (positionals.length !== 1) throw new UsageError("manifest show takes exactly one manifest file");
  const file = positionals[0]!;
  const bytes = await readSmallFile(path.resolve(ctx.cwd, file), MAX_MANIFEST_BYTES, file);
  let manifest: Manifest;
  try {
    manifest = parseManifest(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    const code = err instanceof ClientError ? err.code : "ERR_MANIFEST_INVALID";
    if (values.json) print(ctx.stdout, JSON.stringify({ valid: false, code, message: (err as Error).message }, null, 2));
    else print(ctx.stdout, `INVALID ${code}\n  ${(err as Error).message}`);
    return EXIT.rejected;
  }
  if (values.json) {
    print(ctx.stdout, JSON.stringify({ valid: true, signatureChecked: false, ...manifestFields(manifest) }, null, 2));
    return EXIT.ok;
  }
  print(ctx.stdout, [`manifest ${file} (signature NOT checked; use egw manifest verify)`, ...manifestLines(manifest)].join("\n"));
  return EXIT.ok;
}
