import { isIPv4, isIPv6 } from "node:net";
import { K8sChartError, type K8sChartErrorCode } from "./errors.js";
import { pinnedImage } from "./image.js";
import { readInputs, type GatewayInputs } from "./inputs.js";

/**
 * What the chart takes, its defaults, and the checks that run before any
 * object exists. Every field is documented with why its bound is what it
 * is; a value outside a bound is refused with a K8sChartError, never
 * clamped, so that what is synthesized is what was asked for.
 */

export type HugepageSize = "2Mi" | "1Gi";

export interface EnclaveProps {
  /**
   * vCPUs for the enclave (nitro-cli --cpu-count). The Nitro hypervisor gives
   * an enclave whole cores, so on instances with hyperthreading (x86: 2
   * threads per core) the count must be a multiple of 2; on Graviton (1
   * thread per core) any count ≥ 1.
   */
  cpuCount: number;
  /** Hardware threads per core of the node's instance type: 2 for Intel/AMD, 1 for Graviton. */
  threadsPerCore: number;
  /** Enclave memory in MiB (nitro-cli --memory), taken from huge pages the node reserved. */
  memoryMiB: number;
  /**
   * Size of the EIF in the pod image, in MiB (rounded up). nitro-cli refuses
   * (error E26) an enclave with less than 4 × the image size of memory: the
   * image is unpacked into enclave RAM.
   */
  eifSizeMiB: number;
  /** Huge page size the node's allocator reserved; the pod requests exactly memoryMiB of it. */
  hugepageSize: HugepageSize;
  /** The enclave's vsock CID (≥ 4; 0–2 are reserved and 3 is the parent). Fixed, since one enclave runs per node. */
  cid: number;
}

export interface RelayProps {
  /** CPU for `egw host` (millicores). It copies ciphertext: 0.45–0.52 s of CPU per GB (docs/BENCHMARKS.md). */
  cpuMillis: number;
  /**
   * Memory for `egw host`. Its read buffers start at 16 KiB per direction:
   * 4096 relay connections × 2 × 16 KiB = 128 MiB, 1024 egress tunnels × 2 ×
   * 16 KiB = 32 MiB, plus Node itself; bulk transfers grow a buffer to 512 KiB.
   */
  memoryMiB: number;
}

export interface LoadBalancerProps {
  scheme: "internet-facing" | "internal";
  /** The port clients connect to on the NLB. */
  port: number;
  /** Client CIDRs allowed through the NLB; empty means everyone. */
  sourceRanges: string[];
}

