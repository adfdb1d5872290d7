import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { BedrockPins } from "../../../attestation/trust-policy.js";
import type { UpstreamFetch } from "../../http/upstream-response.js";
import { EgressHttpHandler } from "../../secrets/kms-http-handler.js";
import { BedrockIdentityError } from "./bedrock-identity-error.js";

/**
 * Checks, before any prompt goes to Bedrock, that the AWS credentials the
 * host handed in belong to the identity the trust policy pins: STS
 * GetCallerIdentity at the region's STS endpoint, signed with those very
 * credentials, through the enclave's egress path (the derived allowlist
 * holds sts.<region>.amazonaws.com). The host cannot answer in STS's name:
 * TLS to the STS origin starts inside the enclave and is verified against
 * the image's bundled roots (enclave/egress.ts), so an answer that arrives
 * is STS's own, about exactly these credentials.
 *
 * Why it matters: credentials of an account the host controls would work
 * for Bedrock, and that account's model-invocation logging would record
 * every prompt and answer.
 *
 * Accepted: `Account` equals the pinned account and, when a role is pinned,
 * `Arn` is a session of that role (arn:<partition>:sts::<account>:assumed-role/<role name>/<session>;
 * STS drops the role's path from it).
 */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;
const ASSUMED_ROLE_ARN = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/[\w+=,.@-]{1,64}$/;

export async function checkBedrockIdentity(pins: BedrockPins, credentials: AwsCredentials, fetch: UpstreamFetch, timeoutMs: number): Promise<{ account: string; arn: string }> {
  const client = new STSClient({
    region: pins.region,
    endpoint: pins.stsUrl,
    credentials,
    requestHandler: new EgressHttpHandler(fetch, timeoutMs),
    maxAttempts: 1,
  });
  let account: string | undefined;
  let arn: string | undefined;
  try {
    const answer = await client.send(new GetCallerIdentityCommand({}));
    account = answer.Account;
    arn = answer.Arn;
  } catch (cause) {
    // STS's own error names (InvalidClientTokenId, ExpiredToken …) only; no SDK message, which may echo a header.
    const name = (cause as { name?: unknown })?.name;
    throw new BedrockIdentityError(
      "ERR_BEDROCK_IDENTITY_UNCHECKED",
      `bedrock: STS GetCallerIdentity failed (${typeof name === "string" ? name.slice(0, 64) : "error"}); no prompt is sent until it answers`,
    );
  } finally {
    client.destroy();
  }
  if (typeof account !== "string" || typeof arn !== "string") throw new BedrockIdentityError("ERR_BEDROCK_IDENTITY_UNCHECKED", "bedrock: STS answered without Account and Arn");
  if (account !== pins.accountId) {
    throw new BedrockIdentityError(
      "ERR_BEDROCK_IDENTITY",
      `bedrock: the AWS credentials belong to account ${account.slice(0, 12)}, but the trust policy pins account ${pins.accountId}`,
    );
  }
  if (pins.roleArn !== undefined) {
    const want = ROLE_ARN.exec(pins.roleArn);
    const got = ASSUMED_ROLE_ARN.exec(arn);
    if (!want || !got || got[1] !== want[1] || got[2] !== want[2] || got[3] !== want[3]) {
      throw new BedrockIdentityError("ERR_BEDROCK_IDENTITY", `bedrock: the AWS credentials are ${arn.slice(0, 256)}, not a session of the pinned role ${pins.roleArn}`);
    }
  }
  return { account, arn };
}
