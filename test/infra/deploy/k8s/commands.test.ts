import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseEndpoint } from "../../../../host/transport/index.js";
import { HOST_USAGE } from "../../../../infra/cli/usage.js";
import { ENCLAVE_RUNNING_CHECK, launcherScript, PORTS, relayArgs, runEnclaveArgs } from "../../../../infra/deploy/k8s/commands.js";

const run = { cpuCount: 2, memoryMiB: 4096, cid: 16 };

describe("the relay command", () => {
  const args = relayArgs({ cid: 16, proxyProtocol: true, sealedSecrets: true });
  const value = (flag: string) => args[args.indexOf(flag) + 1]!;

  it("uses only flags that `egw host` documents", () => {
    const flags = args.filter((a) => a.startsWith("--"));
    expect(flags.length).toBeGreaterThan(4);
    for (const flag of flags) expect(HOST_USAGE).toContain(`${flag}`);
    expect(args.slice(2, 3)).toEqual(["host"]);
  });

  it("gives every endpoint in a form the relay's own parser accepts", () => {
    expect(parseEndpoint(value("--enclave"))).toEqual({ kind: "vsock", cid: 16, port: PORTS.enclaveVsock });
    expect(parseEndpoint(value("--listen"))).toMatchObject({ kind: "tcp", port: PORTS.relay });
    expect(parseEndpoint(value("--egress-listen"))).toEqual({ kind: "vsock", cid: 4294967295, port: PORTS.egressVsock });
    expect(parseEndpoint(value("--metrics-listen"))).toMatchObject({ kind: "tcp", port: PORTS.metrics });
    expect(parseEndpoint(value("--provision"))).toEqual({ kind: "vsock", cid: 16, port: PORTS.provisionVsock });
  });

  it("provisions the enclave at boot, with the sealed-secrets file only when one is mounted", () => {
    expect(value("--sealed-secrets")).toBe("/etc/enclave-gateway/sealed-secrets.json");
    const without = relayArgs({ cid: 16, proxyProtocol: false, sealedSecrets: false });
    expect(without).toContain("--provision");
    expect(without).not.toContain("--sealed-secrets");
  });

  it("adds --proxy-protocol only when asked", () => {
    expect(args).toContain("--proxy-protocol");
    expect(relayArgs({ cid: 16, proxyProtocol: false, sealedSecrets: false })).not.toContain("--proxy-protocol");
  });

  it("matches the vsock ports the enclave image's entrypoint uses", () => {
    // The measured image fixes these; a mismatch would leave the relay dialling nothing.
    const dockerfile = readFileSync(new URL("../../../../infra/deploy/image/Dockerfile", import.meta.url), "utf8");
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
    expect(entrypoint).not.toBeNull();
    const argv = JSON.parse(entrypoint![1]!) as string[];
    const at = (flag: string) => argv[argv.indexOf(flag) + 1];
    expect(at("--listen")).toBe(`vsock://4294967295:${PORTS.enclaveVsock}`);
    expect(at("--egress-proxy")).toBe(`vsock://3:${PORTS.egressVsock}`);
    expect(at("--provision-listen")).toBe(`vsock://4294967295:${PORTS.provisionVsock}`);
  });
});

describe("starting the enclave", () => {
  it("asks nitro-cli for exactly the props' sizes, never debug mode", () => {
    expect(runEnclaveArgs(run)).toEqual(["/usr/bin/nitro-cli", "run-enclave", "--eif-path", "/opt/egw/egw.eif", "--cpu-count", "2", "--memory", "4096", "--enclave-cid", "16"]);
    expect(launcherScript(run)).not.toContain("--debug-mode");
  });

  it("never lets a non-integer reach the shell", () => {
    expect(() => runEnclaveArgs({ ...run, memoryMiB: 1.5 })).toThrow(TypeError);
    expect(() => launcherScript({ ...run, cpuCount: Number.NaN })).toThrow(TypeError);
    expect(() => relayArgs({ cid: -1, proxyProtocol: false, sealedSecrets: false })).toThrow(TypeError);
  });

  it("installs the SIGTERM trap before starting the enclave, and watches it with the readiness check", () => {
    const lines = launcherScript(run).split("\n");
    const trap = lines.findIndex((l) => l.startsWith("trap "));
    const start = lines.findIndex((l) => l.includes("run-enclave"));
    expect(trap).toBeGreaterThanOrEqual(0);
    expect(trap).toBeLessThan(start);
    expect(lines[trap]).toContain("terminate-enclave --all");
    expect(lines).toContain(`while ${ENCLAVE_RUNNING_CHECK}; do sleep 5 & wait $!; done`);
    expect(lines.at(-1)).toBe("exit 1");
  });

  it("is a script /bin/sh parses", () => {
    const result = spawnSync("/bin/sh", ["-n", "-c", launcherScript(run)], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
