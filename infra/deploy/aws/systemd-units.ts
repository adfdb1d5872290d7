import { safeArg } from "./validate.js";

/*
 * The two systemd units on the parent instance: one starts the enclave from
 * its EIF, the other runs the untrusted relay (`egw host`). Pure text, so the
 * tests read exactly what the instance gets.
 */

/** `egw` on the instance: the namespaced interpreter of AL2023's Node package (./parent-node.ts), and the installed package's CLI. */
export interface EgwInstall {
  node: string;
  cli: string;
}

export interface RelayCommandInput {
  egw: EgwInstall;
  enclaveCid: number;
  /** The port the enclave's TLS endpoint listens on, over vsock. */
  enclavePort: number;
  /** Public TCP port of the ingress relay. */
  listenPort: number;
  /** Vsock port the egress proxy listens on; the enclave dials vsock://3:<port>. */
  egressVsockPort: number;
  /** The trust policy: the relay derives its egress allowlist from it, and hands it to the enclave. */
  trustPolicyPath: string;
  /** The operations file: the relay reads its PROXY protocol switch, and hands it to the enclave. */
  operationsPath: string;
  /**
   * Boot provisioning (`egw host --provision`): the relay hands the fresh
   * enclave its trust policy, operations file, the sealed secrets and the
   * role's AWS credentials over vsock, to the port the image's
   * `--provision-listen` names.
   */
  provision?: { port: number; sealedSecretsPath?: string };
  /** Appended verbatim after the flags above (e.g. --kms-endpoint, --provision-timeout, --metrics-listen). */
  extraArgs: readonly string[];
}

/** Flags the relay command sets itself; extraArgs may not repeat them. */
export const RELAY_OWN_FLAGS = ["--enclave", "--listen", "--egress-listen", "--trust-policy", "--operations", "--provision", "--sealed-secrets"] as const;

/** VMADDR_CID_ANY: the parent listens on every CID, as docs/HOST.md describes. */
const VSOCK_CID_ANY = 4294967295;

export function relayCommand(input: RelayCommandInput): string[] {
  return [
    input.egw.node,
    input.egw.cli,
    "host",
    "--enclave",
    `vsock://${input.enclaveCid}:${input.enclavePort}`,
    "--listen",
    `tcp://0.0.0.0:${input.listenPort}`,
    "--egress-listen",
    `vsock://${VSOCK_CID_ANY}:${input.egressVsockPort}`,
    "--trust-policy",
    input.trustPolicyPath,
    "--operations",
    input.operationsPath,
    ...(input.provision ? ["--provision", `vsock://${input.enclaveCid}:${input.provision.port}`] : []),
    ...(input.provision?.sealedSecretsPath !== undefined ? ["--sealed-secrets", input.provision.sealedSecretsPath] : []),
    ...input.extraArgs,
  ];
}

export interface EnclaveCommandInput {
  eifPath: string;
  cpuCount: number;
  memoryMib: number;
  cid: number;
  /** Development only: the console becomes readable and every PCR reads as zero. */
  debugMode: boolean;
}

export function runEnclaveCommand(input: EnclaveCommandInput): string[] {
  return [
    "/usr/bin/nitro-cli",
    "run-enclave",
    "--eif-path",
    input.eifPath,
    "--cpu-count",
    String(input.cpuCount),
    "--memory",
    String(input.memoryMib),
    "--enclave-cid",
    String(input.cid),
    ...(input.debugMode ? ["--debug-mode"] : []),
  ];
}

function execLine(args: readonly string[]): string {
  return args.map((a, i) => safeArg(a, `command argument ${i}`)).join(" ");
}

export interface EnclaveUnitInput extends EnclaveCommandInput {
  /** Refuse to start an EIF that matches no measurement set (`egw measure --manifest`); omitted in debug mode. */
  measureCheck?: { egw: EgwInstall; manifestPath: string };
}

export function enclaveUnit(input: EnclaveUnitInput): string {
  const lines = [
    "[Unit]",
    "Description=enclave-gateway: the Nitro Enclave (nitro-cli run-enclave)",
    "Requires=nitro-enclaves-allocator.service",
    "After=nitro-enclaves-allocator.service",
    "",
    "[Service]",
    // nitro-cli starts the enclave and returns; the enclave is not a child of this unit.
    "Type=oneshot",
    "RemainAfterExit=yes",
  ];
  if (input.measureCheck) {
    const { egw, manifestPath } = input.measureCheck;
    // The key policy releases secrets only to these measurements: an EIF that
    // matches none would boot and then be refused by KMS; say so before booting it.
    lines.push(`ExecStartPre=${execLine([egw.node, egw.cli, "measure", input.eifPath, "--manifest", manifestPath])}`);
  }
  lines.push(
    `ExecStart=${execLine(runEnclaveCommand(input))}`,
    // One enclave per parent instance here, so "all" is this one.
    "ExecStop=/usr/bin/nitro-cli terminate-enclave --all",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  );
  return lines.join("\n");
}

export interface RelayUnitInput extends RelayCommandInput {
  /** Unprivileged user the relay runs as. */
  user: string;
  /** Name of the enclave unit, which the relay follows (restart with it: provisioning happens at enclave boot). */
  enclaveUnitName: string;
}

export function relayUnit(input: RelayUnitInput): string {
  const user = safeArg(input.user, "relay user");
  const enclaveUnitName = safeArg(input.enclaveUnitName, "enclave unit name");
  return [
    "[Unit]",
    "Description=enclave-gateway: untrusted host relay (ingress, egress allowlist proxy)",
    "Wants=network-online.target",
    `Requires=${enclaveUnitName}`,
    `After=network-online.target ${enclaveUnitName}`,
    `PartOf=${enclaveUnitName}`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${execLine(relayCommand(input))}`,
    `User=${user}`,
    `Group=${user}`,
    "Restart=always",
    "RestartSec=2",
    // SIGTERM drains connections (docs/HOST.md); give it time before SIGKILL.
    "TimeoutStopSec=30",
    // Port 443 without root; nothing else.
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}
