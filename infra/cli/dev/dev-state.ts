import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { parseTrustPolicy } from "../../../attestation/trust-policy.js";

/**
 * What `egw dev` keeps in its state dir across runs, so that a restart
 * serves the same trust policy bytes (and hash, which the dev manifest
 * pins): the client token, the local model's port and the local KMS key id.
 */
export const TRUST_POLICY_FILE = "trust-policy.json";
export const OPERATIONS_FILE = "operations.json";
export const MANIFEST_FILE = "manifest.json";
export const TOKEN_FILE = "client-token";

/** The development client token: kept across runs, 0600. */
export async function loadOrCreateToken(stateDir: string): Promise<{ token: string; file: string }> {
  const file = path.join(stateDir, TOKEN_FILE);
  try {
    const token = (await fs.readFile(file, "utf8")).trim();
    if (/^egw-dev-[0-9a-f]{32}$/.test(token)) return { token, file };
  } catch {
    // Absent: made below.
  }
  const token = `egw-dev-${randomBytes(16).toString("hex")}`;
  await fs.writeFile(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}

/** The local model's port in an earlier trust policy of this state dir, to keep the policy's bytes (and hash) across restarts. */
export async function previousModelPort(file: string): Promise<number | undefined> {
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
    // Not one egw dev wrote (or damaged): it is replaced.
    return undefined;
  }
}

/**
 * The local KMS key's id, derived from the development root so that it is
 * the same at every start in this state dir (and differs between state
 * dirs): the trust policy names the key's full ARN.
 */
export function devKeyId(rootPem: string): string {
  const h = createHash("sha256").update("egw dev: local KMS key id\0").update(rootPem).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Writes `bytes` to `file` unless it already holds exactly them; true when written. */
export async function writeIfChanged(file: string, bytes: Uint8Array): Promise<boolean> {
  try {
    if (Buffer.from(await fs.readFile(file)).equals(Buffer.from(bytes))) return false;
  } catch {
    // Absent: written below.
  }
  await fs.writeFile(file, bytes, { mode: 0o644 });
  return true;
}
