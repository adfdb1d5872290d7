// Public surface of the verifying client (what relying parties ship). Re-exports only.
// It imports nothing from enclave/: only the attestation module and undici.
export { createVerifiedFetch } from "./verified-fetch.js";
export type { VerifiedFetch, VerifiedFetchOptions, VerifiedExchange, FetchInput } from "./verified-fetch.js";
export { openAttestedConnection, parseGatewayOrigin, ATTESTATION_PATH, NONCE_BYTES } from "./connection.js";
export type { AttestedConnection, ConnectOptions } from "./connection.js";
export { checkPeer } from "./peer.js";
export type { AttestedPeer, PeerCheckInput } from "./peer.js";
export { checkBufferedResponse, checkStreamedResponse } from "./response-check.js";
export type { SentRequest, VerifiedReceipt } from "./response-check.js";
export { verifyReceiptDigests, decodeReceiptText } from "./receipt-check.js";
export { StreamReceiptSplitter } from "./stream-splitter.js";
export { resolvePolicy, matchMeasurements, parseManifest, parseMeasurementsManifest, policyFromManifest, loadPolicyFile, loadDevRoot } from "./policy.js";
export type { ClientPolicy, ResolvedPolicy, MeasurementSet, Manifest, LoadPolicyOptions, LoadedPolicy } from "./policy.js";
export { readTrustSetting, trustJson, describeTrustConstraints, unconstrainedTrust, originProblem } from "./trust-constraints.js";
export type { TrustConstraints, TrustSetting, IdentityConstraint } from "./trust-constraints.js";
export { checkTrustConstraints, checkServedTrustPolicy, checkReceiptUpstream, TRUST_POLICY_PATH } from "./trust-check.js";
export type { AttestedTrustPolicy } from "./trust-check.js";
export { parseReleaseInfo } from "../manifest/release.js";
export { checkManifestRollback, MAX_SEQUENCE } from "../manifest/rollback.js";
export type { ReleaseInfo } from "../manifest/release.js";
export { verifyManifestSignature, spkiSha256, MANIFEST_CONTENT_TYPE, MANIFEST_SIGNATURE_SUFFIX } from "../manifest/signature.js";
export type { ManifestKeyPin, VerifiedManifestSignature } from "../manifest/signature.js";
export { EgwError, isEgwError } from "../egw-error.js";
export { ClientError, isClientError } from "./errors.js";
export {
  clientErrorAnswer,
  clientErrorResponse,
  isClientErrorResponse,
  errorShapeFor,
  CLIENT_ERROR_HEADER,
  CLIENT_REFUSAL_STATUS,
  CLIENT_UNAVAILABLE_STATUS,
  CLIENT_REFUSAL_TYPE,
  CLIENT_UNAVAILABLE_TYPE,
} from "./error-response.js";
export type { ClientErrorAnswer, ErrorShape } from "./error-response.js";
export type { ClientErrorCode, ClientOwnErrorCode, ClientStep } from "./errors.js";
export { verifySavedExchange } from "./offline.js";
export type { SavedExchange, SavedExchangeResult } from "./offline.js";
