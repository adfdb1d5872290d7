import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import {
  encodeIfreq,
  IFF_LOOPBACK,
  IFF_RUNNING,
  IFF_UP,
  IFNAMSIZ,
  IFR_UNION_OFFSET,
  IFREQ_SIZE,
  isValidInterfaceName,
  readIfreqFlags,
  readIfreqInet4,
  SIOCGIFADDR,
  SIOCGIFFLAGS,
  SIOCSIFADDR,
  SIOCSIFFLAGS,
  writeIfreqFlags,
  writeIfreqInet4,
} from "../../../enclave/init/ifreq.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("struct ifreq encoding", () => {
  it("has the constants of linux/sockios.h and linux/if.h", () => {
    expect([SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFADDR, SIOCSIFADDR]).toEqual([0x8913, 0x8914, 0x8915, 0x8916]);
    expect([IFF_UP, IFF_LOOPBACK, IFF_RUNNING]).toEqual([0x1, 0x8, 0x40]);
    expect([IFNAMSIZ, IFREQ_SIZE, IFR_UNION_OFFSET]).toEqual([16, 40, 16]);
  });

  it("matches the C layout koffi computes for struct ifreq on this machine", () => {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const sockaddr = koffi.struct({ sa_family: "uint16_t", sa_data: koffi.array("char", 14) });
    // struct ifmap is the union's largest member on LP64 (21 bytes padded to 24).
    const ifmap = koffi.struct({
      mem_start: "unsigned long",
      mem_end: "unsigned long",
      base_addr: "unsigned short",
      irq: "unsigned char",
      dma: "unsigned char",
      port: "unsigned char",
    });
    const union = koffi.union({ addr: sockaddr, flags: "short", ivalue: "int", map: ifmap, data: "void *" });
    const ifreq = koffi.struct({ name: koffi.array("char", IFNAMSIZ), u: union });
    expect(koffi.sizeof(ifreq)).toBe(IFREQ_SIZE);
    expect(koffi.offsetof(ifreq, "u")).toBe(IFR_UNION_OFFSET);
  });

  it("writes the name NUL-padded into the first 16 bytes and zeroes the rest", () => {
    const buf = encodeIfreq("lo");
    expect(buf.length).toBe(40);
    expect(hex(buf)).toBe(`6c6f${"00".repeat(38)}`);
    expect(hex(encodeIfreq("a".repeat(15)).subarray(0, 16))).toBe(`${"61".repeat(15)}00`);
  });

  it.each(["", "a".repeat(16), "lo/0", "lo 0", "lo:0", "lö", "lo\u0000"])("refuses the name %j", (name) => {
    expect(isValidInterfaceName(name)).toBe(false);
    expect(() => encodeIfreq(name)).toThrow(RangeError);
  });

  it("places ifr_flags as a little-endian short at byte 16", () => {
    const buf = encodeIfreq("lo");
    writeIfreqFlags(buf, IFF_UP | IFF_LOOPBACK | IFF_RUNNING);
    expect(hex(buf.subarray(16, 18))).toBe("4900");
    expect(hex(buf.subarray(18))).toBe("00".repeat(22));
    expect(readIfreqFlags(buf)).toBe(0x49);
    writeIfreqFlags(buf, 0x1043);
    expect(hex(buf.subarray(16, 18))).toBe("4310");
    expect(readIfreqFlags(buf)).toBe(0x1043);
  });

  it("refuses flags beyond 16 bits and buffers of the wrong size", () => {
    expect(() => writeIfreqFlags(encodeIfreq("lo"), 0x10000)).toThrow(RangeError);
    expect(() => writeIfreqFlags(encodeIfreq("lo"), -1)).toThrow(RangeError);
    expect(() => readIfreqFlags(new Uint8Array(32))).toThrow(RangeError);
  });

  it("writes ifr_addr as sockaddr_in: family host order, address network order", () => {
    const buf = encodeIfreq("lo");
    writeIfreqFlags(buf, 0xffff);
    writeIfreqInet4(buf, "127.0.0.1");
    // sin_family=AF_INET (2, LE) | sin_port=0 | sin_addr=7f000001 | sin_zero[8]
    expect(hex(buf.subarray(16, 32))).toBe(`020000007f000001${"00".repeat(8)}`);
    expect(hex(buf.subarray(32))).toBe("00".repeat(8));
    expect(readIfreqInet4(buf)).toBe("127.0.0.1");
  });

  it("reads no IPv4 address from another family, refuses malformed addresses", () => {
    const buf = encodeIfreq("lo");
    buf[16] = 10; // AF_INET6
    expect(readIfreqInet4(buf)).toBeUndefined();
    for (const bad of ["127.0.0", "256.0.0.1", "127.0.0.1 ", "::1", ""]) expect(() => writeIfreqInet4(encodeIfreq("lo"), bad)).toThrow(RangeError);
  });
});
