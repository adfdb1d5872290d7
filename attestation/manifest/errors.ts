import { EgwError } from "../../attestation/egw-error.js";

/**
 * What the release tools (manifest creation and signing) refuse, with a
 * stable `code`. Every one is "fix the input": nothing is written.
 */
export type ReleaseErrorCode =
  | "ERR_RELEASE_INPUT" // a release field, label or config hash is not in its exact format
  | "ERR_RELEASE_DUPLICATE_LABEL" // --merge: the manifest already has an entry with this label
  | "ERR_RELEASE_DUPLICATE_IMAGE" // --merge: the manifest already lists exactly these PCRs
  | "ERR_RELEASE_TOO_MANY" // --merge: the manifest would exceed its entry or config-hash limit
  | "ERR_RELEASE_SEQUENCE" // --merge: the manifest has a sequence and the new one is missing or not higher
  | "ERR_RELEASE_EXPIRES" // --merge: the manifest has an expiry and no new one was given
  | "ERR_RELEASE_NO_TRUST" // no trust section: derive one from the trust policy, or say "any" on purpose
  | "ERR_SIGNING_KEY"; // not a usable P-384 key (private key for signing, public key for pinning)

export class ReleaseError extends EgwError<ReleaseErrorCode> {
  override readonly name = "ReleaseError";

  constructor(code: ReleaseErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, "fix-input", options);
  }
}
