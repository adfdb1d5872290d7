import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { Node } from "constructs";
import type { ArtifactSource } from "./artifacts.js";
import type { EnclaveStackProps } from "./enclave-stack.js";
import { DeployError } from "./errors.js";

/**
 * The deployment's inputs, read from CDK context only (`cdk synth -c
 * manifest=build/manifest.json -c adminArn=…`, or cdk.json's "context"), so
 * the same inputs always give the same template and nothing depends on the
 * environment of whoever runs the synth. Values from `-c` arrive as strings;
 * from cdk.json they may be JSON numbers, booleans and arrays.
 */
export interface DeployContext {
  stackPrefix: string;
  env?: { account: string; region: string };
  key: {
    manifestJson: string;
    adminArn: string;
    sealerArn?: string;
    allowDebug: boolean;
    allowUnpinnedImage: boolean;
    keyAlias?: string;
    sessionManager: boolean;
  };
  /** Absent until `eif` is given: the first deployment creates the key alone, so that secrets can be sealed. */
  enclave?: Pick<
    EnclaveStackProps,
    | "eif"
    | "hostPackage"
    | "trustPolicyFile"
    | "operationsFile"
    | "sealedSecretsFile"
    | "ingressCidr"
    | "relayPort"
    | "egressPorts"
    | "instanceType"
    | "enclaveCpuCount"
    | "enclaveMemoryMib"
    | "enclaveCid"
    | "enclavePort"
    | "egressVsockPort"
    | "provisionPort"
    | "hostArgs"
  > & {
    existingVpc?: { vpcId: string; availabilityZones: string[]; publicSubnetIds: string[] };
  };
}

const MAX_MANIFEST_BYTES = 1024 * 1024;

function bad(key: string, message: string): DeployError {
  return new DeployError("ERR_DEPLOY_CONTEXT", `context "${key}": ${message}`);
}

class ContextReader {
  constructor(private readonly node: Node) {}

  private raw(key: string): unknown {
    const value: unknown = this.node.tryGetContext(key);
    return value === undefined || value === null || value === "" ? undefined : value;
  }

  string(key: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw bad(key, "expected a string");
    return value;
  }

  required(key: string, why: string): string {
    const value = this.string(key);
    if (value === undefined) throw bad(key, `missing (${why}); pass -c ${key}=…`);
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (value === true || value === "true") return true;
    if (value === false || value === "false") return false;
    throw bad(key, "expected true or false");
  }

  integer(key: string): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    const n = typeof value === "string" && /^\d{1,10}$/.test(value) ? Number(value) : value;
    if (typeof n !== "number" || !Number.isInteger(n)) throw bad(key, "expected an integer");
    return n;
  }

  /** An integer, or false to turn the feature off. */
  integerOrFalse(key: string): number | false | undefined {
    const value = this.raw(key);
    return value === false || value === "false" ? false : this.integer(key);
  }

  /** A JSON array, or a comma-separated string. */
  list(key: string): string[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value as string[];
    if (typeof value === "string")
      return value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
    throw bad(key, "expected a list of strings (JSON array or comma-separated)");
  }

  /** hostArgs: a JSON array (one element per argument), from cdk.json or `-c 'hostArgs=["--flag","value"]'`. */
  argList(key: string): string[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    let parsed: unknown = value;
    if (typeof value === "string") {
      try {
        parsed = JSON.parse(value);
      } catch {
        throw bad(key, 'expected a JSON array of strings, e.g. ["--flag","value"]');
      }
    }
    if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === "string")) throw bad(key, "expected a JSON array of strings");
    return parsed as string[];
  }

  file(key: string, why: string): string {
    const file = path.resolve(this.required(key, why));
    if (!isFile(file)) throw bad(key, `${file} is not a readable file`);
    return file;
  }

  /** A local file (uploaded as an asset) or an https URL with `<key>Sha256`. */
  artifact(key: string, why: string): ArtifactSource {
    const value = this.required(key, why);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
      const sha256 = this.required(`${key}Sha256`, `the SHA-256 the download of ${key} must have`);
      return { url: value, sha256 };
    }
    return { file: this.file(key, why) };
  }
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function readManifest(file: string): string {
  const size = statSync(file).size;
  if (size > MAX_MANIFEST_BYTES) throw bad("manifest", `${file} is ${size} bytes; a manifest is at most ${MAX_MANIFEST_BYTES}`);
  return readFileSync(file, "utf8");
}

