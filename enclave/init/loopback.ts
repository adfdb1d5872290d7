import net from "node:net";
import { InitError } from "./errors.js";
import {
  AF_INET,
  encodeIfreq,
  IFF_LOOPBACK,
  IFF_RUNNING,
  IFF_UP,
  isValidInterfaceName,
  readIfreqFlags,
  readIfreqInet4,
  SIOCGIFADDR,
  SIOCGIFFLAGS,
  SIOCSIFADDR,
  SIOCSIFFLAGS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  writeIfreqFlags,
  writeIfreqInet4,
} from "./ifreq.js";
import { loadNetdeviceSys, type NetdeviceSys } from "./netdevice-ffi.js";

/**
 * Brings the loopback interface up inside a Nitro Enclave.
 *
 * Why: an enclave boots with `lo` DOWN. The AWS init
 * (aws-nitro-enclaves-sdk-bootstrap init/init.c) mounts filesystems, loads
 * the NSM driver and execs the image's command; it configures no network
 * at all. `egw enclave` serves on 127.0.0.1 behind its vsock bridge and
 * reaches the egress proxy through a loopback listener, so nothing works
 * until `lo` is up. Others in the field do the same first thing:
 * brave/nitriding-daemon (system.go `assignLoAddr`: "Nitro enclaves don't do
 * that out-of-the-box"), and slirp4netns does it with this exact ioctl
 * (rootless-containers/slirp4netns#102).
 *
 * How, as ifconfig(8) does (netdevice(7)):
 *   1. socket(AF_INET, SOCK_DGRAM): any socket is a handle for netdevice ioctls.
 *   2. SIOCGIFFLAGS on "lo"; refuse an interface without IFF_LOOPBACK, so this
 *      function can never bring up a real network interface.
 *   3. Already IFF_UP → nothing to do (idempotent; needs no privilege).
 *      Otherwise SIOCSIFFLAGS with the flags read plus IFF_UP | IFF_RUNNING
 *      (read-modify-write: SIOCSIFFLAGS replaces the flags).
 *   4. SIOCGIFADDR: Linux assigns 127.0.0.1/8 and its local routes when
 *      loopback goes up (net/ipv4/devinet.c inetdev_event, NETDEV_UP +
 *      IFF_LOOPBACK). Reports from Nitro users say otherwise on some enclave
 *      kernels, so when no address is there (EADDRNOTAVAIL) we assign it with
 *      SIOCSIFADDR, which yields 127.0.0.1/8 scope host (devinet_ioctl takes
 *      the class-A prefix of the address).
 *   5. Probe: a TCP connection from 127.0.0.1 to a listener on 127.0.0.1.
 *      "Up" is not the goal, working loopback is; a kernel that accepts the
 *      ioctls but cannot route 127/8 fails here, at boot, with a clear code.
 *
 * Needs CAP_NET_ADMIN for step 3 and 4 (the enclave's command runs as root:
 * the init does not switch users). Synchronous syscalls, run once at boot.
 */

export interface BringUpLoopbackOptions {
  /** The interface; "lo" unless a test says otherwise. */
  name?: string;
  /** The kernel; the koffi binding unless a test passes a fake. */
  sys?: NetdeviceSys;
  /** Connect to 127.0.0.1 afterwards to prove loopback works (default true). */
  probe?: boolean;
  /** How long the probe may take, in milliseconds (default 2000). */
  probeTimeoutMs?: number;
}

export interface LoopbackResult {
  interface: string;
  /** true when the interface was already up and nothing was changed. */
  alreadyUp: boolean;
  /** true when 127.0.0.1 had to be assigned by us (step 4). */
  addressAssigned: boolean;
  /** The interface flags after the call (IFF_*). */
  flags: number;
  /** The IPv4 address on the interface after the call. */
  address: string;
  /** Whether the TCP probe ran (and so succeeded). */
  probed: boolean;
}

export const LOOPBACK_ADDRESS = "127.0.0.1";
const DEFAULT_PROBE_TIMEOUT_MS = 2000;

export async function bringUpLoopback(options: BringUpLoopbackOptions = {}): Promise<LoopbackResult> {
  const name = options.name ?? "lo";
  if (!isValidInterfaceName(name)) {
    throw new InitError("ERR_LOOPBACK_NAME", `interface name ${JSON.stringify(String(name)).slice(0, 40)} must be 1..15 characters of [A-Za-z0-9._-]`);
  }
  const sys = options.sys ?? loadNetdeviceSys();
  const result = configure(sys, name);
  const probe = options.probe ?? true;
  if (probe) await probeLoopback(options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS);
  return { ...result, probed: probe };
}

