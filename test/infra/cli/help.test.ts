/**
 * `egw help`, `egw help <command>`, `egw <command> --help`: one command's
 * help alone, the overview one line per command, and every flag a command
 * parses named in its help. The flags are read from the parsers themselves:
 * parseFlags (infra/cli/context.ts, and the enclave program's own in
 * enclave/main-context.ts) is wrapped to record the option table each
 * command hands it, and each command is run with an unknown flag, which
 * every parser refuses before doing anything else.
 */
import { Readable, Writable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import type { CliContext } from "../../../infra/cli/context.js";
import { run } from "../../../infra/cli/main.js";
import { COMMAND_HELP, commandHelp, type CommandName } from "../../../infra/cli/usage.js";

const parsed = vi.hoisted(() => ({ tables: [] as string[][] }));
vi.mock("../../../infra/cli/context.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../../infra/cli/context.js")>();
  return {
    ...real,
    parseFlags: ((args: string[], options: Record<string, unknown>) => {
      parsed.tables.push(Object.keys(options));
      return real.parseFlags(args, options as never);
    }) as typeof real.parseFlags,
  };
});
vi.mock("../../../enclave/main-context.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../../enclave/main-context.js")>();
  return {
    ...real,
    parseFlags: ((args: string[], options: Record<string, unknown>) => {
      parsed.tables.push(Object.keys(options));
      return real.parseFlags(args, options as never);
    }) as typeof real.parseFlags,
  };
});

async function egw(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = {
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
    stdin: Readable.from([]),
    cwd: process.cwd(),
    now: () => new Date("2031-03-14T15:09:26Z"),
    env: {},
  };
  const code = await run(argv, ctx);
  return { code, stdout, stderr };
}

const NAMES = Object.keys(COMMAND_HELP) as CommandName[];
/** Commands that dispatch on a subcommand before parsing flags. */
const SUBCOMMANDS: Partial<Record<CommandName, string[]>> = { attest: ["verify", "issue", "dev-root"], receipt: ["verify"], manifest: ["create", "sign", "verify", "show"] };

describe("one command's help", () => {
  for (const name of NAMES) {
    it(`egw help ${name}, egw ${name} --help and -h: that help alone, exit 0`, async () => {
      const viaHelp = await egw(["help", name]);
      expect(viaHelp).toMatchObject({ code: 0, stderr: "" });
      expect(viaHelp.stdout).toBe(`${commandHelp(name)}\n`);
      expect(viaHelp.stdout).toMatch(new RegExp(`^egw ${name}: .+\\n\\nUsage:\\n {2}(printf .* \\| )?egw ${name}\\b`));
      expect(viaHelp.stdout).toMatch(/\nExamples?:\n {2}.*\begw /);
      // No other command's usage lines.
      for (const other of NAMES.filter((n) => n !== name)) expect(viaHelp.stdout, other).not.toContain(COMMAND_HELP[other].text);
      for (const flag of ["--help", "-h"]) expect(await egw([name, flag])).toEqual(viaHelp);
    });
  }

  it("a subcommand's --help is its command's help (egw attest verify --help)", async () => {
    expect((await egw(["attest", "verify", "--help"])).stdout).toBe(`${commandHelp("attest")}\n`);
    expect((await egw(["manifest", "sign", "-h"])).stdout).toBe(`${commandHelp("manifest")}\n`);
  });
});

describe("the overview", () => {
  for (const argv of [["help"], ["--help"], ["-h"]]) {
    it(`egw ${argv.join(" ")}: every command on one line, nothing more, exit 0`, async () => {
      const r = await egw(argv);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      const lines = r.stdout.split("\n");
      for (const name of NAMES)
        expect(
          lines.filter((l) => l.startsWith(`  ${name} `)),
          name,
        ).toHaveLength(1);
      expect(r.stdout).not.toContain("Usage:\n  egw"); // no command's own usage block
      expect(lines.length).toBeLessThan(NAMES.length + 15);
    });
  }

  it("no command: the overview, exit 2", async () => {
    const r = await egw([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("Commands:");
  });

  it("egw help nosuch: exit 2, naming the known commands", async () => {
    const r = await egw(["help", "nosuch"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('unknown command "nosuch"');
    for (const name of NAMES) expect(r.stderr).toContain(name);
  });
});

describe("every flag a command parses is in its help", () => {
  for (const name of NAMES) {
    for (const sub of SUBCOMMANDS[name] ?? [undefined]) {
      it(`egw ${name}${sub ? ` ${sub}` : ""}`, async () => {
        parsed.tables.length = 0;
        const r = await egw([name, ...(sub ? [sub] : []), "--egw-no-such-flag"]);
        // Control: the parser ran and refused the unknown flag, so its table was seen.
        expect(r.code).toBe(2);
        expect(r.stderr).toContain("--egw-no-such-flag");
        expect(parsed.tables.length).toBeGreaterThan(0);
        const flags = [...new Set(parsed.tables.flat())];
        expect(flags.length).toBeGreaterThan(0);
        const text = commandHelp(name);
        for (const flag of flags) expect(text, `--${flag}`).toMatch(new RegExp(`--${flag}(?![a-z-])`));
      });
    }
  }
});