export function readDeployContext(node: Node): DeployContext {
  const c = new ContextReader(node);
  const stackPrefix = c.string("stackPrefix") ?? "Egw";
  if (!/^[A-Za-z][A-Za-z0-9-]{0,100}$/.test(stackPrefix)) throw bad("stackPrefix", "expected letters, digits and dashes, starting with a letter");
  const account = c.string("account");
  const region = c.string("region");
  if ((account === undefined) !== (region === undefined)) throw bad(account === undefined ? "account" : "region", "account and region go together");

  const sealerArn = c.string("sealerArn");
  const keyAlias = c.string("keyAlias");
  const context: DeployContext = {
    stackPrefix,
    ...(account !== undefined && region !== undefined && { env: { account, region } }),
    key: {
      manifestJson: readManifest(c.file("manifest", "the measurements manifest, e.g. build/manifest.json")),
      adminArn: c.required("adminArn", "the key administrator, e.g. arn:aws:iam::<account>:root"),
      ...(sealerArn !== undefined && { sealerArn }),
      allowDebug: c.boolean("allowDebug", false),
      allowUnpinnedImage: c.boolean("allowUnpinnedImage", false),
      ...(keyAlias !== undefined && { keyAlias }),
      sessionManager: c.boolean("sessionManager", true),
    },
  };
  if (c.string("eif") === undefined) return context;

  const sealedSecrets = c.string("sealedSecrets") === undefined ? undefined : c.file("sealedSecrets", "the sealed-secrets file from egw seal");
  const vpcId = c.string("vpcId");
  const optional = {
    relayPort: c.integer("relayPort"),
    egressPorts: c.list("egressPorts")?.map((p) => {
      if (!/^\d{1,5}$/.test(p)) throw bad("egressPorts", "expected port numbers");
      return Number(p);
    }),
    instanceType: c.string("instanceType"),
    enclaveCpuCount: c.integer("enclaveCpuCount"),
    enclaveMemoryMib: c.integer("enclaveMemoryMib"),
    enclaveCid: c.integer("enclaveCid"),
    enclavePort: c.integer("enclavePort"),
    egressVsockPort: c.integer("egressVsockPort"),
    provisionPort: c.integerOrFalse("provisionPort"),
    hostArgs: c.argList("hostArgs"),
    existingVpc:
      vpcId === undefined
        ? undefined
        : {
            vpcId,
            availabilityZones: c.list("availabilityZones") ?? [],
            publicSubnetIds: c.list("publicSubnetIds") ?? [],
          },
  };
  if (
    optional.existingVpc &&
    (optional.existingVpc.availabilityZones.length === 0 || optional.existingVpc.availabilityZones.length !== optional.existingVpc.publicSubnetIds.length)
  ) {
    throw bad("vpcId", "with vpcId, give availabilityZones and publicSubnetIds (one subnet per zone, comma-separated)");
  }
  context.enclave = {
    eif: c.artifact("eif", "the enclave image, e.g. build/egw.eif"),
    hostPackage: c.artifact("hostPackage", "the enclave-gateway npm tarball for the relay"),
    trustPolicyFile: c.file("trustPolicy", "the trust policy (JSON): providers, key ARNs, identity mode; written by the key owner and reviewed"),
    operationsFile: c.file("operations", "the operations file (JSON): client tokens and limits"),
    ...(sealedSecrets !== undefined && { sealedSecretsFile: sealedSecrets }),
    ingressCidr: c.required("ingressCidr", "who may reach the relay, e.g. 0.0.0.0/0"),
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
  return context;
}
