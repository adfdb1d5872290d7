import { Annotations, CfnOutput, CfnDeletionPolicy, Stack, type StackProps } from "aws-cdk-lib";
import { Effect, ManagedPolicy, Policy, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { CfnAlias, CfnKey } from "aws-cdk-lib/aws-kms";
import type { Construct } from "constructs";
import type { Manifest } from "../../../attestation/client/policy.js";
import { DeployError } from "./errors.js";
import { keyPolicyDocument } from "./key-policy-document.js";
import { loadManifest } from "./manifest-check.js";

export interface KeyStackProps extends StackProps {
  /** The measurements manifest (JSON text, as `build/manifest.json`). Its PCRs become the key policy's conditions. */
  manifestJson: string;
  /**
   * Administers the key (an IAM ARN). Use the account root
   * (`arn:aws:iam::<account>:root`) unless CloudFormation deploys as this very
   * principal: KMS refuses a key policy that would lock its creator out of
   * PutKeyPolicy, and later policy updates (new manifests) are made by
   * CloudFormation too. The root statement delegates key *administration*
   * to IAM, never Decrypt.
   */
  adminArn: string;
  /** Principal allowed kms:Encrypt (runs `egw seal`); defaults to the admin. */
  sealerArn?: string;
  /** Development only: admit debug-mode measurements; the enclave is then started with --debug-mode. */
  allowDebug?: boolean;
  /** Admit measurement sets without PCR0 (e.g. pinned by PCR8, the signing certificate). */
  allowUnpinnedImage?: boolean;
  /**
   * A key policy nobody can ever change (see buildKeyPolicy): later manifests
   * cannot be deployed to this key (CloudFormation's PutKeyPolicy is denied);
   * a new image needs a new key (new stack id) and re-sealed secrets. The key
   * is created with BypassPolicyLockoutSafetyCheck, which KMS requires for it.
   */
  immutable?: boolean;
  /** Provider secrets (name, https origin) the key may release, as sealed by `egw seal --name/--origin`. */
  secrets?: readonly { name: string; origin: string }[];
  /** `alias/…` for the key, so `egw seal --key-id` can name it. */
  keyAlias?: string;
  /** Attach AmazonSSMManagedInstanceCore to the parent role (shell access without SSH). Default true. */
  sessionManager?: boolean;
  /** Keep the key when the stack is deleted or the key replaced. Default true: sealed secrets die with it. */
  retainKey?: boolean;
}

const ALIAS = /^alias\/[a-zA-Z0-9/_-]{1,250}$/;

/**
 * The KMS key that seals provider keys, and the parent instance's role, which
 * the key policy names. They live apart from the instance because the key must
 * exist before anything is sealed with it, and the sealed file must exist
 * before the instance boots: deploy this stack, run `egw seal`, then deploy
 * the enclave stack (docs/DEPLOY.md).
 *
 * The key is a CfnKey with the policy from `buildKeyPolicy` and nothing else:
 * the `kms.Key` construct would add its default "Enable IAM User Permissions"
 * statement (root, kms:*), which lets any IAM policy in the account grant
 * kms:Decrypt, and its grant methods edit the key policy behind our back.
 */
export class KeyStack extends Stack {
  readonly manifest: Manifest;
  readonly allowDebug: boolean;
  readonly role: Role;
  readonly key: CfnKey;
  /** The key's ARN (a token until deployment). */
  readonly keyArn: string;

  constructor(scope: Construct, id: string, props: KeyStackProps) {
    super(scope, id, props);
    this.allowDebug = props.allowDebug === true;
    this.manifest = loadManifest(props.manifestJson, {
      allowDebug: this.allowDebug,
      allowUnpinnedImage: props.allowUnpinnedImage === true,
    });
    if (props.keyAlias !== undefined && (!ALIAS.test(props.keyAlias) || props.keyAlias.startsWith("alias/aws/"))) {
      throw new DeployError("ERR_DEPLOY_PROPS", `keyAlias must look like alias/<name> and not use the reserved alias/aws/ prefix, got "${props.keyAlias.slice(0, 80)}"`);
    }

    this.role = new Role(this, "ParentRole", {
      assumedBy: new ServicePrincipal("ec2.amazonaws.com"),
      description: "enclave-gateway parent instance: its credentials reach KMS only together with an enclave attestation",
    });
    if (props.sessionManager !== false) {
      this.role.addManagedPolicy(ManagedPolicy.fromAwsManagedPolicyName("AmazonSSMManagedInstanceCore"));
    }

    const { policy, warnings, bypassPolicyLockoutSafetyCheck } = keyPolicyDocument({
      manifest: this.manifest,
      roleArn: this.role.roleArn,
      adminArn: props.adminArn,
      ...(props.sealerArn !== undefined && { sealerArn: props.sealerArn }),
      ...(props.secrets !== undefined && { secrets: props.secrets }),
      allowDebug: this.allowDebug,
      immutable: props.immutable === true,
    });
    this.key = new CfnKey(this, "SecretsKey", {
      description: "enclave-gateway: seals provider API keys; Decrypt only for an attested enclave image",
      enableKeyRotation: true,
      keyPolicy: policy,
      pendingWindowInDays: 30,
      ...(bypassPolicyLockoutSafetyCheck && { bypassPolicyLockoutSafetyCheck: true }),
    });
    if (props.retainKey !== false) {
      this.key.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
      this.key.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    }
    this.keyArn = this.key.attrArn;
    for (const warning of warnings) Annotations.of(this.key).addWarningV2("egw:key-policy", warning);
    if (this.allowDebug) {
      Annotations.of(this.key).addWarningV2(
        "egw:allow-debug",
        "allowDebug is set: this key releases provider keys to debug-mode enclaves, whose memory the parent instance can read. Development only.",
      );
    }
    if (props.keyAlias !== undefined) new CfnAlias(this, "SecretsKeyAlias", { aliasName: props.keyAlias, targetKeyId: this.key.ref });

    // The key policy already allows the role (a key policy that names a
    // principal suffices in the same account). The identity policy repeats it,
    // scoped to this key and to requests that carry an attestation, so the
    // role's own permissions read correctly in IAM and cannot be used on any
    // other key.
    new Policy(this, "ParentDecryptPolicy", {
      roles: [this.role],
      statements: [
        new PolicyStatement({
          sid: "DecryptSealedSecretsWithAttestation",
          effect: Effect.ALLOW,
          actions: ["kms:Decrypt"],
          resources: [this.key.attrArn],
          conditions: { Null: { "kms:RecipientAttestation:ImageSha384": "false" } },
        }),
      ],
    });

    new CfnOutput(this, "KeyArn", { value: this.key.attrArn, description: "egw seal --key-id <this>" });
    new CfnOutput(this, "ParentRoleArn", { value: this.role.roleArn });
  }
}