function configure(sys: NetdeviceSys, name: string): Omit<LoopbackResult, "probed"> {
  const sock = sys.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock.rc < 0) throw syscallError(sys, name, "socket(AF_INET, SOCK_DGRAM)", sock.errno);
  const fd = sock.rc;
  try {
    const ifr = encodeIfreq(name);
    const get = sys.ioctl(fd, SIOCGIFFLAGS, ifr);
    if (get.rc < 0) throw syscallError(sys, name, "ioctl(SIOCGIFFLAGS)", get.errno);
    let flags = readIfreqFlags(ifr);
    if ((flags & IFF_LOOPBACK) === 0) {
      throw new InitError("ERR_LOOPBACK_NOT_LOOPBACK", `interface ${name} is not a loopback interface (flags 0x${flags.toString(16)}); refusing to change it`);
    }
    const alreadyUp = (flags & IFF_UP) !== 0;
    if (!alreadyUp) {
      const set = encodeIfreq(name);
      writeIfreqFlags(set, flags | IFF_UP | IFF_RUNNING);
      const r = sys.ioctl(fd, SIOCSIFFLAGS, set);
      if (r.rc < 0) throw syscallError(sys, name, "ioctl(SIOCSIFFLAGS)", r.errno);
      const again = encodeIfreq(name);
      const check = sys.ioctl(fd, SIOCGIFFLAGS, again);
      if (check.rc < 0) throw syscallError(sys, name, "ioctl(SIOCGIFFLAGS)", check.errno);
      flags = readIfreqFlags(again);
      if ((flags & IFF_UP) === 0)
        throw new InitError("ERR_LOOPBACK_SYSCALL", `interface ${name} is still down after SIOCSIFFLAGS (flags 0x${flags.toString(16)})`, { syscall: "ioctl(SIOCSIFFLAGS)" });
    }

    let address = readAddress(sys, fd, name);
    let addressAssigned = false;
    if (address === undefined) {
      const set = encodeIfreq(name);
      writeIfreqInet4(set, LOOPBACK_ADDRESS);
      const r = sys.ioctl(fd, SIOCSIFADDR, set);
      if (r.rc < 0) throw syscallError(sys, name, "ioctl(SIOCSIFADDR)", r.errno);
      addressAssigned = true;
      address = readAddress(sys, fd, name);
      if (address === undefined) throw new InitError("ERR_LOOPBACK_SYSCALL", `interface ${name} has no IPv4 address after SIOCSIFADDR`, { syscall: "ioctl(SIOCSIFADDR)" });
    }
    return { interface: name, alreadyUp, addressAssigned, flags, address };
  } finally {
    sys.close(fd);
  }
}

/** The interface's primary IPv4 address, or undefined when it has none (EADDRNOTAVAIL). */
function readAddress(sys: NetdeviceSys, fd: number, name: string): string | undefined {
  const ifr = encodeIfreq(name);
  const r = sys.ioctl(fd, SIOCGIFADDR, ifr);
  if (r.rc < 0) {
    if (sys.errnoName(r.errno) === "EADDRNOTAVAIL") return undefined;
    throw syscallError(sys, name, "ioctl(SIOCGIFADDR)", r.errno);
  }
  return readIfreqInet4(ifr);
}

function syscallError(sys: NetdeviceSys, name: string, syscall: string, errno: number): InitError {
  const errnoName = sys.errnoName(errno);
  const options = { errno: errnoName, syscall };
  switch (errnoName) {
    case "ENODEV":
    case "ENXIO":
      return new InitError("ERR_LOOPBACK_NO_INTERFACE", `${syscall} on ${name}: no such interface (${errnoName})`, options);
    case "EPERM":
    case "EACCES":
      return new InitError(
        "ERR_LOOPBACK_PERMISSION",
        `${syscall} on ${name}: ${errnoName}; configuring an interface needs CAP_NET_ADMIN (run as root inside the enclave)`,
        options,
      );
    default:
      return new InitError("ERR_LOOPBACK_SYSCALL", `${syscall} on ${name} failed (${errnoName})`, options);
  }
}

/** One TCP connection 127.0.0.1 → 127.0.0.1 on an ephemeral port, within `timeoutMs`. */
export async function probeLoopback(timeoutMs: number = DEFAULT_PROBE_TIMEOUT_MS): Promise<void> {
  const server = net.createServer((socket) => socket.destroy());
  const sockets: net.Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      server.once("error", reject);
      server.listen(0, LOOPBACK_ADDRESS, () => {
        const { port } = server.address() as net.AddressInfo;
        const client = net.connect({ host: LOOPBACK_ADDRESS, port });
        sockets.push(client);
        client.once("error", reject);
        client.once("connect", () => resolve());
      });
    });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new InitError("ERR_LOOPBACK_UNREACHABLE", `loopback is configured but a TCP connection to ${LOOPBACK_ADDRESS} failed (${code ?? (cause as Error).message})`, {
      cause,
      ...(code !== undefined && { errno: code }),
    });
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
