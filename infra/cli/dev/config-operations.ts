import { OperationsError, parseOperations } from "../../../enclave/operations.js";
import { ConfigError, loadRuntimeConfig } from "../../../enclave/runtime-config.js";
import { TrustPolicyError } from "../../../attestation/trust-policy.js";
import { DevError } from "./dev-error.js";
import { messageWithPointer } from "./json-pointer.js";
import type { ConfigDocument } from "./user-config.js";

/**
 * A user's operations document for `egw dev`: their clients (second tokens,
 * model allowlists, rate limits), limits and PROXY switch, as given, plus
 * one client egw dev adds, `egw-dev`, holding the state dir's token with
 * every model, so the banner's snippets work. Tokens stay hashes: egw dev
 * never learns a user's token.
 */
export const DEV_CLIENT_NAME = "egw-dev";

function operationsError(doc: Pick<ConfigDocument, "file" | "pointer">, err: unknown): never {
  if (err instanceof OperationsError)
    throw new DevError("ERR_DEV_CONFIG", `${doc.file}: ${messageWithPointer(err.message, "operations", doc.pointer)} (${err.code})`, { cause: err });
  throw err;
}

export function operationsWithDevClient(doc: ConfigDocument, tokenSha256: string): Uint8Array {
  let parsed: ReturnType<typeof parseOperations>;
  try {
    parsed = parseOperations(doc.bytes);
  } catch (err) {
    operationsError(doc, err);
  }
  if (parsed.clients.some((c) => c.tokenSha256 === tokenSha256)) return doc.bytes;
  if (parsed.clients.some((c) => c.name === DEV_CLIENT_NAME)) {
    throw new DevError("ERR_DEV_CONFIG", `${doc.file}: ${doc.pointer}/clients: the name "${DEV_CLIENT_NAME}" is egw dev's own client (the state dir's token); rename yours`);
  }
  const raw = structuredClone(doc.raw);
  raw.clients = [...(raw.clients as unknown[]), { name: DEV_CLIENT_NAME, tokenSha256, models: ["*"] }];
  return new TextEncoder().encode(`${JSON.stringify(raw, null, 2)}\n`);
}

/**
 * Both documents together, as the enclave will load them (a client allowed
 * a model the policy does not route is refused there): checked here so the
 * error shows before anything starts.
 */
export function checkTogether(
  trustBytes: Uint8Array,
  operationsBytes: Uint8Array,
  trust: Pick<ConfigDocument, "file" | "pointer">,
  ops: Pick<ConfigDocument, "file" | "pointer">,
): void {
  try {
    loadRuntimeConfig(trustBytes, operationsBytes, { dev: true });
  } catch (err) {
    if (err instanceof TrustPolicyError) throw new DevError("ERR_DEV_CONFIG", `${trust.file}: ${messageWithPointer(err.message, "trust policy", trust.pointer)} (${err.code})`);
    if (err instanceof OperationsError) operationsError(ops, err);
    // Names the client by name (clients["app"]), not by index: no pointer.
    if (err instanceof ConfigError) throw new DevError("ERR_DEV_CONFIG", `${ops.file}: ${ops.pointer ? `${ops.pointer}: ` : ""}${err.message} (${err.code})`, { cause: err });
    throw err;
  }
}
