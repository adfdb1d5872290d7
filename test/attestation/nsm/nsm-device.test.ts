import { existsSync, readdirSync } from "node:fs";
import { describe, it, expect } from "vitest";
import { AttestationError } from "../../../attestation/errors.js";
import { NSM_IOCTL_MAGIC, NSM_IOCTL_REQUEST, NSM_MESSAGE_SIZE, iowr, nsmMessageLayout, openNsmDevice } from "../../../attestation/nsm/nsm-device.js";
import { NsmAttester } from "../../../attestation/nsm/nsm-attester.js";
import { NSM_REQUEST_MAX_SIZE, encodeGetRandomRequest } from "../../../attestation/nsm/nsm-protocol.js";

function expectError(fn: () => unknown, code: string, message?: RegExp): AttestationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    const e = err as AttestationError;
    expect(e.code).toBe(code);
    if (message) expect(e.message).toMatch(message);
    return e;
  }
  throw new Error("expected an AttestationError");
}

describe("ioctl request number", () => {
  it("is _IOWR(0x0A, 0, 32) = 0xC0200A00", () => {
    // Linux asm-generic/ioctl.h: dir (READ|WRITE = 3) << 30 | size << 16 | type << 8 | nr.
    const expected = 3 * 2 ** 30 + 32 * 2 ** 16 + 0x0a * 2 ** 8 + 0;
    expect(expected).toBe(0xc0200a00);
    expect(NSM_IOCTL_REQUEST).toBe(0xc0200a00);
    expect(iowr(NSM_IOCTL_MAGIC, 0, NSM_MESSAGE_SIZE)).toBe(expected);
  });

  it("refuses a size that does not fit the 14-bit field", () => {
    expect(() => iowr(0x0a, 0, 1 << 14)).toThrow(RangeError);
  });
});

const linux = process.platform === "linux" && existsSync("/dev/null");

describe.skipIf(!linux)("koffi binding (real FFI, no NSM needed)", () => {
  it("lays the message out as two { u64 addr; u64 len } = 32 bytes, the size the ioctl number encodes", () => {
    const layout = nsmMessageLayout();
    expect(layout).toEqual({
      size: 32,
      requestOffset: 0,
      responseOffset: 16,
      iovecSize: 16,
      addrOffset: 0,
      lenOffset: 8,
    });
    expect(iowr(NSM_IOCTL_MAGIC, 0, layout.size)).toBe(NSM_IOCTL_REQUEST);
  });

  it("a missing device is ERR_NSM_UNAVAILABLE naming the path and ENOENT", () => {
    const e = expectError(() => openNsmDevice("/nonexistent/dev/nsm"), "ERR_NSM_UNAVAILABLE", /NSM device \/nonexistent\/dev\/nsm not found \(ENOENT\)/);
    expect(e.action).toBe("retry");
    expect(e.cause).toMatchObject({ syscall: "open", code: "ENOENT" });
  });

  it("NsmAttester.open on a missing device is ERR_NSM_UNAVAILABLE", () => {
    expectError(() => NsmAttester.open("/nonexistent/dev/nsm"), "ERR_NSM_UNAVAILABLE", /ENOENT/);
  });

  it("a directory cannot be opened read-write", () => {
    expectError(() => openNsmDevice("/"), "ERR_NSM_UNAVAILABLE", /cannot open NSM device \/ \(EISDIR\)/);
  });

  it("an empty path is refused before any syscall", () => {
    expectError(() => openNsmDevice(""), "ERR_NSM_UNAVAILABLE", /non-empty string/);
  });

  it("performs the real ioctl: /dev/null answers ENOTTY, mapped to ERR_NSM_UNAVAILABLE", () => {
    const device = openNsmDevice("/dev/null");
    try {
      const e = expectError(() => device.call(encodeGetRandomRequest()), "ERR_NSM_UNAVAILABLE", /\/dev\/null is not an NSM device \(ioctl: ENOTTY\)/);
      expect(e.cause).toMatchObject({ syscall: "ioctl", code: "ENOTTY", errno: 25 });
      // The device stays usable after a failed call.
      expectError(() => device.call(encodeGetRandomRequest()), "ERR_NSM_UNAVAILABLE", /ENOTTY/);
    } finally {
      device.close();
    }
  });

  it("checks the request size before the ioctl", () => {
    const device = openNsmDevice("/dev/null");
    try {
      expectError(() => device.call(new Uint8Array(NSM_REQUEST_MAX_SIZE + 1)), "ERR_NSM_REQUEST", /got length=4097/);
      expectError(() => device.call(new Uint8Array(0)), "ERR_NSM_REQUEST", /got length=0/);
      expectError(() => device.call("GetRandom" as unknown as Uint8Array), "ERR_NSM_REQUEST", /expected Uint8Array/);
      // A request of exactly the maximum reaches the kernel (and /dev/null refuses it).
      expectError(() => device.call(new Uint8Array(NSM_REQUEST_MAX_SIZE)), "ERR_NSM_UNAVAILABLE", /ENOTTY/);
    } finally {
      device.close();
    }
  });

  it("refuses calls after close, and close is idempotent", () => {
    const device = openNsmDevice("/dev/null");
    device.close();
    device.close();
    expectError(() => device.call(encodeGetRandomRequest()), "ERR_NSM_UNAVAILABLE", /is closed/);
  });

  it("drives NsmAttester end to end through the real FFI down to the kernel's ENOTTY", async () => {
    const attester = NsmAttester.open("/dev/null");
    await expect(attester.getRandom(16)).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE" });
    await expect(attester.attest({ nonce: new Uint8Array(8) })).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE" });
    await attester.close();
    await expect(attester.describePcr(0)).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE", message: "NSM attester is closed" });
  });

  it("does not leak file descriptors across open/close cycles", () => {
    const openFds = (): number => readdirSync("/proc/self/fd").length;
    const before = openFds();
    for (let i = 0; i < 50; i++) openNsmDevice("/dev/null").close();
    expect(openFds()).toBe(before);
  });
});
