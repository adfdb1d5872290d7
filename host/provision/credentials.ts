import { KMSClient } from "@aws-sdk/client-kms";
import type { AwsCredentials } from "../transport/codec/bundle.js";
import { ProvisionError } from "../transport/codec/provision-errors.js";

/**
 * Where the host gets the AWS credentials it hands the enclave for KMS
 * Decrypt. Injected, so tests pass fake ones and never touch IMDS.
 *
 * Handing the parent's credentials to the enclave gives the enclave nothing
 * the host could abuse itself: the key policy allows Decrypt for this role
 * only with a recipient attestation whose PCRs match the measured image
 * (docs/HOST.md, "Boot provisioning").
 */
export type CredentialsFetcher = (region: string) => Promise<AwsCredentials>;

/**
 * The AWS SDK's default provider chain, as the parent instance resolves it
 * (environment, shared config, then the instance role via IMDSv2). Going
 * through KMSClient's resolved config reuses the SDK already in the
 * dependencies instead of adding @aws-sdk/credential-providers. The region
 * only selects the client; instance-role credentials do not depend on it.
 */
export const defaultChainCredentials: CredentialsFetcher = async (region) => {
  const client = new KMSClient({ region });
  try {
    const identity = await client.config.credentials();
    if (!identity.accessKeyId || !identity.secretAccessKey) throw new Error("incomplete credentials");
    return { accessKeyId: identity.accessKeyId, secretAccessKey: identity.secretAccessKey, ...(identity.sessionToken && { sessionToken: identity.sessionToken }) };
  } catch (err) {
    // The SDK's message says which providers it tried; it holds no secret,
    // but only the error name is kept, as everywhere on the host.
    const name = (err as { name?: unknown })?.name;
    throw new ProvisionError("ERR_PROVISION_CREDENTIALS", `no AWS credentials from the default chain (${typeof name === "string" ? name.slice(0, 64) : "error"})`, { cause: err });
  } finally {
    client.destroy();
  }
};
