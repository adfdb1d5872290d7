import type { App } from "aws-cdk-lib";
import { readDeployContext } from "./app-context.js";
import { EnclaveStack } from "./enclave-stack.js";
import { KeyStack } from "./key-stack.js";

/**
 * The app's stacks from its context: `<prefix>Key` (KMS key and parent role)
 * always, `<prefix>Enclave` (VPC, security group, parent instance) once the
 * EIF is given. Two stacks because the secrets must be sealed with the key
 * between the two deployments (docs/DEPLOY.md).
 */
export function defineStacks(app: App): { key: KeyStack; enclave?: EnclaveStack } {
  const context = readDeployContext(app.node);
  const env = context.env && { env: context.env };
  const key = new KeyStack(app, `${context.stackPrefix}Key`, {
    ...env,
    description: "enclave-gateway: KMS key for sealed provider keys (attestation-bound) and the parent instance role",
    ...context.key,
  });
  if (!context.enclave) return { key };
  const { existingVpc, ...enclaveProps } = context.enclave;
  const enclave = new EnclaveStack(app, `${context.stackPrefix}Enclave`, {
    ...env,
    description: "enclave-gateway: parent EC2 instance with a Nitro Enclave, the host relay and its security group",
    keyStack: key,
    ...enclaveProps,
    ...(existingVpc && { vpcAttributes: existingVpc }),
  });
  return { key, enclave };
}
