import { Annotations, CfnOutput, Stack, Validations, type StackProps } from "aws-cdk-lib";
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  HttpTokens,
  Instance,
  InstanceArchitecture,
  InstanceType,
  IpAddresses,
  MachineImage,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  UserData,
  Vpc,
  type IVpc,
  type SubnetSelection,
  type VpcAttributes,
} from "aws-cdk-lib/aws-ec2";
import { DEFAULT_CROSS_STACK_REFERENCES } from "aws-cdk-lib/cx-api";
import { Effect, Policy, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import { stageArtifact, type ArtifactSource } from "./artifacts.js";
import { readFileSync } from "node:fs";
import { checkDeploymentInputs, DeploymentInputError } from "../deployment-inputs.js";
import { DeployError } from "./errors.js";
import type { KeyStack } from "./key-stack.js";
import { measurementsJson } from "./manifest-check.js";
import { enclaveUnit, RELAY_OWN_FLAGS, relayUnit } from "./systemd-units.js";
import { bootScript, EGW_ON_INSTANCE, LAYOUT } from "./user-data.js";
import { cidr, instancePath, integerIn, port, safeArg } from "./validate.js";

export interface EnclaveStackProps extends StackProps {
  /** The key and the parent role; its manifest decides the measure check and debug mode. */
  keyStack: KeyStack;
  /** The enclave image (`build/egw.eif`), never built on the instance. */
  eif: ArtifactSource;
  /** The built enclave-gateway package as an npm tarball (provides `egw host` and `egw measure`). */
  hostPackage: ArtifactSource;
  /**
   * Local trust policy (JSON), uploaded to trustPolicyPath: written by the
   * relying party / key owner and reviewed (it names every destination of a
   * prompt or a key). The enclave attests its hash; the relay derives its
   * egress allowlist from it.
   */
  trustPolicyFile: string;
  /** Local operations file (JSON: client tokens, limits), uploaded to operationsPath: the operator's own. */
  operationsFile: string;
  /** Local sealed-secrets file (`egw seal --out`), uploaded to sealedSecretsPath. */
  sealedSecretsFile?: string;
  /** Default /etc/egw/trust-policy.json. */
  trustPolicyPath?: string;
  /** Default /etc/egw/operations.json. */
  operationsPath?: string;
  /** Default /etc/egw/sealed-secrets.json. */
  sealedSecretsPath?: string;
  /** Who may reach the relay, e.g. 0.0.0.0/0 for a public gateway or a corporate range. */
  ingressCidr: string;
  /** Public TCP port of the relay. Default 443. */
  relayPort?: number;
  /** TCP ports the instance may open outbound (S3, dnf, npm; default [443]); the trust policy's provider and KMS ports are added to them. */
  egressPorts?: number[];
  /** A Nitro Enclaves-capable type with at least 4 vCPUs. Default m6i.xlarge. */
  instanceType?: string;
  /** vCPUs given to the enclave (even on x86: whole cores). Default 2. */
  enclaveCpuCount?: number;
  /** MiB given to the enclave. Default 4096. */
  enclaveMemoryMib?: number;
  /** The enclave's vsock CID. Default 16. */
  enclaveCid?: number;
  /** Vsock port of the enclave's TLS endpoint (set in the image). Default 8443. */
  enclavePort?: number;
  /** Vsock port of the parent's egress proxy: the image's `--egress-proxy vsock://3:<port>`. Default 8128 (infra/deploy/image/Dockerfile). */
  egressVsockPort?: number;
  /**
   * Provision the enclave at boot (`egw host --provision`) on this vsock port:
   * the image's `--provision-listen`. Default 9000; false for an image that
   * reads its trust policy and operations itself.
   */
  provisionPort?: number | false;
  /** Extra flags appended to `egw host` (e.g. --provision-timeout, --metrics-listen); each a safe token. */
  hostArgs?: string[];
  /** An existing VPC; default: a new VPC with public subnets and no NAT. */
  vpc?: IVpc;
  /** An existing VPC by its attributes (imported with Vpc.fromVpcAttributes: no lookup, the synth stays offline). */
  vpcAttributes?: VpcAttributes;
  /** Default: public subnets. */
  vpcSubnets?: SubnetSelection;
  /** Give the instance a public IPv4 address. Default true. */
  publicIp?: boolean;
  /** Root volume size in GiB. Default 16. */
  rootVolumeGib?: number;
}

/** EC2 refuses user data above 16 KiB; keep room for tokens that resolve to longer names. */
const MAX_USER_DATA_BYTES = 14 * 1024;
const SMALL_SIZES = new Set(["nano", "micro", "small", "medium", "large"]);

function parentInstanceType(name: string): InstanceType {
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(name)) throw new DeployError("ERR_DEPLOY_PROPS", `instanceType must look like m6i.xlarge, got ${JSON.stringify(name.slice(0, 40))}`);
  const type = new InstanceType(name);
  // Nitro Enclaves: not on burstable types; x86 parents need 4 vCPUs (two go
  // to the enclave as a whole core, two stay for the relay).
  if (type.isBurstable()) throw new DeployError("ERR_DEPLOY_PROPS", `${name} is burstable; Nitro Enclaves need a non-burstable Nitro type such as m6i.xlarge or c6a.xlarge`);
  if (SMALL_SIZES.has(name.split(".")[1]!)) throw new DeployError("ERR_DEPLOY_PROPS", `${name} is too small for a parent with an enclave; use xlarge or larger`);
  return type;
}

