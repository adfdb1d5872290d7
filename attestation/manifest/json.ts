import { RELEASE_KEYS } from "./release.js";
import { parseManifest, type Manifest, type MeasurementSet } from "../client/policy.js";
import { trustJson } from "../client/trust-constraints.js";

/**
 * Writes a manifest in the one layout the release tools produce: the
 * schema's key order (attestation/client/policy.ts), PCRs by index,
 * lower-case hex, 2-space indentation and a final newline. Equal manifests
 * give equal bytes, so a rebuilt manifest can be compared with `cmp` and a
 * signature over it is reproducible as far as the bytes go.
 *
 * The text is parsed back before it is returned: the tools never emit a
 * manifest the verifying client would refuse.
 */
export function serializeManifest(manifest: Manifest): string {
  const out: Record<string, unknown> = {
    version: 1,
  };
  if (manifest.sequence !== undefined) out.sequence = manifest.sequence;
  if (manifest.expires !== undefined) out.expires = manifest.expires;
  out.measurements = manifest.measurements.map(entryJson);
  out.trust = trustJson(manifest.trust);
  if (manifest.configSha256 !== undefined) out.configSha256 = manifest.configSha256.map(hex);
  if (manifest.maxAgeSeconds !== undefined) out.maxAgeSeconds = manifest.maxAgeSeconds;
  if (manifest.allowDebug !== undefined) out.allowDebug = manifest.allowDebug;
  if (manifest.devRootPem !== undefined) out.devRootPem = manifest.devRootPem;
  const text = `${JSON.stringify(out, null, 2)}\n`;
  parseManifest(text);
  return text;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function entryJson(set: MeasurementSet): Record<string, unknown> {
  // Integer-like keys of a JS object always enumerate in ascending order,
  // so "0", "1", "2", "8" come out by index whatever the map's order.
  const entry: Record<string, unknown> = {
    label: set.label,
    pcrs: Object.fromEntries([...set.pcrs].map(([i, v]) => [String(i), hex(v)])),
  };
  if (set.release) {
    const release: Record<string, string> = {};
    for (const key of RELEASE_KEYS) {
      const value = set.release[key];
      if (value !== undefined) release[key] = value;
    }
    entry.release = release;
  }
  return entry;
}
