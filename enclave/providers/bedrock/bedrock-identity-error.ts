import { EgwError, type EgwErrorAction } from "../../../attestation/egw-error.js";

/**
 * Why the enclave will not call Bedrock with the credentials it was handed.
 * Each stops the boot (enclave/boot.ts calls every adapter's `ready`):
 *  - ERR_BEDROCK_CREDENTIALS_MISSING: no AWS credentials were handed in;
 *  - ERR_BEDROCK_IDENTITY: STS says they belong to another account or role
 *    than the trust policy pins (a host's own account could log prompts);
 *  - ERR_BEDROCK_IDENTITY_UNCHECKED: STS could not be asked (network, STS
 *    refused the credentials); nothing is sent to Bedrock until it answers.
 * Messages name accounts and roles, never credentials.
 */
export type BedrockIdentityErrorCode = "ERR_BEDROCK_CREDENTIALS_MISSING" | "ERR_BEDROCK_IDENTITY" | "ERR_BEDROCK_IDENTITY_UNCHECKED";

const ACTION: Record<BedrockIdentityErrorCode, EgwErrorAction> = {
  ERR_BEDROCK_CREDENTIALS_MISSING: "fix-config",
  ERR_BEDROCK_IDENTITY: "reject",
  ERR_BEDROCK_IDENTITY_UNCHECKED: "retry",
};

export class BedrockIdentityError extends EgwError<BedrockIdentityErrorCode> {
  override readonly name = "BedrockIdentityError";
  constructor(code: BedrockIdentityErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, ACTION[code], options);
  }
}
