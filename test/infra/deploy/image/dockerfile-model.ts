/**
 * A Dockerfile as the static image tests read it: instructions with line
 * continuations joined and comment lines dropped (also inside a
 * continuation, as Docker does), the global ARGs before the first FROM, and
 * the stages with their FROM resolved against those ARGs.
 */
export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  name: string;
  /** The FROM argument with global ARGs substituted. */
  from: string;
  body: Instruction[];
}

export interface Dockerfile {
  instructions: Instruction[];
  globalArgs: Map<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (pending === "" && line === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = "";
    const m = /^(\S+)\s+(.*)$/.exec(full)!;
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]! });
  }
  const firstFrom = instructions.findIndex((i) => i.keyword === "FROM");
  const globalArgs = new Map(
    instructions
      .slice(0, firstFrom)
      .filter((i) => i.keyword === "ARG")
      .map((i) => {
        const [name, value = ""] = i.args.split(/=(.*)/s);
        return [name!, value] as const;
      }),
  );
  const stages: Stage[] = [];
  for (const i of instructions.slice(firstFrom)) {
    if (i.keyword === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args)!;
      const from = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b)!) ?? "<unset>");
      stages.push({ name: m[2] ?? String(stages.length), from, body: [] });
    } else stages.at(-1)!.body.push(i);
  }
  return { instructions, globalArgs, stages };
}

export const runs = (s: { body: Instruction[] }) => s.body.filter((i) => i.keyword === "RUN").map((i) => i.args);
export const copies = (s: { body: Instruction[] }) => s.body.filter((i) => i.keyword === "COPY").map((i) => i.args);
