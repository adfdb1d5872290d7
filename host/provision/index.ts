/**
 * host/provision: the host's half of boot provisioning. Reads nothing and
 * decides nothing about the enclave's content: it carries the operator's
 * files and the parent's AWS credentials to a fresh enclave over one
 * connection and reports the enclave's one-line answer. Format:
 * docs/PROTOCOL.md, "Boot provisioning"; operations: docs/HOST.md.
 */
// The wire formats are the shared codecs' (host/transport/codec/, which the enclave reads with too); re-exported here for the host's callers.
export { ProvisionError, isProvisionError, type ProvisionErrorCode } from "../transport/codec/provision-errors.js";
export { encodeFrame, readFrame, FRAME_HEADER_BYTES } from "../transport/codec/frame.js";
export {
  encodeBundle,
  BUNDLE_VERSION,
  MAX_BUNDLE_BYTES,
  MAX_TRUST_POLICY_BYTES,
  MAX_OPERATIONS_BYTES,
  MAX_IDENTITY_DAYS,
  MAX_SEALED_FILE_BYTES,
  type AwsCredentials,
  type BundleInput,
} from "../transport/codec/bundle.js";
export { decodeStatus, MAX_STATUS_BYTES, type BootStatus, type IdentityStatus } from "../transport/codec/status.js";
export { sealedFileRegion } from "../transport/codec/sealed-file.js";
export {
  sendBundle,
  systemClock,
  DEFAULT_PROVISION_RETRY,
  type SendBundleOptions,
  type ProvisionClock,
  type ProvisionRetry,
  type ProvisionLogger,
  type ProvisionLogFields,
} from "./send.js";
export { defaultChainCredentials, type CredentialsFetcher } from "./credentials.js";
export { createBootStatusMetric, type BootState, type BootStatusMetric } from "./metrics.js";