export interface TolerationProps {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface EnclaveGatewayProps {
  /** Base name of every object; a DNS label that starts with a letter (Service names must). */
  name: string;
  namespace: string;
  /** Enclave-backed pods, one per node. */
  replicas: number;
  /** Pod image: nitro-cli, `egw` and the EIF. Pinned by tag at least, by digest preferably. */
  image: string;
  /** The AWS Nitro Enclaves device plugin image, pinned. */
  devicePluginImage: string;
  /** Also emit the device plugin DaemonSet (off when the cluster team installs it, e.g. with its Helm chart). */
  includeDevicePlugin: boolean;
  /**
   * Device plugin ≥ v0.3 can advertise the CPUs the allocator took offline as
   * `aws.ec2.nitro/nitro_enclaves_cpus`; the pod then requests cpuCount of
   * them, so the scheduler knows which nodes still have enclave CPUs.
   */
  advertiseEnclaveCpus: boolean;
  enclave: EnclaveProps;
  relay: RelayProps;
  loadBalancer: LoadBalancerProps;
  /**
   * Seconds a terminating pod keeps accepting connections before the relay
   * drains, while the NLB deregisters its target (Kubernetes does not wait for
   * the load balancer). Too short and new connections land on a draining relay.
   */
  deregistrationWaitSeconds: number;
  /** Namespace whose pods may scrape the relay's metrics port. */
  metricsNamespace: string;
  /** IAM role for the pod's service account (IRSA), whose credentials let the enclave call KMS Decrypt. */
  serviceAccountRoleArn?: string;
  /** Tolerations for the enclave node group's taint, on both the gateway pods and the device plugin. */
  tolerations: TolerationProps[];
  /** The trust policy (written by the relying party / key owner, reviewed), exact bytes: its SHA-256 is attested as policy_sha256. */
  trustPolicy: Uint8Array;
  /** The operations file (the operator's: tokens, limits), exact bytes; covered by the attested config hash. */
  operations: Uint8Array;
  /** The sealed-secrets file from `egw seal`, exact bytes; optional (a gateway with only the local model needs none). */
  sealedSecrets?: Uint8Array;
}

type DeepPartialProps = {
  [K in keyof EnclaveGatewayProps]?: EnclaveGatewayProps[K] extends Uint8Array | string | number | boolean | unknown[] | undefined
    ? EnclaveGatewayProps[K]
    : Partial<EnclaveGatewayProps[K]>;
};

/** What callers pass: only the trust policy and the operations file are required. */
export type EnclaveGatewayInput = DeepPartialProps & { trustPolicy: Uint8Array; operations: Uint8Array };

export const DEVICE_PLUGIN_IMAGE = "public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin:v0.3";

export const DEFAULTS: Omit<EnclaveGatewayProps, "trustPolicy" | "operations" | "sealedSecrets" | "serviceAccountRoleArn"> = {
  name: "enclave-gateway",
  namespace: "enclave-gateway",
  replicas: 3,
  // An example: replace with the image the release build pushed (see docs/KUBERNETES.md).
  image: "111122223333.dkr.ecr.eu-west-1.amazonaws.com/enclave-gateway:0.1.0",
  devicePluginImage: DEVICE_PLUGIN_IMAGE,
  includeDevicePlugin: true,
  advertiseEnclaveCpus: true,
  enclave: { cpuCount: 2, threadsPerCore: 2, memoryMiB: 4096, eifSizeMiB: 512, hugepageSize: "1Gi", cid: 16 },
  relay: { cpuMillis: 500, memoryMiB: 512 },
  loadBalancer: { scheme: "internet-facing", port: 443, sourceRanges: [] },
  deregistrationWaitSeconds: 30,
  metricsNamespace: "monitoring",
  tolerations: [],
};

export const MAX_REPLICAS = 256;
/** The Nitro Enclaves driver's floor for enclave memory (NE_MIN_ENCLAVE_MEM_SIZE, 64 MiB). */
export const MIN_ENCLAVE_MEMORY_MIB = 64;
/** nitro-cli: requested memory must be at least this multiple of the EIF size (ENCLAVE_MEMORY_EIF_SIZE_RATIO, error E26). */
export const EIF_MEMORY_RATIO = 4;
const HUGEPAGE_MIB: Record<HugepageSize, number> = { "2Mi": 2, "1Gi": 1024 };

/** Props with defaults applied and every check passed, plus what the inputs say. */
export interface ResolvedProps extends EnclaveGatewayProps {
  inputs: GatewayInputs;
}

const DNS_LABEL = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[A-Za-z0-9+=,.@_/-]{1,512}$/;
const TAINT_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const TAINT_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function refuse(code: K8sChartErrorCode, message: string): never {
  throw new K8sChartError(code, message);
}

function integerIn(value: unknown, min: number, max: number, what: string, code: K8sChartErrorCode = "ERR_K8S_PROP"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    refuse(code, `${what} expected an integer in ${min}..${max}, got ${typeof value === "number" ? String(value) : typeof value}`);
  }
  return value;
}

function cidr(value: string): boolean {
  const slash = value.indexOf("/");
  if (slash < 0) return false;
  const ip = value.slice(0, slash);
  const prefix = value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return false;
  const bits = Number(prefix);
  return (isIPv4(ip) && bits <= 32) || (isIPv6(ip) && bits <= 128);
}

function checkEnclave(e: EnclaveProps): void {
  const threads = integerIn(e.threadsPerCore, 1, 2, "enclave.threadsPerCore", "ERR_K8S_ENCLAVE_CPU");
  const cpus = integerIn(e.cpuCount, 1, 512, "enclave.cpuCount", "ERR_K8S_ENCLAVE_CPU");
  if (cpus % threads !== 0) {
    refuse("ERR_K8S_ENCLAVE_CPU", `enclave.cpuCount ${cpus} is not a multiple of ${threads} threads per core: Nitro gives an enclave whole cores, so nitro-cli would refuse it`);
  }
  const eif = integerIn(e.eifSizeMiB, 1, 1024 * 1024, "enclave.eifSizeMiB", "ERR_K8S_ENCLAVE_MEMORY");
  const memory = integerIn(e.memoryMiB, MIN_ENCLAVE_MEMORY_MIB, 1024 * 1024, "enclave.memoryMiB", "ERR_K8S_ENCLAVE_MEMORY");
  if (memory < EIF_MEMORY_RATIO * eif) {
    refuse(
      "ERR_K8S_ENCLAVE_MEMORY",
      `enclave.memoryMiB ${memory} is below ${EIF_MEMORY_RATIO} × the ${eif} MiB image = ${EIF_MEMORY_RATIO * eif} MiB that nitro-cli requires (E26)`,
    );
  }
  if (!Object.hasOwn(HUGEPAGE_MIB, e.hugepageSize)) refuse("ERR_K8S_ENCLAVE_MEMORY", `enclave.hugepageSize expected "2Mi" or "1Gi", got ${String(e.hugepageSize)}`);
  const page = HUGEPAGE_MIB[e.hugepageSize];
  if (memory % page !== 0) {
    refuse("ERR_K8S_ENCLAVE_MEMORY", `enclave.memoryMiB ${memory} is not a whole number of ${e.hugepageSize} huge pages; the pod's hugepages request must equal it`);
  }
  // CID 0–2 are reserved, 3 is the parent, and u32::MAX is VMADDR_CID_ANY.
  integerIn(e.cid, 4, 0xffff_fffe, "enclave.cid");
}

