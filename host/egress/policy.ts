import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { classifyAddress, type AddressClass } from "./address-class.js";
import { ConnectRequestError, parseAuthority, type ConnectTarget } from "./connect-parser.js";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * The egress allowlist: which host:port pairs the enclave may reach, and
 * which address each connection goes to.
 *
 *  - Default deny: only exact host:port pairs on the list pass. No wildcards,
 *    no suffix matching, no default ports.
 *  - DNS is resolved at every connection (no cache here: the system
 *    resolver's own caching is all there is), and the connection is made to
 *    an address from that same answer. The proxy never hands a name to
 *    net.connect, so nothing can re-resolve between the check and the dial
 *    (DNS rebinding).
 *  - Every address in the answer must be public. One private address in the
 *    answer refuses the whole connection rather than being filtered out: an
 *    answer that mixes them is a rebinding attempt or a misconfiguration,
 *    and either way fail closed.
 *  - IP literals are refused unless the literal itself is listed. Private,
 *    loopback, link-local, CGNAT, multicast, unspecified, IPv4-mapped,
 *    unique-local and metadata addresses (169.254.169.254, fd00:ec2::254)
 *    are refused unless the rule that matched says `allowPrivate: true`.
 *    That flag exists for tests and for deliberate exceptions (e.g. IMDS,
 *    written as the literal `169.254.169.254:80`); it never widens the list.
 */

export interface EgressRule {
  /** DNS name, dotted-quad IPv4 or IPv6 (with or without brackets). */
  host: string;
  port: number;
  /** Let this exact pair reach non-public addresses. Off unless set. */
  allowPrivate?: boolean;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

/** getaddrinfo through dns.promises.lookup, all answers, in the resolver's order. */
export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export type DenialRule = "denied_host" | "denied_port" | "ip_literal" | "private_address" | "metadata_address" | "dns_failure" | "dns_timeout";

export const DENIAL_RULES: readonly DenialRule[] = ["denied_host", "denied_port", "ip_literal", "private_address", "metadata_address", "dns_failure", "dns_timeout"];

export type PolicyDecision =
  | {
      allowed: true;
      rule: "allowed";
      /** The allowlist entry that matched: configuration, safe to log. */
      entry: string;
      /** Vetted addresses, in resolver order; dial these and nothing else. */
      addresses: ResolvedAddress[];
    }
  | {
      allowed: false;
      rule: DenialRule;
      status: 403 | 502 | 504;
      /** For private_address / metadata_address: the class of the offending address. */
      addressClass?: AddressClass;
    };

export interface EgressPolicy {
  /** Normalized entries (`host:port`, IPv6 in brackets), in configuration order. */
  readonly entries: readonly string[];
  decide(target: ConnectTarget, options?: { signal?: AbortSignal }): Promise<PolicyDecision>;
}

export class EgressConfigError extends EgwError<"ERR_EGRESS_CONFIG"> {
  constructor(message: string) {
    super("ERR_EGRESS_CONFIG", message, "fix-config");
    this.name = "EgressConfigError";
  }
}

/** Upper bound on answers looked at per name; more is refused as a DNS failure. */
const MAX_ADDRESSES = 64;

interface CompiledRule {
  entry: string;
  allowPrivate: boolean;
}

/** `"host:port"` (IPv6 in brackets) as an EgressRule without allowPrivate. */
export function parseEgressRule(entry: string): EgressRule {
  const t = toTarget(entry, entry);
  return { host: t.host, port: t.port };
}

function toTarget(authority: string, shown: string): ConnectTarget {
  try {
    return parseAuthority(authority);
  } catch (err) {
    if (err instanceof ConnectRequestError) throw new EgressConfigError(`egress rule "${shown}": ${err.message}`);
    throw err;
  }
}

export function createEgressPolicy(options: { rules: ReadonlyArray<EgressRule | string>; resolver?: Resolver }): EgressPolicy {
  if (!Array.isArray(options.rules)) throw new EgressConfigError("egress rules must be an array (an empty one denies everything)");
  const resolver = options.resolver ?? systemResolver;
  if (typeof resolver !== "function") throw new EgressConfigError("egress resolver must be a function");
  // host → port → rule
  const table = new Map<string, Map<number, CompiledRule>>();
  const entries: string[] = [];
  for (const raw of options.rules) {
    const rule: EgressRule = typeof raw === "string" ? parseEgressRule(raw) : raw;
    if (typeof rule !== "object" || rule === null || typeof rule.host !== "string" || typeof rule.port !== "number") {
      throw new EgressConfigError('egress rule must be "host:port" or { host, port, allowPrivate? }');
    }
    if (rule.allowPrivate !== undefined && typeof rule.allowPrivate !== "boolean") {
      throw new EgressConfigError(`egress rule "${rule.host}:${rule.port}": allowPrivate must be a boolean`);
    }
    const host = rule.host.startsWith("[") ? rule.host : rule.host.includes(":") ? `[${rule.host}]` : rule.host;
    const t = toTarget(`${host}:${rule.port}`, `${rule.host}:${rule.port}`);
    const ports = table.get(t.host) ?? new Map<number, CompiledRule>();
    if (ports.has(t.port)) throw new EgressConfigError(`egress rule "${t.authority}" is listed twice`);
    ports.set(t.port, { entry: t.authority, allowPrivate: rule.allowPrivate === true });
    table.set(t.host, ports);
    entries.push(t.authority);
  }

  return {
    entries: Object.freeze(entries),
    async decide(target, decideOptions = {}) {
      const ports = table.get(target.host);
      const rule = ports?.get(target.port);
      if (target.kind !== "dns") {
        if (!ports) return deny("ip_literal", 403);
        if (!rule) return deny("denied_port", 403);
        return vet(rule, [{ address: target.host, family: target.kind === "ipv6" ? 6 : 4 }]);
      }
      if (!ports) return deny("denied_host", 403);
      if (!rule) return deny("denied_port", 403);
      const answer = await resolveWithin(resolver, target.host, decideOptions.signal);
      if (answer === "timeout") return deny("dns_timeout", 504);
      if (answer === "failure") return deny("dns_failure", 502);
      return vet(rule, answer);
    },
  };
}

function deny(rule: DenialRule, status: 403 | 502 | 504, addressClass?: AddressClass): PolicyDecision {
  return addressClass === undefined ? { allowed: false, rule, status } : { allowed: false, rule, status, addressClass };
}

function vet(rule: CompiledRule, addresses: ResolvedAddress[]): PolicyDecision {
  if (!rule.allowPrivate) {
    const classes = addresses.map((a) => classifyAddress(a.address));
    if (classes.includes("metadata")) return deny("metadata_address", 403, "metadata");
    const bad = classes.find((c) => c !== "public");
    if (bad !== undefined) return deny("private_address", 403, bad);
  }
  return { allowed: true, rule: "allowed", entry: rule.entry, addresses };
}

async function resolveWithin(resolver: Resolver, host: string, signal: AbortSignal | undefined): Promise<ResolvedAddress[] | "timeout" | "failure"> {
  if (signal?.aborted) return "timeout";
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<"timeout">((resolve) => {
    onAbort = () => resolve("timeout");
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const result = await Promise.race([
      // A resolver that throws synchronously is a failure too, not a crash.
      Promise.resolve()
        .then(() => resolver(host))
        .then(
          (answer) => validateAnswer(answer),
          () => "failure" as const,
        ),
      aborted,
    ]);
    return result;
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** A resolver is injected code: check its answer's shape before trusting it. */
function validateAnswer(answer: unknown): ResolvedAddress[] | "failure" {
  if (!Array.isArray(answer) || answer.length === 0 || answer.length > MAX_ADDRESSES) return "failure";
  const out: ResolvedAddress[] = [];
  for (const item of answer as unknown[]) {
    if (typeof item !== "object" || item === null) return "failure";
    const { address, family } = item as { address?: unknown; family?: unknown };
    if (typeof address !== "string") return "failure";
    const kind = isIP(address);
    if (kind === 0 || address.includes("%") || family !== kind) return "failure";
    out.push({ address, family: kind === 6 ? 6 : 4 });
  }
  return out;
}
