/**
 * bringUpLoopback, three ways:
 *  - with a fake kernel: every branch, the exact ifreq bytes it sends, and
 *    that the socket is always closed;
 *  - on this machine, where `lo` is already up: the idempotent path and the
 *    real ENODEV error path (nothing is changed, nothing needs privilege);
 *  - in a fresh network namespace (`unshare --net`), where `lo` starts DOWN
 *    exactly as in a booting enclave: the real bring-up, the address
 *    fallback, and EPERM for an unprivileged user. Skipped where unshare is
 *    not allowed. The host's own `lo` is never touched.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InitError } from "../../../enclave/init/errors.js";
import { IFF_LOOPBACK, IFF_RUNNING, IFF_UP, readIfreqFlags, SIOCGIFADDR, SIOCGIFFLAGS, SIOCSIFADDR, SIOCSIFFLAGS } from "../../../enclave/init/ifreq.js";
import { bringUpLoopback, probeLoopback } from "../../../enclave/init/loopback.js";
import type { NetdeviceSys, SysResult } from "../../../enclave/init/netdevice-ffi.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const ERRNO: Record<string, number> = { EPERM: 1, EACCES: 13, ENODEV: 19, EINVAL: 22, EMFILE: 24, EADDRNOTAVAIL: 99 };
const NAMES = new Map(Object.entries(ERRNO).map(([name, n]) => [n, name]));

type Op = "socket" | "SIOCGIFFLAGS" | "SIOCSIFFLAGS" | "SIOCGIFADDR" | "SIOCSIFADDR";
const OPS: Record<number, Op> = { [SIOCGIFFLAGS]: "SIOCGIFFLAGS", [SIOCSIFFLAGS]: "SIOCSIFFLAGS", [SIOCGIFADDR]: "SIOCGIFADDR", [SIOCSIFADDR]: "SIOCSIFADDR" };

/** A kernel with one interface: its flags and whether it has 127.0.0.1. */
function fakeKernel(state: { flags: number; hasAddress: boolean; ignoreUp?: boolean; fail?: Partial<Record<Op, string>> }) {
  const calls: { op: Op; bytes: string }[] = [];
  let open = 0;
  let closed = 0;
  const err = (name: string): SysResult => ({ rc: -1, errno: ERRNO[name]! });
  const sys: NetdeviceSys = {
    socket: () => {
      calls.push({ op: "socket", bytes: "" });
      if (state.fail?.socket) return err(state.fail.socket);
      open++;
      return { rc: 7, errno: 0 };
    },
    ioctl: (fd, request, ifr) => {
      expect(fd).toBe(7);
      const op = OPS[request]!;
      calls.push({ op, bytes: Buffer.from(ifr).toString("hex") });
      if (state.fail?.[op]) return err(state.fail[op]!);
      switch (op) {
        case "SIOCGIFFLAGS":
          new DataView(ifr.buffer, ifr.byteOffset).setUint16(16, state.flags, true);
          break;
        case "SIOCSIFFLAGS":
          if (!state.ignoreUp) state.flags = readIfreqFlags(ifr) & ~IFF_RUNNING;
          break;
        case "SIOCGIFADDR":
          if (!state.hasAddress) return err("EADDRNOTAVAIL");
          ifr.set([2, 0, 0, 0, 127, 0, 0, 1], 16);
          break;
        case "SIOCSIFADDR":
          state.hasAddress = true;
          break;
      }
      return { rc: 0, errno: 0 };
    },
    close: () => {
      closed++;
      return { rc: 0, errno: 0 };
    },
    errnoName: (n) => NAMES.get(n) ?? `errno ${n}`,
  };
  return { sys, calls, opened: () => open, closed: () => closed };
}

async function expectInitError(promise: Promise<unknown>, code: string): Promise<InitError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InitError);
  expect((err as InitError).code).toBe(code);
  return err as InitError;
}

const LO = `6c6f${"00".repeat(14)}`; // "lo" in ifr_name

