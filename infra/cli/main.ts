import { EXIT, print, UsageError, type CliContext } from "./context.js";
import { commandHelp, COMMAND_HELP, isCommandName, overviewHelp, type CommandName } from "./usage.js";
import { isEgwError } from "../../attestation/egw-error.js";

type Command = (args: string[], ctx: CliContext) => Promise<number>;

// Each command is imported only when it runs, so e.g. a host-side command
// never loads enclave code into its process. Keyed like the help table
// (usage.ts COMMAND_HELP), so a command without help does not compile.
const COMMANDS: Record<CommandName, () => Promise<Command>> = {
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

const HELP_FLAGS = new Set(["--help", "-h"]);

/** `egw help [command]`: the overview, or one command's help; an unknown name is a usage error naming the known ones. */
function help(args: string[], ctx: CliContext): number {
  const [topic] = args;
  if (topic === undefined || topic === "help") {
    print(ctx.stdout, overviewHelp());
    return EXIT.ok;
  }
  if (!isCommandName(topic)) {
    print(ctx.stderr, `egw help: unknown command "${topic}"; the commands are: ${Object.keys(COMMAND_HELP).join(", ")}`);
    return EXIT.usage;
  }
  print(ctx.stdout, commandHelp(topic));
  return EXIT.ok;
}

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    print(ctx.stdout, overviewHelp());
    return EXIT.usage;
  }
  if (HELP_FLAGS.has(name)) {
    print(ctx.stdout, overviewHelp());
    return EXIT.ok;
  }
  if (name === "help") return help(args, ctx);
  if (!isCommandName(name)) {
    print(ctx.stderr, `egw: unknown command "${name}" (see "egw help")`);
    return EXIT.usage;
  }
  const load = COMMANDS[name];
  // `egw attest verify --help` too: the help of the command, printed before any of its code loads.
  if (args.some((a) => HELP_FLAGS.has(a))) {
    print(ctx.stdout, commandHelp(name));
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
