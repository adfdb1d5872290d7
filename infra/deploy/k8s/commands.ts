import { PARENT_NODE } from "../aws/parent-node.js";

/**
 * Every command line, path and port the gateway pod runs with, in one place,
 * so that a change of the image layout or of `egw host` flags is one edit.
 * Nothing here reads the environment or a file: the chart passes validated
 * numbers in, and only validated numbers and the constants below reach a
 * command line or the launcher script (no string from props is ever
 * interpolated into shell).
 */

/**
 * Where the pod image keeps things: the same layout as the parent instance of
 * the EC2 deployment (infra/deploy/aws/user-data.ts), so one build recipe serves
 * both: AL2023 with `aws-nitro-enclaves-cli` and the Node package of
 * infra/deploy/aws/parent-node.ts (the one constant both deployments take the
 * interpreter from), the package installed under /opt/egw/lib, the EIF from
 * infra/deploy/image/build.sh.
 */
export const IMAGE_PATHS = {
  /** The enclave image file baked into the pod image; its PCRs are what clients attest. */
  eif: "/opt/egw/egw.eif",
  /** `egw` as an explicit interpreter + script: AL2023 namespaces Node per major version. */
  egw: [PARENT_NODE.node, "/opt/egw/lib/node_modules/enclave-gateway/dist/infra/cli/egw.js"],
  nitroCli: "/usr/bin/nitro-cli",
} as const;

/** Where the pod mounts things. */
export const MOUNT_PATHS = {
  /** The ConfigMap: trust policy, operations and sealed-secrets file, read-only. */
  configDir: "/etc/enclave-gateway",
  trustPolicy: "/etc/enclave-gateway/trust-policy.json",
  operations: "/etc/enclave-gateway/operations.json",
  sealedSecrets: "/etc/enclave-gateway/sealed-secrets.json",
  /** nitro-cli keeps one socket per enclave here (AWS's EKS example creates it before run-enclave). */
  nitroRun: "/run/nitro_enclaves",
  /** nitro-cli writes its log and error reports here. */
  nitroLog: "/var/log/nitro_enclaves",
  hugepages: "/dev/hugepages",
  tmp: "/tmp",
} as const;

/** File names inside the ConfigMap (the keys of its data). */
export const CONFIG_KEYS = { trustPolicy: "trust-policy.json", operations: "operations.json", sealedSecrets: "sealed-secrets.json" } as const;

export const PORTS = {
  /** The relay's TCP listener: TLS bytes for the enclave, never terminated on the host. */
  relay: 8443,
  /** The relay's Prometheus endpoint (host-side counters only, no content). */
  metrics: 9100,
  /**
   * Vsock ports fixed by the enclave image's entrypoint (infra/deploy/image/Dockerfile:
   * `--listen vsock://4294967295:8443 --egress-proxy vsock://3:8128`).
   * The gateway listens on the first; the enclave dials the parent's egress
   * CONNECT proxy on the second.
   */
  enclaveVsock: 8443,
  egressVsock: 8128,
  /** The image's `--provision-listen vsock://4294967295:9000`: trust policy, operations and sealed secrets go in here at boot. */
  provisionVsock: 9000,
} as const;

/** VMADDR_CID_ANY: the relay's egress proxy accepts vsock connections on the parent's CID. */
const VSOCK_CID_ANY = 4294967295;

/** `egw host` drains client connections for this long on SIGTERM (infra/cli/host.ts, relay.close deadline). */
export const RELAY_DRAIN_SECONDS = 10;

/** Time nitro-cli may take to terminate the enclave after the drain. */
export const ENCLAVE_TERMINATE_SECONDS = 15;

/**
 * True while nitro-cli reports a running enclave in this container. nitro-cli
 * prints pretty JSON (`"State": "RUNNING"`). Used by the launcher's watch loop
 * and by the readiness probe, so both mean the same thing.
 */
export const ENCLAVE_RUNNING_CHECK = `${IMAGE_PATHS.nitroCli} describe-enclaves | grep -q '"State": "RUNNING"'`;

