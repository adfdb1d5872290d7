import { EXIT, print, UsageError, type CliContext } from "./context.js";
import {
  ATTEST_USAGE,
  DEV_USAGE,
  ENCLAVE_USAGE,
  HOST_USAGE,
  INSPECT_USAGE,
  KMS_POLICY_USAGE,
  LOCAL_MODEL_USAGE,
  MANIFEST_USAGE,
  MEASURE_USAGE,
  PROXY_USAGE,
  RECEIPT_USAGE,
  SEAL_USAGE,
  VERIFY_USAGE,
} from "./usage.js";
import { isEgwError } from "../../attestation/egw-error.js";

export const USAGE = `egw (enclave-gateway) — confidential AI gateway for AWS Nitro Enclaves

Commands:
  inspect <file|->          decode and explain an attestation document
  attest verify <file|->    verify a document against the AWS root and a policy
  attest issue --dev        issue a document from the simulated NSM
  attest dev-root           print the development root certificate (PEM)
  dev                       development mode on one machine (npm start)
  enclave --config <file>   run the gateway service (inside the enclave;
                            --provision-listen on Nitro)
  host --enclave <endpoint> run the host relay and egress proxy (parent instance);
                            with --provision, hand the enclave its config and sealed
                            secrets at boot; with --generate-identity, have it make
                            or rotate the shared identity
  local-model               the built-in local model as its own HTTPS server
  verify <url>              attest a running gateway and print every check
  proxy --upstream <url>    local verifying proxy for curl, Python, LangChain
  receipt verify …          verify a saved receipt offline
  kms-policy …              print the attestation-conditioned KMS key policy
  seal …                    seal a provider key (stdin) with KMS into a sealed-secrets file
  measure <file.eif>        compute an enclave image's PCRs (and compare with a manifest)
  manifest create|sign|verify  write a release's measurements manifest; sign it; check a signature
  help [command]            show help

${ATTEST_USAGE}

${INSPECT_USAGE}

${DEV_USAGE}

${ENCLAVE_USAGE}

${HOST_USAGE}

${LOCAL_MODEL_USAGE}

${VERIFY_USAGE}

${PROXY_USAGE}

${RECEIPT_USAGE}

${KMS_POLICY_USAGE}

${SEAL_USAGE}

${MEASURE_USAGE}

${MANIFEST_USAGE}`;

type Command = (args: string[], ctx: CliContext) => Promise<number>;

// Each command is imported only when it runs, so e.g. a host-side command
// never loads enclave code into its process.
const COMMANDS: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import("./inspect.js")).inspectCommand,
  attest: async () => (await import("./attest.js")).attestCommand,
  dev: async () => (await import("./dev.js")).devCommand,
  enclave: async () => (await import("./enclave.js")).enclaveCommand,
  host: async () => (await import("./host.js")).hostCommand,
  "local-model": async () => (await import("./local-model.js")).localModelCommand,
  verify: async () => (await import("./verify.js")).verifyCommand,
  proxy: async () => (await import("./proxy.js")).proxyCommand,
  receipt: async () => (await import("./receipt.js")).receiptCommand,
  "kms-policy": async () => (await import("./kms-policy.js")).kmsPolicyCommand,
  seal: async () => (await import("./seal.js")).sealCommand,
  measure: async () => (await import("./measure.js")).measureCommand,
  manifest: async () => (await import("./manifest.js")).manifestCommand,
};

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    print(ctx.stdout, USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const load = COMMANDS[name];
  if (!load) {
    print(ctx.stderr, `egw: unknown command "${name}" (see "egw help")`);
    return EXIT.usage;
  }
  if (args.includes("--help") || args.includes("-h")) {
    print(ctx.stdout, USAGE);
    return EXIT.ok;
  }
  try {
    return await (await load())(args, ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      print(ctx.stderr, `egw ${name}: ${err.message}`);
      return EXIT.usage;
    }
    // A typed error that escaped a command (e.g. a corrupt dev CA store).
    if (isEgwError(err)) {
      print(ctx.stderr, `egw ${name}: ${err.message.startsWith(err.code) ? err.message : `${err.code}: ${err.message}`}`);
      return EXIT.usage;
    }
    // A system error (ENOENT, EACCES, EADDRINUSE …) is the operator's to fix, not a crash: its code and message, no stack.
    const errno = (err as NodeJS.ErrnoException | null)?.code;
    if (err instanceof Error && typeof errno === "string" && /^E[A-Z0-9_]+$/.test(errno)) {
      print(ctx.stderr, `egw ${name}: ${err.message.includes(errno) ? err.message : `${errno}: ${err.message}`}`);
      return EXIT.usage;
    }
    throw err;
  }
}
