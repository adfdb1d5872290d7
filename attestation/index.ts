// Public surface of the attestation module. Re-exports only: nothing runs on import.
export { EgwError, isEgwError } from "./egw-error.js";
export type { EgwErrorAction } from "./egw-error.js";
export { AttestationError, isAttestationError, SIGNATURE_MESSAGE } from "./errors.js";
export type { AttestationErrorCode, ErrorAction } from "./errors.js";
export type { AttestationDocument, DecodedAttestation, DecodedCoseSign1 } from "./types.js";
export { decodeCoseSign1, sigStructure, MAX_DOCUMENT_BYTES, COSE_ALG_ES384 } from "./cose-sign1.js";
export { parseDocumentPayload } from "./document.js";
export { verifyAttestation } from "./verify.js";
export type { VerificationResult, VerificationStep, StepName } from "./verify.js";
export { DEFAULT_CLOCK_SKEW_MS, DEFAULT_MAX_AGE_MS } from "./verify-options.js";
export type { VerifyOptions, BytesLike } from "./verify-options.js";
export { ChainCache } from "./chain.js";
export type { CertificateSummary } from "./chain.js";
export { awsNitroRootG1, trustAnchorFromPem, pemToDer, derToPem, AWS_NITRO_ROOT_G1_SHA256 } from "./roots.js";
export type { TrustAnchor } from "./roots.js";
export { explainDocument } from "./explain.js";
export type { DocumentView, CertificateView } from "./explain.js";
export type { Attester, AttestationRequest, PcrDescription } from "./attester.js";
export { NsmAttester } from "./nsm/nsm-attester.js";
export { SimulatedNsm, measureCodeBundle } from "./dev/simulated-nsm.js";
export { createDevCa, loadDevCa, loadOrCreateDevCa, saveDevCa, DEV_ROOT_FILE } from "./dev/dev-ca.js";
export type { DevCa } from "./dev/dev-ca.js";
export {
  verifyReceipt,
  verifyReceiptDigests,
  verifyReceiptWithKeys,
  decodeReceipt,
  receiptKeyFromSpki,
  splitStreamReceipt,
  RECEIPT_HEADER,
  RECEIPT_SSE_PREFIX,
} from "./receipt.js";
export type { ReceiptClaims, ReceiptErrorCode } from "./receipt.js";
export { decodeBinding, findReceiptKey, MAX_RECEIPT_KEYS } from "./binding.js";
export type { ChannelBinding, ReceiptKeyWindow } from "./binding.js";