export interface EnclaveRun {
  cpuCount: number;
  memoryMiB: number;
  cid: number;
}

function integer(value: number, what: string): string {
  // Defence in depth: props are validated before this, but a non-integer must never reach a shell line.
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`${what} expected a non-negative integer, got ${String(value)}`);
  return String(value);
}

/** `nitro-cli run-enclave` for the EIF in the image. Never --debug-mode: a debug enclave attests all-zero PCRs. */
export function runEnclaveArgs(run: EnclaveRun): string[] {
  return [
    IMAGE_PATHS.nitroCli,
    "run-enclave",
    "--eif-path",
    IMAGE_PATHS.eif,
    "--cpu-count",
    integer(run.cpuCount, "cpuCount"),
    "--memory",
    integer(run.memoryMiB, "memoryMiB"),
    "--enclave-cid",
    integer(run.cid, "cid"),
  ];
}

/**
 * The enclave container's script: start the enclave, then stay alive exactly
 * as long as it runs, so that an enclave that dies takes the container down
 * and the kubelet restarts it. SIGTERM arrives after the preStop delay (the
 * relay has drained by then); the enclave is terminated, not abandoned.
 * `sleep & wait` keeps the trap responsive during the poll interval.
 */
export function launcherScript(run: EnclaveRun): string {
  return [
    "set -eu",
    // Trap first: sh runs as PID 1, which ignores a SIGTERM it has no handler for.
    `trap '${IMAGE_PATHS.nitroCli} terminate-enclave --all; exit 0' TERM INT`,
    runEnclaveArgs(run).join(" "),
    `while ${ENCLAVE_RUNNING_CHECK}; do sleep 5 & wait $!; done`,
    `echo "enclave-gateway: the enclave is no longer running" >&2`,
    "exit 1",
  ].join("\n");
}

export interface RelayRun {
  cid: number;
  /** From the operations file: the enclave expects a PROXY v2 header exactly when it says so. */
  proxyProtocol: boolean;
  /** A sealed-secrets file is mounted: hand it (and the pod role's KMS credentials) to the enclave. */
  sealedSecrets: boolean;
}

/**
 * `egw host` in the pod: the ingress relay (TCP → the enclave's vsock port,
 * TLS untouched), the egress CONNECT proxy on the parent's vsock (allowlist
 * derived from the same trust policy the enclave attests), and metrics.
 *
 * --proxy-protocol is spelled out even though --operations would switch it
 * on too (infra/cli/host.ts ORs both): the manifest then shows what the
 * relay does, and tests can hold the Service annotations to it.
 *
 * --provision hands the trust policy, the operations file, the sealed-secrets file and the
 * pod's KMS credentials into the enclave over the boot-provisioning channel
 * (host/provision; the image's entrypoint waits on
 * `--provision-listen vsock://…:9000`), and exits non-zero with the enclave's
 * code if its boot fails, so the container restarts.
 */
export function relayArgs(run: RelayRun): string[] {
  return [
    ...IMAGE_PATHS.egw,
    "host",
    "--enclave",
    `vsock://${integer(run.cid, "cid")}:${PORTS.enclaveVsock}`,
    "--listen",
    `tcp://0.0.0.0:${PORTS.relay}`,
    ...(run.proxyProtocol ? ["--proxy-protocol"] : []),
    "--trust-policy",
    MOUNT_PATHS.trustPolicy,
    "--operations",
    MOUNT_PATHS.operations,
    "--provision",
    `vsock://${integer(run.cid, "cid")}:${PORTS.provisionVsock}`,
    ...(run.sealedSecrets ? ["--sealed-secrets", MOUNT_PATHS.sealedSecrets] : []),
    "--egress-listen",
    `vsock://${VSOCK_CID_ANY}:${PORTS.egressVsock}`,
    "--metrics-listen",
    `tcp://0.0.0.0:${PORTS.metrics}`,
  ];
}
