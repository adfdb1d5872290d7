import { EncryptCommand, KMSClient } from "@aws-sdk/client-kms";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { providerSecretContext, SecretContextError } from "../../enclave/secrets/secret-context.js";
import { parseSealedFile } from "../../host/transport/codec/sealed-file.js";
import { KeyArnError, parseKeyArn } from "../review/kms/key-arn.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { SEAL_USAGE } from "./usage.js";

/**
 * `egw seal`: the operator encrypts a provider key under the KMS key whose
 * policy only releases it to the measured enclave (see `egw kms-policy`),
 * and adds it to the sealed-secrets file the host hands in. The value is
 * read from standard input, never from argv (which `ps` shows), and is
 * never printed.
 *
 * The ciphertext is bound to where the secret may go: Encrypt carries the
 * encryption context of enclave/secrets/secret-context.ts (purpose, name,
 * origin), which the enclave rebuilds from its trust policy for Decrypt, so
 * a host that relabels the blob or points the provider elsewhere gets
 * InvalidCiphertextException. `--key-id` must be the key ARN the trust
 * policy names (infra/review/kms/key-arn.ts), and http: origins need --allow-http.
 */
const MAX_SECRET_BYTES = 4096; // KMS Encrypt takes at most 4 KiB of plaintext

async function readSecret(stdin: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += b.length;
    if (total > MAX_SECRET_BYTES + 2) throw new UsageError(`the secret on stdin is larger than ${MAX_SECRET_BYTES} bytes`);
    chunks.push(b);
  }
  // One trailing newline (echo, heredoc) is not part of the key.
  const value = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (value.length === 0) throw new UsageError("no secret on standard input");
  return Buffer.from(value, "utf8");
}

export async function sealCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    "key-id": { type: "string" },
    region: { type: "string" },
    name: { type: "string" },
    origin: { type: "string" },
    "allow-http": { type: "boolean" },
    out: { type: "string" },
    "kms-endpoint": { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("seal takes no positional arguments (the secret comes on stdin)");
  const name = values.name;
  const out = values.out;
  if (!values["key-id"] || !name || !values.origin || !out) throw new UsageError("seal needs --key-id <key ARN>, --name, --origin <https origin> and --out");
  let keyId: string;
  let region: string;
  try {
    const arn = parseKeyArn(values["key-id"]);
    keyId = arn.arn;
    region = values.region ?? arn.region;
    if (region !== arn.region) throw new UsageError(`--region ${region.slice(0, 32)} is not the key ARN's region (${arn.region})`);
  } catch (err) {
    if (err instanceof KeyArnError) throw new UsageError(`--key-id: ${err.message}`);
    throw err;
  }
  let context: Readonly<Record<string, string>>;
  try {
    context = providerSecretContext(name, values.origin, { dev: values["allow-http"] === true });
  } catch (err) {
    if (err instanceof SecretContextError) throw new UsageError(err.code === "ERR_SECRET_CONTEXT_NAME" ? `--name: ${err.message}` : `--origin: ${err.message}`);
    throw err;
  }
  const file = path.resolve(ctx.cwd, out);

  // Start from the existing file, if any, so secrets accumulate.
  let existing: Record<string, string> = {};
  try {
    const bytes = new Uint8Array(await readFile(file));
    const parsed = parseSealedFile(bytes);
    if (parsed.keyId !== keyId || parsed.region !== region) throw new UsageError(`${out} is sealed under another key or region; use a new file`);
    existing = JSON.parse(Buffer.from(bytes).toString("utf8")).secrets as Record<string, string>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new UsageError(`${out} exists but is not a sealed-secrets file`);
  }

  const secret = await readSecret(ctx.stdin);
  const client = new KMSClient({ region, ...(values["kms-endpoint"] && { endpoint: values["kms-endpoint"] }) });
  let blob: Uint8Array;
  try {
    const result = await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: secret, EncryptionAlgorithm: "SYMMETRIC_DEFAULT", EncryptionContext: { ...context } }));
    if (!result.CiphertextBlob) throw new Error("KMS returned no ciphertext");
    blob = result.CiphertextBlob;
  } catch (err) {
    // KMS's message may name the key; never the plaintext, which it does not see echoed.
    print(ctx.stderr, `egw seal: KMS Encrypt failed (${(err as { name?: string }).name ?? "error"})`);
    return EXIT.rejected;
  } finally {
    secret.fill(0);
    client.destroy();
  }
  const content = `${JSON.stringify({ version: 1, keyId, region, secrets: { ...existing, [name]: Buffer.from(blob).toString("base64") } }, null, 2)}\n`;
  parseSealedFile(new TextEncoder().encode(content)); // what we write must load
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode: 0o644 });
  await rename(tmp, file);
  const count = Object.keys(existing).length + (name in existing ? 0 : 1);
  print(ctx.stderr, `sealed ${name} for ${context["egw:origin"]} into ${out} (${count} secret(s)); the trust policy must name this origin for it`);
  return EXIT.ok;
}
