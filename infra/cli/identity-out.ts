import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { parseSealedFile, type SealedFile } from "../../host/transport/codec/sealed-file.js";
import { EgwError, isEgwError } from "../../attestation/egw-error.js";

/**
 * Writes the identity the enclave made into a sealed-secrets file, for
 * `egw host --generate-identity`.
 *
 * The file is read and checked with the parser the enclave opens it with
 * (host/transport/codec/sealed-file.ts, a shared codec), on purpose: that
 * module handles nothing secret (the file is host-visible ciphertext), and a file that
 * the replicas would refuse must fail here, before anyone rolls it out, not
 * at their boot. It is loaded only in identity mode.
 */
export type IdentityFileErrorCode =
  | "ERR_IDENTITY_FILE_CHECK" // the composed file does not parse back to the same content (a bug, or a bad answer)
  | "ERR_IDENTITY_FILE_WRITE"; // the temporary file could not be written or renamed into place

export class IdentityFileError extends EgwError<IdentityFileErrorCode> {
  override readonly name = "IdentityFileError";

  constructor(code: IdentityFileErrorCode, message: string, options?: { cause?: unknown }) {
    // A file that does not read back is not rolled out; a failed write is the machine's.
    super(code, message, code === "ERR_IDENTITY_FILE_CHECK" ? "reject" : "stop", options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

export interface IdentityField {
  dataKey: string;
  iv: string;
  sealed: string;
  /** The generating enclave's attestation document (enclave/secrets/identity-provenance.ts). */
  attestation: string;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** The input file, parsed as the enclave parses it (throws its SealedSecretsError codes). */
export function readSealedFile(bytes: Uint8Array): SealedFile {
  return parseSealedFile(bytes);
}

/**
 * The input file with its `identity` replaced (or added): 2-space JSON, a
 * final newline, fields in the order version, keyId, region, secrets,
 * identity, secrets in file order. Every value is re-emitted from the
 * parsed form, which is canonical (base64 without alternatives, no escapes),
 * so everything but `identity` means exactly what it meant before.
 */
export function sealedFileWithIdentity(input: SealedFile, identity: IdentityField): Uint8Array {
  const secrets: Record<string, string> = {};
  // Secret names start with a capital letter, so object key order is insertion order.
  for (const [name, blob] of input.secrets) secrets[name] = b64(blob);
  const out = {
    version: input.version,
    keyId: input.keyId,
    region: input.region,
    secrets,
    identity: { dataKey: identity.dataKey, iv: identity.iv, sealed: identity.sealed, attestation: identity.attestation },
  };
  const bytes = new TextEncoder().encode(`${JSON.stringify(out, null, 2)}\n`);
  let check: SealedFile;
  try {
    check = parseSealedFile(bytes);
  } catch (err) {
    throw new IdentityFileError("ERR_IDENTITY_FILE_CHECK", `the new sealed-secrets file would be refused by the enclave (${isEgwError(err) ? err.code : "error"})`, { cause: err });
  }
  const same =
    check.keyId === input.keyId &&
    check.region === input.region &&
    check.secrets.size === input.secrets.size &&
    [...input.secrets].every(([name, blob]) => b64(check.secrets.get(name) ?? new Uint8Array()) === b64(blob)) &&
    check.identity !== undefined &&
    b64(check.identity.dataKey) === identity.dataKey &&
    b64(check.identity.iv) === identity.iv &&
    b64(check.identity.sealed) === identity.sealed &&
    b64(check.identity.attestation) === identity.attestation;
  if (!same) throw new IdentityFileError("ERR_IDENTITY_FILE_CHECK", "the new sealed-secrets file does not parse back to the same keys and identity");
  return bytes;
}

/**
 * Temporary file in the same directory, flushed, then renamed over `file`:
 * a reader (or a crash) sees the old file or the new one, never half of
 * one. The temporary name is random and created exclusively, so a
 * pre-placed symlink is not followed.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString("hex")}.tmp`);
  try {
    const handle = await open(tmp, "wx", 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new IdentityFileError("ERR_IDENTITY_FILE_WRITE", `cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`, { cause: err });
  }
  // Make the rename itself durable; a directory that cannot be synced (some
  // filesystems) still has the file, so this is best effort.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort, see above
  }
}
