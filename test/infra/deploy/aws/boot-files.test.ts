import { describe, expect, it } from "vitest";
import { DeployError } from "../../../../infra/deploy/aws/errors.js";
import { PARENT_NODE } from "../../../../infra/deploy/aws/parent-node.js";
import { enclaveUnit, relayCommand, relayUnit, runEnclaveCommand } from "../../../../infra/deploy/aws/systemd-units.js";
import { bootScript, EGW_ON_INSTANCE } from "../../../../infra/deploy/aws/user-data.js";
import { cidr, httpsUrl, instancePath, safeArg } from "../../../../infra/deploy/aws/validate.js";

const relayInput = {
  egw: EGW_ON_INSTANCE,
  enclaveCid: 16,
  enclavePort: 8443,
  listenPort: 443,
  egressVsockPort: 8001,
  trustPolicyPath: "/etc/egw/trust-policy.json",
  operationsPath: "/etc/egw/operations.json",
  extraArgs: [] as string[],
};

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof DeployError ? err.code : "other";
  }
  return undefined;
};

describe("relay and enclave commands", () => {
  it("relay: the endpoints docs/HOST.md gives for Nitro, as separate arguments", () => {
    expect(relayCommand({ ...relayInput, extraArgs: ["--proxy-protocol"] }).slice(2)).toEqual([
      "host",
      "--enclave",
      "vsock://16:8443",
      "--listen",
      "tcp://0.0.0.0:443",
      "--egress-listen",
      "vsock://4294967295:8001",
      "--trust-policy",
      "/etc/egw/trust-policy.json",
      "--operations",
      "/etc/egw/operations.json",
      "--proxy-protocol",
    ]);
    expect(relayCommand({ ...relayInput, provision: { port: 9000 } }).slice(-2)).toEqual(["--provision", "vsock://16:9000"]);
    expect(relayCommand({ ...relayInput, provision: { port: 9000, sealedSecretsPath: "/etc/egw/s.json" } }).slice(-4)).toEqual([
      "--provision",
      "vsock://16:9000",
      "--sealed-secrets",
      "/etc/egw/s.json",
    ]);
  });

  it("enclave: nitro-cli run-enclave with the allocator's sizes; --debug-mode only when asked", () => {
    const base = { eifPath: "/opt/egw/egw.eif", cpuCount: 2, memoryMib: 4096, cid: 16 };
    expect(runEnclaveCommand({ ...base, debugMode: false })).toEqual([
      "/usr/bin/nitro-cli",
      "run-enclave",
      "--eif-path",
      "/opt/egw/egw.eif",
      "--cpu-count",
      "2",
      "--memory",
      "4096",
      "--enclave-cid",
      "16",
    ]);
    expect(runEnclaveCommand({ ...base, debugMode: true }).at(-1)).toBe("--debug-mode");
    expect(enclaveUnit({ ...base, debugMode: false })).not.toMatch(/ExecStartPre/);
  });

  it("refuses to write an unsafe argument into a unit, wherever it comes from", () => {
    expect(codeOf(() => relayUnit({ ...relayInput, extraArgs: ["x;reboot"], user: "egw", enclaveUnitName: "egw-enclave.service" }))).toBe("ERR_DEPLOY_PROPS");
    expect(codeOf(() => relayUnit({ ...relayInput, trustPolicyPath: "/etc/egw/$HOME", user: "egw", enclaveUnitName: "egw-enclave.service" }))).toBe("ERR_DEPLOY_PROPS");
    expect(codeOf(() => relayUnit({ ...relayInput, user: "egw\nUser=root", enclaveUnitName: "egw-enclave.service" }))).toBe("ERR_DEPLOY_PROPS");
    expect(codeOf(() => enclaveUnit({ eifPath: "/opt/egw/my eif", cpuCount: 2, memoryMib: 4096, cid: 16, debugMode: false }))).toBe("ERR_DEPLOY_PROPS");
  });
});

describe("boot script", () => {
  const input = {
    allocator: { memoryMib: 2048, cpuCount: 2 },
    fetch: ["echo fetch"],
    relayReadable: ["/etc/egw/trust-policy.json"],
    units: [{ name: "a.service", text: "[Unit]\n" }],
  };

  it("stops at the first failure and writes files with quoted heredocs", () => {
    const script = bootScript(input).join("\n");
    expect(script.split("\n")[0]).toBe("set -euo pipefail");
    expect(script).toContain("cat > '/etc/systemd/system/a.service' <<'EGW_EOF'\n[Unit]\nEGW_EOF\n");
    expect(script).toContain("memory_mib: 2048\ncpu_count: 2\nEGW_EOF");
    // Fetch before install before units.
    expect(script.indexOf("echo fetch")).toBeLessThan(script.indexOf(`${PARENT_NODE.npm} install`));
    expect(script.indexOf(`${PARENT_NODE.npm} install`)).toBeLessThan(script.indexOf("a.service"));
  });

  it("installs the Node packages of infra/deploy/aws/parent-node.ts and runs the npm of that major", () => {
    const lines = bootScript(input);
    expect(lines).toContain(`dnf install -y aws-nitro-enclaves-cli ${PARENT_NODE.package} ${PARENT_NODE.npmPackage}`);
    expect(lines.filter((l) => /\bnpm(-\d+)?\s+install\b/.test(l))).toEqual([
      `${PARENT_NODE.npm} install --prefix /opt/egw/lib --omit=dev --no-audit --no-fund --no-save /opt/egw/enclave-gateway.tgz`,
    ]);
    // No other Node major anywhere in the script.
    const majors = [...lines.join("\n").matchAll(/\b(?:nodejs|node-|npm-)(\d+)/g)].map((m) => Number(m[1]));
    expect(majors.length).toBeGreaterThan(0);
    expect(new Set(majors)).toEqual(new Set([PARENT_NODE.major]));
  });

  it("refuses content that would end a heredoc early", () => {
    expect(codeOf(() => bootScript({ ...input, units: [{ name: "a.service", text: "x\nEGW_EOF\nreboot\n" }] }))).toBe("ERR_DEPLOY_PROPS");
  });
});

describe("guards", () => {
  it.each(["0.0.0.0/0", "203.0.113.0/24", "10.1.2.3/32", "::/0", "2001:db8::/32"])("cidr accepts %s", (v) => {
    expect(cidr(v, "x").cidr).toBe(v);
  });
  it.each(["", "0.0.0.0", "0.0.0.0/", "0.0.0.0/-1", "300.0.0.0/8", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/08x", 42, null])(
    "cidr refuses %j",
    (v) => {
      expect(codeOf(() => cidr(v, "x"))).toBe("ERR_DEPLOY_PROPS");
    },
  );
  it.each(["a b", "", "'", '"', "$x", "`x`", "%n", "a\\b", "a;b", "a\nb", "x".repeat(1025)])("safeArg refuses %j", (v) => {
    expect(codeOf(() => safeArg(v, "x"))).toBe("ERR_DEPLOY_PROPS");
  });
  it.each(["relative", "/", "/a//b", "/a/./b", "/a/../b", "/a b", "/a/$b"])("instancePath refuses %j", (v) => {
    expect(codeOf(() => instancePath(v, "x"))).toBe("ERR_DEPLOY_PROPS");
  });
  it.each(["http://e.com/x", "ftp://e.com/x", "https://e.com/a b", "https://e.com/$(id)", "not a url"])("httpsUrl refuses %j", (v) => {
    expect(codeOf(() => httpsUrl(v, "x"))).toBe("ERR_DEPLOY_PROPS");
  });
});
