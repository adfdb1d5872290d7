import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ReleaseError } from "../../attestation/manifest/errors.js";
import { parseKeyPinHex, publicKeySpkiFromPem, spkiSha256Hex } from "../../attestation/manifest/sign.js";
import { UsageError, type CliContext } from "./context.js";

/**
 * The manifest signing-key pin from the command line: a PEM public key
 * file, the hex SHA-256 of its SPKI, or both (then they must name the same
 * key). Returns the 32-byte SHA-256, or undefined when neither flag was
 * given. Every problem is a usage error: a pin that cannot be read never
 * degrades to "no pin".
 */
export async function readManifestPin(
  pemFile: string | undefined,
  sha256Hex: string | undefined,
  flags: { pem: string; sha256: string },
  ctx: CliContext,
): Promise<Uint8Array | undefined> {
  let fromPem: Uint8Array | undefined;
  let fromHex: Uint8Array | undefined;
  try {
    if (sha256Hex !== undefined) fromHex = parseKeyPinHex(sha256Hex);
  } catch (err) {
    if (err instanceof ReleaseError) throw new UsageError(`${flags.sha256}: ${err.message}`);
    throw err;
  }
  if (pemFile !== undefined) {
    const file = path.resolve(ctx.cwd, pemFile);
    let pem: string;
    try {
      const info = await stat(file);
      if (!info.isFile() || info.size > 16 * 1024) throw new UsageError(`${flags.pem} ${pemFile}: not a PEM public key file`);
      pem = await readFile(file, "utf8");
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`${flags.pem} ${pemFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    try {
      fromPem = new Uint8Array(Buffer.from(spkiSha256Hex(publicKeySpkiFromPem(pem)), "hex"));
    } catch (err) {
      if (err instanceof ReleaseError) throw new UsageError(`${flags.pem} ${pemFile}: ${err.message}`);
      throw err;
    }
  }
  if (fromPem && fromHex && !Buffer.from(fromPem).equals(Buffer.from(fromHex))) {
    throw new UsageError(`${flags.pem} and ${flags.sha256} name different keys (the PEM's SPKI hashes to ${Buffer.from(fromPem).toString("hex")})`);
  }
  return fromPem ?? fromHex;
}

/**
 * A manifest sequence from the command line: the relying party's rollback
 * pin (`--policy-min-sequence`, attestation/manifest/rollback.ts) or
 * a new manifest's `--sequence`. Decimal digits only, 1..2^53-1, or a usage
 * error naming the flag.
 */
export function parseMinSequenceFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[1-9]\d{0,15}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} "${value.slice(0, 40)}": expected an integer 1..${Number.MAX_SAFE_INTEGER}`);
  return n;
}