describe("bringUpLoopback with a fake kernel", () => {
  it("leaves an interface that is already up alone: no SIOCSIFFLAGS", async () => {
    const k = fakeKernel({ flags: IFF_UP | IFF_LOOPBACK | IFF_RUNNING, hasAddress: true });
    const r = await bringUpLoopback({ sys: k.sys, probe: false });
    expect(r).toEqual({ interface: "lo", alreadyUp: true, addressAssigned: false, flags: 0x49, address: "127.0.0.1", probed: false });
    expect(k.calls.map((c) => c.op)).toEqual(["socket", "SIOCGIFFLAGS", "SIOCGIFADDR"]);
    expect(k.closed()).toBe(1);
  });

  it("sets IFF_UP | IFF_RUNNING on top of the flags it read (read-modify-write)", async () => {
    const k = fakeKernel({ flags: IFF_LOOPBACK | 0x1000, hasAddress: true });
    const r = await bringUpLoopback({ sys: k.sys, probe: false });
    expect(r.alreadyUp).toBe(false);
    expect(r.flags & IFF_UP).toBe(IFF_UP);
    const set = k.calls.find((c) => c.op === "SIOCSIFFLAGS")!;
    // name "lo", then ifr_flags = 0x1000 | 0x8 | 0x1 | 0x40 = 0x1049, little-endian
    expect(set.bytes).toBe(`${LO}4910${"00".repeat(22)}`);
    expect(k.calls.map((c) => c.op)).toEqual(["socket", "SIOCGIFFLAGS", "SIOCSIFFLAGS", "SIOCGIFFLAGS", "SIOCGIFADDR"]);
    expect(k.closed()).toBe(1);
  });

  it("assigns 127.0.0.1 when the kernel brought lo up without an address", async () => {
    const k = fakeKernel({ flags: IFF_LOOPBACK, hasAddress: false });
    const r = await bringUpLoopback({ sys: k.sys, probe: false });
    expect(r).toMatchObject({ alreadyUp: false, addressAssigned: true, address: "127.0.0.1" });
    const set = k.calls.find((c) => c.op === "SIOCSIFADDR")!;
    expect(set.bytes).toBe(`${LO}020000007f000001${"00".repeat(16)}`);
  });

  it("refuses an interface without IFF_LOOPBACK and changes nothing", async () => {
    const k = fakeKernel({ flags: 0x1043, hasAddress: true });
    const err = await expectInitError(bringUpLoopback({ sys: k.sys, name: "eth0", probe: false }), "ERR_LOOPBACK_NOT_LOOPBACK");
    expect(err.message).toContain("eth0");
    expect(k.calls.map((c) => c.op)).toEqual(["socket", "SIOCGIFFLAGS"]);
    expect(k.closed()).toBe(1);
  });

  it.each<[Op, string, string]>([
    ["SIOCGIFFLAGS", "ENODEV", "ERR_LOOPBACK_NO_INTERFACE"],
    ["SIOCSIFFLAGS", "EPERM", "ERR_LOOPBACK_PERMISSION"],
    ["SIOCSIFFLAGS", "EACCES", "ERR_LOOPBACK_PERMISSION"],
    ["SIOCSIFFLAGS", "EINVAL", "ERR_LOOPBACK_SYSCALL"],
    ["SIOCGIFADDR", "EINVAL", "ERR_LOOPBACK_SYSCALL"],
  ])("%s failing with %s is %s, and the socket is closed", async (op, errno, code) => {
    const k = fakeKernel({ flags: IFF_LOOPBACK, hasAddress: true, fail: { [op]: errno } });
    const err = await expectInitError(bringUpLoopback({ sys: k.sys, probe: false }), code);
    expect(err.errno).toBe(errno);
    expect(err.syscall).toBe(`ioctl(${op})`);
    expect(k.closed()).toBe(k.opened());
  });

  it("maps EPERM on SIOCSIFADDR to ERR_LOOPBACK_PERMISSION", async () => {
    const k = fakeKernel({ flags: IFF_LOOPBACK | IFF_UP, hasAddress: false, fail: { SIOCSIFADDR: "EPERM" } });
    await expectInitError(bringUpLoopback({ sys: k.sys, probe: false }), "ERR_LOOPBACK_PERMISSION");
    expect(k.closed()).toBe(1);
  });

  it("reports a socket() failure without calling close", async () => {
    const k = fakeKernel({ flags: IFF_LOOPBACK, hasAddress: true, fail: { socket: "EMFILE" } });
    const err = await expectInitError(bringUpLoopback({ sys: k.sys, probe: false }), "ERR_LOOPBACK_SYSCALL");
    expect(err.errno).toBe("EMFILE");
    expect(k.closed()).toBe(0);
  });

  it("fails when the interface is still down after SIOCSIFFLAGS", async () => {
    const k = fakeKernel({ flags: IFF_LOOPBACK, hasAddress: true, ignoreUp: true });
    const err = await expectInitError(bringUpLoopback({ sys: k.sys, probe: false }), "ERR_LOOPBACK_SYSCALL");
    expect(err.message).toContain("still down");
  });

  it.each(["", "x".repeat(16), "lo/0", "../lo"])("refuses the name %j before any syscall", async (name) => {
    const k = fakeKernel({ flags: IFF_LOOPBACK, hasAddress: true });
    await expectInitError(bringUpLoopback({ sys: k.sys, name, probe: false }), "ERR_LOOPBACK_NAME");
    expect(k.calls).toEqual([]);
  });
});

const linux = process.platform === "linux";
const ip = (args: string[]) => spawnSync("ip", args, { encoding: "utf8" });
const haveIp = linux && ip(["-V"]).status === 0;