export function hugepageMiB(size: HugepageSize): number {
  return HUGEPAGE_MIB[size];
}

export function resolveProps(input: EnclaveGatewayInput): ResolvedProps {
  if (!(input?.trustPolicy instanceof Uint8Array)) refuse("ERR_K8S_TRUST_POLICY", "trustPolicy expected the file's bytes (Uint8Array)");
  if (!(input.operations instanceof Uint8Array)) refuse("ERR_K8S_OPERATIONS", "operations expected the file's bytes (Uint8Array)");
  if (input.sealedSecrets !== undefined && !(input.sealedSecrets instanceof Uint8Array)) {
    refuse("ERR_K8S_SEALED_SECRETS", "sealedSecrets expected the file's bytes (Uint8Array)");
  }
  const props: EnclaveGatewayProps = {
    ...DEFAULTS,
    ...input,
    enclave: { ...DEFAULTS.enclave, ...input.enclave },
    relay: { ...DEFAULTS.relay, ...input.relay },
    loadBalancer: { ...DEFAULTS.loadBalancer, ...input.loadBalancer },
  } as EnclaveGatewayProps;

  if (typeof props.name !== "string" || !DNS_LABEL.test(props.name)) {
    refuse("ERR_K8S_NAME", `name "${String(props.name).slice(0, 64)}" expected a DNS label of at most 40 characters starting with a letter`);
  }
  for (const [what, value] of [
    ["namespace", props.namespace],
    ["metricsNamespace", props.metricsNamespace],
  ] as const) {
    if (typeof value !== "string" || !NAMESPACE.test(value)) refuse("ERR_K8S_NAME", `${what} "${String(value).slice(0, 64)}" expected a DNS label`);
  }
  integerIn(props.replicas, 1, MAX_REPLICAS, "replicas", "ERR_K8S_REPLICAS");
  pinnedImage(props.image);
  pinnedImage(props.devicePluginImage);
  checkEnclave(props.enclave);

  integerIn(props.relay.cpuMillis, 50, 64_000, "relay.cpuMillis");
  integerIn(props.relay.memoryMiB, 64, 64 * 1024, "relay.memoryMiB");
  if (props.loadBalancer.scheme !== "internet-facing" && props.loadBalancer.scheme !== "internal") {
    refuse("ERR_K8S_PROP", `loadBalancer.scheme expected "internet-facing" or "internal", got ${String(props.loadBalancer.scheme)}`);
  }
  integerIn(props.loadBalancer.port, 1, 65535, "loadBalancer.port");
  if (!Array.isArray(props.loadBalancer.sourceRanges) || !props.loadBalancer.sourceRanges.every((r) => typeof r === "string" && cidr(r))) {
    refuse("ERR_K8S_PROP", "loadBalancer.sourceRanges expected an array of CIDRs (203.0.113.0/24, 2001:db8::/32)");
  }
  // NLB deregistration plus the relay's drain must fit a grace period of at most 10 minutes.
  integerIn(props.deregistrationWaitSeconds, 0, 540, "deregistrationWaitSeconds");
  if (props.serviceAccountRoleArn !== undefined && (typeof props.serviceAccountRoleArn !== "string" || !ROLE_ARN.test(props.serviceAccountRoleArn))) {
    refuse("ERR_K8S_PROP", "serviceAccountRoleArn expected arn:aws:iam::<account>:role/<name>");
  }
  if (!Array.isArray(props.tolerations)) refuse("ERR_K8S_PROP", "tolerations expected an array");
  for (const t of props.tolerations) {
    if (typeof t?.key !== "string" || !TAINT_KEY.test(t.key)) refuse("ERR_K8S_PROP", `toleration key "${String(t?.key).slice(0, 64)}" is not a valid taint key`);
    if (t.value !== undefined && (typeof t.value !== "string" || !TAINT_VALUE.test(t.value))) refuse("ERR_K8S_PROP", `toleration value for ${t.key} is not a valid label value`);
    if (!["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(t.effect))
      refuse("ERR_K8S_PROP", `toleration effect for ${t.key} expected NoSchedule, PreferNoSchedule or NoExecute`);
  }
  for (const flag of ["includeDevicePlugin", "advertiseEnclaveCpus"] as const) {
    if (typeof props[flag] !== "boolean") refuse("ERR_K8S_PROP", `${flag} expected a boolean`);
  }

  return { ...props, inputs: readInputs(props.trustPolicy, props.operations, props.sealedSecrets) };
}
