import { parseManifest, type Manifest } from "../../../attestation/client/policy.js";
import { DeployError } from "./errors.js";

export interface ManifestCheckOptions {
  /** Accept debug-mode measurements (all-zero PCRs) and a manifest with allowDebug. Development only. */
  allowDebug?: boolean;
  /** Accept measurement sets that do not pin PCR0 (e.g. PCR8-only, "any image signed by this certificate"). */
  allowUnpinnedImage?: boolean;
}

/**
 * Parses the measurements manifest a key policy is generated from, and turns
 * the conditions that `buildKeyPolicy` only warns about into refusals unless
 * the caller opted in by name. A warning printed during `cdk deploy` scrolls
 * past; a key policy that admits a debug enclave (whose memory the parent can
 * read, and whose PCRs are zero for *any* image) hands the provider keys to
 * the host. So the deployment fails closed.
 */
export function loadManifest(text: string, options: ManifestCheckOptions = {}): Manifest {
  let manifest: Manifest;
  try {
    manifest = parseManifest(text);
  } catch (cause) {
    throw new DeployError("ERR_DEPLOY_MANIFEST", `measurements manifest: ${(cause as Error).message}`, { cause });
  }
  if (!options.allowDebug) {
    if (manifest.allowDebug) {
      throw new DeployError(
        "ERR_DEPLOY_DEBUG_MEASUREMENT",
        "the manifest sets allowDebug; a production key policy must not admit debug enclaves (pass allowDebug to the stack only for development)",
      );
    }
    for (const set of manifest.measurements) {
      for (const [index, value] of set.pcrs) {
        // Nitro reports PCR0/1/2 as zeros for every enclave started with --debug-mode, whatever its image.
        if (value.every((b) => b === 0)) {
          throw new DeployError(
            "ERR_DEPLOY_DEBUG_MEASUREMENT",
            `measurement "${set.label}": PCR${index} is all zero, which is what a debug-mode enclave reports; refusing (pass allowDebug to the stack only for development)`,
          );
        }
      }
    }
  }
  if (!options.allowUnpinnedImage) {
    const unpinned = manifest.measurements.find((set) => !set.pcrs.has(0));
    if (unpinned) {
      throw new DeployError(
        "ERR_DEPLOY_IMAGE_NOT_PINNED",
        `measurement "${unpinned.label}" does not pin PCR0 (the image); pass allowUnpinnedImage if another PCR (e.g. PCR8, the signing certificate) pins it on purpose`,
      );
    }
  }
  return manifest;
}

/**
 * The manifest reduced to what `egw measure --manifest` compares (version and
 * measurement sets), as JSON. Written to the instance so the enclave unit can
 * refuse an EIF that the key policy would not release keys to.
 */
export function measurementsJson(manifest: Manifest): string {
  return JSON.stringify({
    version: 1,
    measurements: manifest.measurements.map((set) => ({
      label: set.label,
      pcrs: Object.fromEntries([...set.pcrs].map(([i, v]) => [String(i), Buffer.from(v).toString("hex")])),
    })),
  });
}