describe.skipIf(!linux)("bringUpLoopback on this machine (lo already up)", () => {
  it("is idempotent: reports alreadyUp, changes nothing, and the probe connects", async () => {
    const before = haveIp ? ip(["-o", "link", "show", "lo"]).stdout : "";
    const r = await bringUpLoopback();
    expect(r).toMatchObject({ interface: "lo", alreadyUp: true, addressAssigned: false, address: "127.0.0.1", probed: true });
    expect(r.flags & (IFF_UP | IFF_LOOPBACK)).toBe(IFF_UP | IFF_LOOPBACK);
    const again = await bringUpLoopback();
    expect(again).toEqual(r);
    if (haveIp) expect(ip(["-o", "link", "show", "lo"]).stdout).toBe(before);
  });

  it("reports a missing interface as ERR_LOOPBACK_NO_INTERFACE (ENODEV) without crashing", async () => {
    const err = await expectInitError(bringUpLoopback({ name: "egwnosuch0" }), "ERR_LOOPBACK_NO_INTERFACE");
    expect(err.errno).toBe("ENODEV");
    expect(err.syscall).toBe("ioctl(SIOCGIFFLAGS)");
    expect(err.message).toContain("egwnosuch0");
  });

  it("probeLoopback resolves on a working loopback", async () => {
    await expect(probeLoopback(1000)).resolves.toBeUndefined();
  });
});

// ─── a fresh network namespace: lo DOWN, as at enclave boot ─────────────────
const canUnshare = linux && spawnSync("unshare", ["--net", "true"]).status === 0;
const canDropPrivileges = canUnshare && spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "true"]).status === 0;

describe.skipIf(!canUnshare)("bringUpLoopback in a new network namespace (unshare --net)", () => {
  let dir: string;
  let runner: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-loopback-"));
    fs.chmodSync(dir, 0o755);
    const source = path.join(dir, "runner.ts");
    fs.writeFileSync(
      source,
      `import { bringUpLoopback, probeLoopback } from ${JSON.stringify(path.join(REPO_ROOT, "enclave/init/loopback.ts"))};
const mode = process.argv[2];
try {
  if (mode === "probe") { await probeLoopback(500); console.log(JSON.stringify({ probe: "ok" })); }
  else console.log(JSON.stringify(await bringUpLoopback()));
} catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall })); }
`,
    );
    runner = path.join(dir, "runner.mjs");
    // koffi stays external: a native module, loaded from the repository's node_modules via NODE_PATH.
    await build({ entryPoints: [source], outfile: runner, bundle: true, platform: "node", format: "esm", target: "node20", external: ["koffi"], logLevel: "silent" });
    fs.chmodSync(runner, 0o644);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs a shell script inside a new network namespace; each line of stdout is JSON or `ip` output. */
  function inNetns(script: string, prefix: string[] = []) {
    const r = spawnSync("unshare", ["--net", ...prefix, "sh", "-c", script], {
      encoding: "utf8",
      timeout: 20_000,
      env: { ...process.env, NODE_PATH: path.join(REPO_ROOT, "node_modules"), NODE: process.execPath, RUNNER: runner },
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r.stdout.trim().split("\n");
  }
  const json = (line: string | undefined) => JSON.parse(line ?? "null") as Record<string, unknown>;

  it("brings a DOWN lo up: 127.0.0.1 reachable afterwards, second call idempotent", () => {
    const lines = inNetns(`"$NODE" "$RUNNER" probe; "$NODE" "$RUNNER" up; "$NODE" "$RUNNER" up`);
    // Before: the probe cannot even bind 127.0.0.1.
    expect(json(lines[0])).toMatchObject({ code: "ERR_LOOPBACK_UNREACHABLE" });
    expect(json(lines[1])).toMatchObject({ interface: "lo", alreadyUp: false, addressAssigned: false, address: "127.0.0.1", probed: true });
    expect((json(lines[1]).flags as number) & IFF_UP).toBe(IFF_UP);
    expect(json(lines[2])).toMatchObject({ alreadyUp: true, addressAssigned: false, probed: true });
  });

  it.skipIf(!haveIp)("leaves lo as `ip link set lo up` would: UP, 127.0.0.1/8, local route", () => {
    const lines = inNetns(`ip -o link show lo; "$NODE" "$RUNNER" up >/dev/null; ip -o link show lo; ip -o -4 addr show lo; ip route show table local`);
    expect(lines[0]).toMatch(/state DOWN/);
    expect(lines[1]).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect(lines[2]).toMatch(/inet 127\.0\.0\.1\/8 scope host lo/);
    expect(lines.slice(3).join("\n")).toMatch(/^local 127\.0\.0\.0\/8 dev lo/m);
  });

  it.skipIf(!haveIp)("assigns 127.0.0.1/8 itself when lo is up without an address", () => {
    const lines = inNetns(`ip link set lo up && ip addr del 127.0.0.1/8 dev lo && "$NODE" "$RUNNER" up; ip -o -4 addr show lo`);
    expect(json(lines[0])).toMatchObject({ alreadyUp: true, addressAssigned: true, address: "127.0.0.1", probed: true });
    expect(lines[1]).toMatch(/inet 127\.0\.0\.1\/8 scope host lo/);
  });

  it.skipIf(!canDropPrivileges)("reports EPERM for a user without CAP_NET_ADMIN as ERR_LOOPBACK_PERMISSION", () => {
    const lines = inNetns(`exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$NODE" "$RUNNER" up`);
    expect(json(lines[0])).toEqual({ code: "ERR_LOOPBACK_PERMISSION", errno: "EPERM", syscall: "ioctl(SIOCSIFFLAGS)" });
  });
});
