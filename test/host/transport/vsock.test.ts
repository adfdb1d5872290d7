import fc from "fast-check";
import { endianness } from "node:os";
import { describe, expect, it } from "vitest";
import { connectErrorCode, TransportError } from "../../../host/transport/errors.js";
import { VMADDR_CID_ANY, VMADDR_PORT_ANY } from "../../../host/transport/endpoint.js";
import { AF_VSOCK } from "../../../host/transport/ffi.js";
import { connect, listen } from "../../../host/transport/transport.js";
import { SOCKADDR_VM_SIZE, connectVsock, decodeSockaddrVm, encodeSockaddrVm, sockaddrVmLayout } from "../../../host/transport/vsock.js";

/**
 * This kernel has no vsock loopback, and the only vsock peer reachable
 * from here would be this VM's own host, which is not ours to dial. So
 * these tests never connect over vsock: they pin the ABI, the error
 * mapping, and that AF_VSOCK sockets can be created, bound and listened
 * on here when the kernel has vsock. The data path after socket(2) is the
 * same code as fd-socket.test.ts runs over AF_INET.
 */
const linux = process.platform === "linux";

describe("struct sockaddr_vm", () => {
  it("is 16 bytes: family@0 port@4 cid@8 flags@12, as koffi lays out the C declaration", () => {
    if (!linux) return;
    expect(sockaddrVmLayout()).toEqual({ size: 16, family: 0, port: 4, cid: 8, flags: 12 });
    expect(SOCKADDR_VM_SIZE).toBe(16);
  });

  it("encodes family 40, port and cid in host byte order, reserved/flags/zero bytes all 0", () => {
    const bytes = encodeSockaddrVm(16, 5000);
    expect(bytes.length).toBe(16);
    const le = endianness() === "LE";
    const view = new DataView(bytes.buffer);
    expect(view.getUint16(0, le)).toBe(AF_VSOCK);
    expect(view.getUint16(2, le)).toBe(0);
    expect(view.getUint32(4, le)).toBe(5000);
    expect(view.getUint32(8, le)).toBe(16);
    expect(Array.from(bytes.subarray(12))).toEqual([0, 0, 0, 0]);
    if (le) expect(Buffer.from(bytes).toString("hex")).toBe("28000000881300001000000000000000");
  });

  it("decode(encode(cid, port)) round-trips every u32 pair", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (cid, port) => {
        expect(decodeSockaddrVm(encodeSockaddrVm(cid, port))).toEqual({ cid, port });
      }),
    );
  });

  it("refuses out-of-range values and foreign families", () => {
    expect(() => encodeSockaddrVm(-1, 1)).toThrow(RangeError);
    expect(() => encodeSockaddrVm(2 ** 32, 1)).toThrow(RangeError);
    expect(() => encodeSockaddrVm(3, 1.5)).toThrow(RangeError);
    expect(() => decodeSockaddrVm(new Uint8Array(15))).toThrow(/16 bytes/);
    expect(() => decodeSockaddrVm(new Uint8Array(16))).toThrow(/family 40/);
  });
});

describe("vsock error mapping", () => {
  it.each([
    ["ECONNRESET", "ERR_CONNECT_REFUSED"], // virtio-vsock: no listener on that port → RST
    ["ECONNREFUSED", "ERR_CONNECT_REFUSED"],
    ["ETIMEDOUT", "ERR_CONNECT_TIMEOUT"], // SO_VM_SOCKETS_CONNECT_TIMEOUT elapsed
    ["ENODEV", "ERR_VSOCK_UNSUPPORTED"], // no transport for that cid (e.g. cid 1 without vsock_loopback)
    ["EAFNOSUPPORT", "ERR_VSOCK_UNSUPPORTED"], // kernel without AF_VSOCK
    ["EACCES", "ERR_CONNECT_FAILED"],
    [undefined, "ERR_CONNECT_FAILED"],
  ])("%s → %s", (errno, code) => {
    expect(connectErrorCode(errno)).toBe(code);
  });

  it("dialing cid or port 'any' is refused before any syscall", async () => {
    await expect(connectVsock({ kind: "vsock", cid: VMADDR_CID_ANY, port: 1 }, { timeoutMs: 100 })).rejects.toMatchObject({ code: "ERR_ENDPOINT_INVALID" });
    await expect(connect({ kind: "vsock", cid: 16, port: VMADDR_PORT_ANY }, { timeoutMs: 100 })).rejects.toMatchObject({ code: "ERR_ENDPOINT_INVALID" });
    await expect(connect({ kind: "vsock", cid: 16, port: 1 }, { timeoutMs: 0 })).rejects.toMatchObject({ code: "ERR_OPTION_INVALID" });
  });
});

describe.skipIf(!linux)("AF_VSOCK on this machine (no connection is made)", () => {
  it("listens on vsock://any:any and reports the port the kernel chose, or says clearly that vsock is unsupported", async () => {
    let server;
    try {
      server = await listen({ kind: "vsock", cid: VMADDR_CID_ANY, port: VMADDR_PORT_ANY }, () => {
        throw new Error("nothing should connect");
      });
    } catch (err) {
      // A kernel without the vsock module: socket(AF_VSOCK) → EAFNOSUPPORT.
      expect(err).toBeInstanceOf(TransportError);
      expect((err as TransportError).code).toBe("ERR_VSOCK_UNSUPPORTED");
      expect((err as TransportError).message).toMatch(/EAFNOSUPPORT|vsock/);
      return;
    }
    expect(server.address.kind).toBe("vsock");
    if (server.address.kind !== "vsock") return;
    expect(server.address.cid).toBe(VMADDR_CID_ANY);
    // The kernel allocates ephemeral vsock ports from 1024 up (net/vmw_vsock/af_vsock.c __vsock_bind_connectible).
    expect(server.address.port).toBeGreaterThanOrEqual(1024);
    expect(server.address.port).toBeLessThan(VMADDR_PORT_ANY);
    await server.close();
    await server.close(); // idempotent
  });
});
