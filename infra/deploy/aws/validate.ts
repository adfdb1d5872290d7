import { isIPv4, isIPv6 } from "node:net";
import { DeployError } from "./errors.js";

/*
 * Guards for every prop that ends up in the boot script or a systemd unit.
 * Values are checked against a small allowed alphabet instead of being
 * quoted: a string that needs quoting in bash, in a heredoc or in systemd's
 * ExecStart (`%` specifiers, `$` expansion, quotes, backslashes, spaces) is
 * refused, so no escaping bug can turn a prop into a command.
 */

const SAFE_ARG = /^[A-Za-z0-9_@+=:,./[\]-]{1,1024}$/;
const SAFE_PATH = /^(\/[A-Za-z0-9_.-]+)+$/;

function fail(message: string): never {
  throw new DeployError("ERR_DEPLOY_PROPS", message);
}

/** One command-line argument for a systemd ExecStart line. */
export function safeArg(value: unknown, what: string): string {
  if (typeof value !== "string" || !SAFE_ARG.test(value)) {
    fail(`${what} must be 1..1024 characters of [A-Za-z0-9_@+=:,./[]-] (no spaces, quotes, $ or %), got ${JSON.stringify(String(value).slice(0, 80))}`);
  }
  return value;
}

/** An absolute path on the instance, without `.` or `..` segments. */
export function instancePath(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length > 256 || !SAFE_PATH.test(value) || value.split("/").some((s) => s === "." || s === "..")) {
    fail(`${what} must be an absolute path of [A-Za-z0-9_.-] segments, got ${JSON.stringify(String(value).slice(0, 80))}`);
  }
  return value;
}

export function integerIn(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(`${what} must be an integer in [${min}, ${max}], got ${String(value).slice(0, 40)}`);
  }
  return value;
}

export function port(value: unknown, what: string): number {
  return integerIn(value, 1, 65535, what);
}

/** An IPv4 or IPv6 CIDR block, e.g. 203.0.113.0/24 or 0.0.0.0/0. */
export function cidr(value: unknown, what: string): { cidr: string; ipv6: boolean } {
  const text = typeof value === "string" ? value : "";
  const slash = text.indexOf("/");
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  const ipv6 = isIPv6(address);
  const max = ipv6 ? 128 : 32;
  if (slash < 0 || !(isIPv4(address) || ipv6) || !/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
    fail(`${what} must be a CIDR block such as 203.0.113.0/24, got ${JSON.stringify(String(value).slice(0, 80))}`);
  }
  return { cidr: text, ipv6 };
}

/** An https URL that can be single-quoted in bash as is. */
export function httpsUrl(value: unknown, what: string): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    fail(`${what} must be an https URL`);
  }
  if (url.protocol !== "https:" || typeof value !== "string" || value.length > 2048 || /[\s'"`$\\]/.test(value)) {
    fail(`${what} must be an https URL of at most 2048 characters without quotes, spaces, $ or backslashes`);
  }
  return value;
}

export function sha256Hex(value: unknown, what: string): string {
  if (typeof value !== "string" || !/^[0-9a-f]{64}$/.test(value)) fail(`${what} must be 64 lowercase hex digits (SHA-256)`);
  return value;
}
