import { EgwError } from "../../../attestation/egw-error.js";

/**
 * One error class for every input the AWS stacks refuse to synthesize, with a
 * stable `code` so callers and tests `switch (err.code)` instead of parsing
 * messages. Every refusal happens at synth time, before anything reaches AWS:
 * a template that would release provider keys to the wrong image must never
 * exist, not even as a file in cdk.out.
 */
export type DeployErrorCode =
  | "ERR_DEPLOY_MANIFEST" // the measurements manifest does not parse (cause: ClientError ERR_MANIFEST_INVALID)
  | "ERR_DEPLOY_DEBUG_MEASUREMENT" // an all-zero PCR or allowDebug in the manifest, without the allowDebug prop
  | "ERR_DEPLOY_IMAGE_NOT_PINNED" // a measurement set without PCR0, without the allowUnpinnedImage prop
  | "ERR_DEPLOY_KEY_POLICY" // buildKeyPolicy refused (ARNs, PCR indexes) or the policy exceeds KMS's size limit
  | "ERR_DEPLOY_PROPS" // a stack prop is out of range or unsafe to put in a shell script or systemd unit
  | "ERR_DEPLOY_INPUTS" // trust policy, operations or sealed-secrets file the enclave would refuse at boot (cause: the enclave parser's error)
  | "ERR_DEPLOY_CONTEXT"; // a CDK context value (-c key=value) is missing, unreadable or malformed

export class DeployError extends EgwError<DeployErrorCode> {
  override readonly name = "DeployError";

  constructor(code: DeployErrorCode, message: string, options?: { cause?: unknown }) {
    // A debug or unpinned image would release keys to code nobody reviewed: refused, not misconfigured.
    super(code, message, code === "ERR_DEPLOY_DEBUG_MEASUREMENT" || code === "ERR_DEPLOY_IMAGE_NOT_PINNED" ? "reject" : "fix-config", options);
  }
}