/**
 * The parent EC2 instance (Nitro Enclaves on, IMDSv2 only, no SSH), its
 * security group (the relay's port in, the egress ports out) and its boot
 * script: the allocator sized for the enclave, the EIF and the host package
 * fetched, the enclave started with nitro-cli, and `egw host` as a service.
 */
export class EnclaveStack extends Stack {
  readonly instance: Instance;
  readonly securityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: EnclaveStackProps) {
    super(scope, id, props);
    // The role comes from the key stack as a strong reference (a CloudFormation
    // export): the key stack cannot drop or replace the role while an instance
    // uses it. Set explicitly, so it stays so when CDK's default changes.
    this.node.setContext(DEFAULT_CROSS_STACK_REFERENCES, "strong");
    const { keyStack } = props;
    const instanceType = parentInstanceType(props.instanceType ?? "m6i.xlarge");
    const arm = instanceType.architecture === InstanceArchitecture.ARM_64;
    const cpuCount = integerIn(props.enclaveCpuCount ?? 2, arm ? 1 : 2, 128, "enclaveCpuCount");
    if (!arm && cpuCount % 2 !== 0) throw new DeployError("ERR_DEPLOY_PROPS", "enclaveCpuCount must be even on x86 parents (the enclave takes whole cores)");
    const memoryMib = integerIn(props.enclaveMemoryMib ?? 4096, 256, 1024 * 1024, "enclaveMemoryMib");
    const enclaveCid = integerIn(props.enclaveCid ?? 16, 4, 4294967294, "enclaveCid"); // 0-3 are reserved; 3 is the parent
    const relayPort = port(props.relayPort ?? 443, "relayPort");
    const enclavePort = port(props.enclavePort ?? 8443, "enclavePort");
    const egressVsockPort = port(props.egressVsockPort ?? 8128, "egressVsockPort");
    const provisionPort = props.provisionPort === false ? undefined : port(props.provisionPort ?? 9000, "provisionPort");
    if (provisionPort === undefined && props.sealedSecretsFile !== undefined) {
      throw new DeployError("ERR_DEPLOY_PROPS", "sealedSecretsFile needs provisioning (provisionPort): it is how the sealed secrets reach the enclave");
    }
    const inputs = readInputs(props);
    const ownPorts = (props.egressPorts ?? [443]).map((p, i) => port(p, `egressPorts[${i}]`));
    // Derived, as the relay's allowlist is: a provider on another port needs no hand-kept list here either.
    const derivedPorts = inputs.egress.map((hp) => Number(hp.slice(hp.lastIndexOf(":") + 1)));
    if (ownPorts.length === 0)
      throw new DeployError("ERR_DEPLOY_PROPS", "egressPorts must name at least one port: the instance fetches its artifacts from S3 and its packages over 443");
    const egressPorts = [...new Set([...ownPorts, ...derivedPorts])].sort((a, b) => a - b);
    const ingress = cidr(props.ingressCidr, "ingressCidr");
    const trustPolicyPath = instancePath(props.trustPolicyPath ?? `${LAYOUT.configDir}/trust-policy.json`, "trustPolicyPath");
    const operationsPath = instancePath(props.operationsPath ?? `${LAYOUT.configDir}/operations.json`, "operationsPath");
    const sealedSecretsPath = instancePath(props.sealedSecretsPath ?? `${LAYOUT.configDir}/sealed-secrets.json`, "sealedSecretsPath");
    const hostArgs = (props.hostArgs ?? []).map((a, i) => safeArg(a, `hostArgs[${i}]`));
    for (const flag of RELAY_OWN_FLAGS) {
      if (hostArgs.some((a) => a === flag || a.startsWith(`${flag}=`)))
        throw new DeployError("ERR_DEPLOY_PROPS", `hostArgs must not set ${flag}: the stack sets it from its own props`);
    }
    const rootVolumeGib = integerIn(props.rootVolumeGib ?? 16, 8, 16384, "rootVolumeGib");

    if (props.vpc && props.vpcAttributes) throw new DeployError("ERR_DEPLOY_PROPS", "give vpc or vpcAttributes, not both");
    if (props.vpcAttributes) {
      Validations.of(this).acknowledge({ id: "CloudFormation-Validate::W3010", reason: "the availability zone is the existing VPC's, given as vpcAttributes" });
    }
    const vpc =
      props.vpc ??
      (props.vpcAttributes && Vpc.fromVpcAttributes(this, "ExistingVpc", props.vpcAttributes)) ??
      new Vpc(this, "Vpc", {
        ipAddresses: IpAddresses.cidr("10.42.0.0/16"),
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [{ name: "public", subnetType: SubnetType.PUBLIC, cidrMask: 24 }],
        // Nothing is placed in the default security group; restricting it would
        // add a Lambda-backed custom resource to this stack.
        restrictDefaultSecurityGroup: false,
      });

    this.securityGroup = new SecurityGroup(this, "RelaySecurityGroup", {
      vpc,
      description: "enclave-gateway parent: relay port in (TLS that ends inside the enclave), egress ports out; no SSH",
      allowAllOutbound: false,
    });
    this.securityGroup.addIngressRule(ingress.ipv6 ? Peer.ipv6(ingress.cidr) : Peer.ipv4(ingress.cidr), Port.tcp(relayPort), "egw relay");
    for (const p of egressPorts) this.securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(p), "providers, KMS, S3, package repositories");

    const staged = [
      stageArtifact(this, "Eif", props.eif, LAYOUT.eif, "eif"),
      stageArtifact(this, "HostPackage", props.hostPackage, LAYOUT.hostPackage, "hostPackage"),
      stageArtifact(this, "TrustPolicy", { file: props.trustPolicyFile }, trustPolicyPath, "trustPolicyFile"),
      stageArtifact(this, "Operations", { file: props.operationsFile }, operationsPath, "operationsFile"),
      ...(props.sealedSecretsFile === undefined ? [] : [stageArtifact(this, "SealedSecrets", { file: props.sealedSecretsFile }, sealedSecretsPath, "sealedSecretsFile")]),
    ];

    const debugMode = keyStack.allowDebug;
    const userData = UserData.forLinux();
    userData.addCommands(
      ...bootScript({
        allocator: { memoryMib, cpuCount },
        fetch: staged.flatMap((s) => s.commands),
        relayReadable: [trustPolicyPath, operationsPath, ...(props.sealedSecretsFile === undefined ? [] : [sealedSecretsPath])],
        ...(!debugMode && { manifestJson: measurementsJson(keyStack.manifest) }),
        units: [
          {
            name: LAYOUT.enclaveUnit,
            text: enclaveUnit({
              eifPath: LAYOUT.eif,
              cpuCount,
              memoryMib,
              cid: enclaveCid,
              debugMode,
              ...(!debugMode && { measureCheck: { egw: EGW_ON_INSTANCE, manifestPath: LAYOUT.manifest } }),
            }),
          },
          {
            name: LAYOUT.relayUnit,
            text: relayUnit({
              egw: EGW_ON_INSTANCE,
              enclaveCid,
              enclavePort,
              listenPort: relayPort,
              egressVsockPort,
              trustPolicyPath,
              operationsPath,
              ...(provisionPort !== undefined && {
                provision: { port: provisionPort, ...(props.sealedSecretsFile !== undefined && { sealedSecretsPath }) },
              }),
              extraArgs: hostArgs,
              user: LAYOUT.relayUser,
              enclaveUnitName: LAYOUT.enclaveUnit,
            }),
          },
        ],
      }),
    );
    const rendered = Buffer.byteLength(userData.render());
    if (rendered > MAX_USER_DATA_BYTES) {
      throw new DeployError("ERR_DEPLOY_PROPS", `the boot script is ${rendered} bytes; EC2 accepts 16 KiB of user data (keep fewer measurement sets in the manifest)`);
    }

    this.instance = new Instance(this, "Parent", {
      vpc,
      vpcSubnets: props.vpcSubnets ?? { subnetType: SubnetType.PUBLIC },
      instanceType,
      machineImage: MachineImage.latestAmazonLinux2023({ cpuType: arm ? AmazonLinuxCpuType.ARM_64 : AmazonLinuxCpuType.X86_64 }),
      role: keyStack.role,
      securityGroup: this.securityGroup,
      userData,
      // User data runs at first boot only: a new EIF or config means a new instance.
      userDataCausesReplacement: true,
      enclaveEnabled: true,
      httpEndpoint: true,
      httpTokens: HttpTokens.REQUIRED,
      // The relay reads the role's credentials from IMDS itself; nothing behind
      // a further hop (containers) should.
      httpPutResponseHopLimit: 1,
      associatePublicIpAddress: props.publicIp ?? true,
      blockDevices: [{ deviceName: "/dev/xvda", volume: BlockDeviceVolume.ebs(rootVolumeGib, { encrypted: true, volumeType: EbsDeviceVolumeType.GP3 }) }],
    });

    // Read access to exactly the uploaded objects, not the whole asset bucket.
    const objectArns = staged.flatMap((s) => s.objectArns);
    if (objectArns.length > 0) {
      const read = new Policy(this, "ArtifactReadPolicy", {
        roles: [keyStack.role],
        statements: [new PolicyStatement({ sid: "ReadBootArtifacts", effect: Effect.ALLOW, actions: ["s3:GetObject"], resources: objectArns })],
      });
      this.instance.node.addDependency(read);
    }

    // Clients compare the attested hashes with the manifest's configSha256 and
    // trust.policySha256 (when it lists any): say now if they will refuse this deployment.
    const { configSha256, policySha256 } = inputs;
    const listed = keyStack.manifest.configSha256?.map((h) => Buffer.from(h).toString("hex"));
    if (listed && !listed.includes(configSha256)) {
      Annotations.of(this).addWarningV2(
        "egw:config-not-in-manifest",
        `the enclave will attest config hash ${configSha256}, which the manifest's configSha256 does not list: clients verifying with it will refuse the gateway. Add it (egw manifest create --merge <manifest> --config-sha256 ${configSha256} …) or deploy the config the manifest names.`,
      );
    }

    const pinned = manifestPolicyPins(keyStack.manifest);
    if (pinned && !pinned.includes(policySha256)) {
      Annotations.of(this).addWarningV2(
        "egw:policy-not-in-manifest",
        `the enclave will attest trust policy hash ${policySha256}, which the manifest's trust.policySha256 does not list: clients verifying with it will refuse the gateway. Add it to the manifest (after reviewing the policy) or deploy the trust policy the manifest names.`,
      );
    }

    new CfnOutput(this, "AttestedConfigSha256", { value: configSha256, description: "the config hash the enclave attests (manifest configSha256)" });
    new CfnOutput(this, "TrustPolicySha256", { value: policySha256, description: "the trust policy hash the enclave attests (manifest trust.policySha256)" });
    new CfnOutput(this, "InstanceId", { value: this.instance.instanceId });
    new CfnOutput(this, "PublicDnsName", { value: this.instance.instancePublicDnsName });
    new CfnOutput(this, "GatewayUrl", { value: `https://${this.instance.instancePublicDnsName}${relayPort === 443 ? "" : `:${relayPort}`}` });
  }
}

