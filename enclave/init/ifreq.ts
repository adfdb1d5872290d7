import { endianness } from "node:os";

/**
 * `struct ifreq` (Linux include/uapi/linux/if.h) and the netdevice ioctls
 * (include/uapi/linux/sockios.h, documented in netdevice(7)), as plain bytes
 * so that the layout is tested without a kernel.
 *
 *   struct ifreq {                       offset size
 *     char ifr_name[IFNAMSIZ];             0     16   NUL-terminated
 *     union {                             16     24   8-aligned
 *       struct sockaddr ifr_addr;          16     16   SIOCGIFADDR / SIOCSIFADDR
 *       short           ifr_flags;         16      2   SIOCGIFFLAGS / SIOCSIFFLAGS
 *       struct ifmap    ifr_map;           16     24   the largest member on LP64
 *       ...
 *     };
 *   };                                           40
 *
 * On the two ABIs Nitro Enclaves run (x86_64, aarch64; both LP64 and
 * little-endian) the size is 40 and `ifr_flags` is a native-endian short at
 * byte 16. `sockaddr_in` keeps sin_family in host order and sin_port /
 * sin_addr in network order (ip(7)).
 */

export const IFNAMSIZ = 16;
export const IFREQ_SIZE = 40;
export const IFR_UNION_OFFSET = 16;

// include/uapi/linux/sockios.h: identical on every Linux architecture.
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const SIOCGIFADDR = 0x8915;
export const SIOCSIFADDR = 0x8916;

// include/uapi/linux/if.h `enum net_device_flags`.
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;

const LITTLE = endianness() === "LE";

/** Interface names the kernel accepts and we are willing to pass: 1..15 bytes of [A-Za-z0-9._-]. */
export function isValidInterfaceName(name: unknown): name is string {
  return typeof name === "string" && /^[A-Za-z0-9._-]{1,15}$/.test(name);
}

/** A zeroed ifreq with `ifr_name` set. Throws RangeError on a name isValidInterfaceName refuses. */
export function encodeIfreq(name: string): Uint8Array {
  if (!isValidInterfaceName(name)) throw new RangeError(`interface name must be 1..${IFNAMSIZ - 1} characters of [A-Za-z0-9._-]`);
  const buf = new Uint8Array(IFREQ_SIZE);
  buf.set(Buffer.from(name, "ascii"), 0);
  return buf;
}

function view(buf: Uint8Array): DataView {
  if (buf.length !== IFREQ_SIZE) throw new RangeError(`ifreq must be ${IFREQ_SIZE} bytes, got ${buf.length}`);
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** `ifr_flags` as the kernel wrote it: an unsigned 16-bit view of the short. */
export function readIfreqFlags(buf: Uint8Array): number {
  return view(buf).getUint16(IFR_UNION_OFFSET, LITTLE);
}

export function writeIfreqFlags(buf: Uint8Array, flags: number): void {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) throw new RangeError(`ifr_flags must fit 16 bits, got ${flags}`);
  view(buf).setUint16(IFR_UNION_OFFSET, flags, LITTLE);
}

/** Writes `ifr_addr` as a sockaddr_in (port 0) for SIOCSIFADDR. */
export function writeIfreqInet4(buf: Uint8Array, address: string): void {
  const octets = parseInet4(address);
  const v = view(buf);
  buf.fill(0, IFR_UNION_OFFSET, IFREQ_SIZE);
  v.setUint16(IFR_UNION_OFFSET, AF_INET, LITTLE);
  buf.set(octets, IFR_UNION_OFFSET + 4);
}

/** Reads `ifr_addr` after SIOCGIFADDR: the dotted quad, or undefined when the family is not AF_INET. */
export function readIfreqInet4(buf: Uint8Array): string | undefined {
  const v = view(buf);
  if (v.getUint16(IFR_UNION_OFFSET, LITTLE) !== AF_INET) return undefined;
  return Array.from(buf.subarray(IFR_UNION_OFFSET + 4, IFR_UNION_OFFSET + 8)).join(".");
}

function parseInet4(address: string): Uint8Array {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  const octets = parts?.slice(1).map(Number);
  if (!octets || octets.some((o) => o > 255)) throw new RangeError(`"${address}" is not a dotted-quad IPv4 address`);
  return Uint8Array.from(octets);
}
