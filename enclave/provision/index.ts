/**
 * enclave/provision: boot provisioning over vsock. On Nitro the enclave has
 * no filesystem from the host and no network but vsock, so the host hands
 * in the runtime config, the sealed-secrets file and KMS credentials over
 * one connection at boot, and gets one status back. Format and rules:
 * docs/PROTOCOL.md, "Boot provisioning". The frame, bundle and status
 * codecs are shared with the host (host/transport/codec/) and re-exported
 * here for the enclave's callers.
 */
export { ProvisionError, isProvisionError, type ProvisionErrorCode } from "../../host/transport/codec/provision-errors.js";
export { encodeFrame, readFrame, FRAME_HEADER_BYTES, type ReadFrameOptions } from "../../host/transport/codec/frame.js";
export {
  decodeBundle,
  BUNDLE_VERSION,
  MAX_BUNDLE_BYTES,
  MAX_TRUST_POLICY_BYTES,
  MAX_OPERATIONS_BYTES,
  MAX_IDENTITY_DAYS,
  MAX_SEALED_FILE_BYTES,
  type AwsCredentials,
  type IdentityGenerateRequest,
  type ProvisionBundle,
} from "../../host/transport/codec/bundle.js";
export { encodeStatus, failedStatus, MAX_STATUS_MESSAGE, type BootStatus, type ReadyStatus, type IdentityStatus, type FailedStatus } from "../../host/transport/codec/status.js";
export { provisionedBoot, DEFAULT_PROVISION_LIMITS, type ProvisionListen, type ProvisionLimits, type ProvisionOutcome, type ProvisionedBootOptions } from "./provisioned-boot.js";
// identity-mode.ts is imported directly (infra/cli/enclave.ts): it pulls in the KMS client and boot.ts, which the codec's users do not need.