/**
 * The three files, read once and checked as a (non-development) enclave
 * will check them at boot (infra/deploy/deployment-inputs.ts): a template that
 * boots into a refusal is refused at synth instead.
 */
function readInputs(props: EnclaveStackProps) {
  const read = (file: string, what: string) => {
    try {
      return new Uint8Array(readFileSync(file));
    } catch (cause) {
      throw new DeployError("ERR_DEPLOY_INPUTS", `${what} ${file}: cannot read (${(cause as NodeJS.ErrnoException).code ?? "error"})`, { cause });
    }
  };
  try {
    return checkDeploymentInputs(
      read(props.trustPolicyFile, "trustPolicyFile"),
      read(props.operationsFile, "operationsFile"),
      props.sealedSecretsFile === undefined ? undefined : read(props.sealedSecretsFile, "sealedSecretsFile"),
    );
  } catch (cause) {
    if (cause instanceof DeploymentInputError) throw new DeployError("ERR_DEPLOY_INPUTS", cause.message, { cause });
    throw cause;
  }
}

/**
 * The manifest's trust.policySha256 pins as hex, or undefined when it pins
 * none ("any", or constraints without exact hashes). Read structurally: the
 * trust section is the client's (attestation/client/trust-constraints.ts),
 * with the pins as 32-byte arrays.
 */
export function manifestPolicyPins(manifest: object): string[] | undefined {
  const trust = (manifest as { trust?: unknown }).trust;
  if (trust === null || typeof trust !== "object") return undefined;
  const pins = (trust as { policySha256?: unknown }).policySha256;
  if (!Array.isArray(pins)) return undefined;
  return pins.map((p) => (typeof p === "string" ? p.toLowerCase() : Buffer.from(p as Uint8Array).toString("hex")));
}
