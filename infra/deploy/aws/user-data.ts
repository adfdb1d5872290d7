import { DeployError } from "./errors.js";
import { PARENT_NODE } from "./parent-node.js";
import type { EgwInstall } from "./systemd-units.js";
import { instancePath, safeArg } from "./validate.js";

/** Where things live on the parent instance. */
export const LAYOUT = {
  eif: "/opt/egw/egw.eif",
  hostPackage: "/opt/egw/enclave-gateway.tgz",
  npmPrefix: "/opt/egw/lib",
  manifest: "/etc/egw/manifest.json",
  configDir: "/etc/egw",
  unitDir: "/etc/systemd/system",
  relayUser: "egw",
  enclaveUnit: "egw-enclave.service",
  relayUnit: "egw-relay.service",
} as const;

export const EGW_ON_INSTANCE: EgwInstall = {
  // AL2023 namespaces Node.js per major version; /usr/bin/node is an alternatives link that may move.
  node: PARENT_NODE.node,
  cli: `${LAYOUT.npmPrefix}/node_modules/enclave-gateway/dist/infra/cli/egw.js`,
};

export interface BootScriptInput {
  allocator: { memoryMib: number; cpuCount: number };
  /** Download lines for the EIF, the host package, the trust policy, the operations file and (optionally) the sealed secrets. */
  fetch: readonly string[];
  /** Files the relay reads (trust policy, operations, sealed secrets): made readable by its group only. */
  relayReadable: readonly string[];
  /** Written for the enclave unit's `egw measure --manifest` check; absent in debug mode. */
  manifestJson?: string;
  units: readonly { name: string; text: string }[];
}

const EOF_MARK = "EGW_EOF";

/** A quoted heredoc: no expansion inside, so the content is written byte for byte. */
function writeFile(path: string, content: string, mode: string, owner = "root:root"): string[] {
  const body = content.endsWith("\n") ? content.slice(0, -1) : content;
  if (body.split("\n").includes(EOF_MARK)) throw new DeployError("ERR_DEPLOY_PROPS", `${path}: content contains the heredoc terminator`);
  return [`cat > '${path}' <<'${EOF_MARK}'`, body, EOF_MARK, `chown ${owner} '${path}'`, `chmod ${mode} '${path}'`];
}

/**
 * The parent instance's first-boot script (cloud-init runs it as root, once).
 * `set -euo pipefail`: any failed step stops the boot before the enclave or
 * the relay starts, and the reason is in /var/log/cloud-init-output.log.
 * Nothing secret passes through it: the sealed secrets are ciphertext.
 */
export function bootScript(input: BootScriptInput): string[] {
  const user = LAYOUT.relayUser;
  const lines: string[] = [
    "set -euo pipefail",
    // cloud-init runs user data without HOME; npm needs one for its cache.
    "export HOME=/root",
    `dnf install -y aws-nitro-enclaves-cli ${PARENT_NODE.package} ${PARENT_NODE.npmPackage}`,
    `id -u ${user} >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /sbin/nologin ${user}`,
    `install -d -m 0755 /etc/nitro_enclaves /opt/egw ${LAYOUT.npmPrefix}`,
    `install -d -m 0750 -o root -g ${user} ${LAYOUT.configDir}`,
    // The allocator reserves the enclave's memory (hugepages) and CPUs at boot;
    // run-enclave asks for exactly these amounts.
    ...writeFile(
      "/etc/nitro_enclaves/allocator.yaml",
      [
        "---",
        "# Written by the enclave-gateway stack (infra/deploy/aws): taken from the parent for the enclave.",
        `memory_mib: ${input.allocator.memoryMib}`,
        `cpu_count: ${input.allocator.cpuCount}`,
      ].join("\n"),
      "0644",
    ),
    "systemctl enable --now nitro-enclaves-allocator.service",
    ...input.fetch,
  ];
  for (const file of input.relayReadable) {
    const path = instancePath(file, "relay-readable file");
    lines.push(`chown root:${user} '${path}'`, `chmod 0640 '${path}'`);
  }
  // The host package's dependencies come from the npm registry at boot. The
  // host is outside the trust boundary: a bad dependency here can deny
  // service or watch ciphertext, not read prompts or keys.
  lines.push(`${PARENT_NODE.npm} install --prefix ${LAYOUT.npmPrefix} --omit=dev --no-audit --no-fund --no-save ${LAYOUT.hostPackage}`);
  if (input.manifestJson !== undefined) lines.push(...writeFile(LAYOUT.manifest, input.manifestJson, "0644"));
  for (const unit of input.units) {
    const name = safeArg(unit.name, "unit name");
    lines.push(...writeFile(`${LAYOUT.unitDir}/${name}`, unit.text, "0644"));
  }
  lines.push(
    "systemctl daemon-reload",
    // Enclave first: a oneshot, so `start` returns only once nitro-cli has
    // launched it (or failed, which stops this script).
    `systemctl enable --now ${input.units.map((u) => u.name).join(" ")}`,
  );
  return lines;
}
