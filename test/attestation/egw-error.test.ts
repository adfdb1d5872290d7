import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { EgwError, isEgwError } from "../../attestation/egw-error.js";
import { AttestationError } from "../../attestation/errors.js";
import { ClientError } from "../../attestation/client/errors.js";
import { GatewayError } from "../../enclave/errors.js";
import { UpstreamError } from "../../enclave/providers/types.js";
import { ConfigError } from "../../enclave/runtime-config.js";
import { TransportError } from "../../host/transport/errors.js";
import { UsageError } from "../../infra/cli/context.js";

/**
 * The error rules of issue 12 as tests, in the style of public-surface.test.ts:
 * every error class in the source tree extends EgwError, and every code is
 * SCREAMING_SNAKE with an ERR_ prefix, except GatewayError's, which are the
 * snake_case API codes clients switch on (enclave/errors.ts).
 */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SOURCE_FOLDERS = ["attestation", "enclave", "host", "infra", "bench"];
/** The built-in error constructors a class could extend instead of the base. */
const BUILT_IN_ERRORS = new Set(["Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "AggregateError"]);
const ERR_CODE = /^ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/;
const API_CODE = /^[a-z]+(_[a-z]+)*$/;
/** The one class whose codes are API codes; every other code has the ERR_ form. */
const API_CODE_CLASSES = new Set(["GatewayError"]);

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "node_modules") walk(rel);
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(rel);
    }
  };
  for (const folder of SOURCE_FOLDERS) walk(folder);
  return out.sort();
}

interface ClassDecl {
  name: string;
  base: string;
  file: string;
}

/** Every `class X extends Y` (generic arguments skipped) in `text`. */
function classDeclarations(text: string, file: string): ClassDecl[] {
  const out: ClassDecl[] = [];
  for (const m of text.matchAll(/\bclass\s+([A-Za-z_$][\w$]*)\s*(?:<[^{]*?>)?\s+extends\s+([A-Za-z_$][\w$.]*)/g)) {
    out.push({ name: m[1]!, base: m[2]!, file });
  }
  return out;
}

/**
 * The error classes among `decls`: those whose chain of bases (by name)
 * reaches a built-in error. For each, whether the chain passes EgwError.
 */
function errorClasses(decls: readonly ClassDecl[]): { decl: ClassDecl; viaBase: boolean }[] {
  const byName = new Map(decls.map((d) => [d.name, d]));
  const out: { decl: ClassDecl; viaBase: boolean }[] = [];
  for (const decl of decls) {
    let viaBase = false;
    let isError = false;
    const seen = new Set<string>();
    for (let at: ClassDecl | undefined = decl; at !== undefined && !seen.has(at.name); at = byName.get(at.base)) {
      seen.add(at.name);
      if (at.base === "EgwError") viaBase = true;
      if (BUILT_IN_ERRORS.has(at.base)) isError = true;
    }
    if (isError && decl.name !== "EgwError") out.push({ decl, viaBase });
  }
  return out;
}

const FILES = sourceFiles();
const DECLS = FILES.flatMap((file) => classDeclarations(readFileSync(path.join(REPO, file), "utf8"), file));
const ERROR_CLASSES = errorClasses(DECLS);

describe("one error base", () => {
  it("the scanner finds classes however they are written, and tells base-less ones apart", () => {
    const fixture = [
      "export class A extends Error {}",
      'class B extends EgwError<"ERR_B"> {}',
      "export class C<T extends string = string> extends B {}",
      "class D extends TypeError {}",
      "class E extends Transform {}",
    ].join("\n");
    const found = errorClasses(classDeclarations(fixture, "fixture.ts"));
    expect(found.map((f) => [f.decl.name, f.viaBase])).toEqual([
      ["A", false],
      ["D", false],
    ]);
    // B and C extend the base, which extends Error: with it in the list they count, through it.
    const withBase = errorClasses(classDeclarations(`${fixture}\nclass EgwError<C> extends Error {}`, "fixture.ts"));
    expect(withBase.map((f) => [f.decl.name, f.viaBase])).toEqual([
      ["A", false],
      ["B", true],
      ["C", true],
      ["D", false],
    ]);
  });

  it("lists every error class of the source tree (issue 12 counted 23 modules' worth; none is missed)", () => {
    const names = ERROR_CLASSES.map((c) => c.decl.name);
    // A scan that stopped matching would pass the next test vacuously.
    expect(names.length).toBeGreaterThanOrEqual(32);
    for (const name of ["AttestationError", "ClientError", "GatewayError", "UpstreamError", "TransportError", "UsageError", "KmsFault", "StreamTooLarge"]) {
      expect(names).toContain(name);
    }
  });

  it("every error class extends EgwError, and only EgwError extends Error itself", () => {
    const strays = ERROR_CLASSES.filter((c) => !c.viaBase).map((c) => `${c.decl.file}: class ${c.decl.name} extends ${c.decl.base}`);
    expect(strays).toEqual([]);
    const direct = DECLS.filter((d) => BUILT_IN_ERRORS.has(d.base)).map((d) => `${d.file}: ${d.name}`);
    expect(direct).toEqual(["attestation/egw-error.ts: EgwError"]);
  });

  it("every code is ERR_ SCREAMING_SNAKE, or one of GatewayError's snake_case API codes (read from the types)", () => {
    // The checker over the files that declare error classes and the files
    // they import directly (where code unions live), nothing further: a few
    // seconds instead of a whole-program check.
    const declaring = [...new Set(ERROR_CLASSES.map((c) => c.decl.file)), "attestation/egw-error.ts"];
    const roots = new Set(declaring);
    for (const file of declaring) {
      const text = readFileSync(path.join(REPO, file), "utf8");
      for (const m of text.matchAll(/from\s+"(\.{1,2}\/[^"]+)\.js"/g)) roots.add(path.join(path.dirname(file), `${m[1]}.ts`));
    }
    const program = ts.createProgram(
      [...roots].map((f) => path.join(REPO, f)),
      {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        noEmit: true,
        noResolve: true,
        types: [],
        lib: ["lib.es2023.d.ts"],
      },
    );
    const checker = program.getTypeChecker();
    const wanted = new Map(ERROR_CLASSES.map((c) => [`${c.decl.file}:${c.decl.name}`, c.decl]));
    const codes = new Map<string, string[]>();
    for (const sf of program.getSourceFiles()) {
      const file = path.relative(REPO, sf.fileName);
      const visit = (node: ts.Node): void => {
        if (ts.isClassDeclaration(node) && node.name && wanted.has(`${file}:${node.name.text}`)) {
          const code = checker.getTypeAtLocation(node.name).getProperty("code");
          const type = code && checker.getTypeOfSymbolAtLocation(code, node);
          const parts = type === undefined ? [] : type.isUnion() ? type.types : [type];
          // A code typed as plain `string` (or a type the checker could not read) is no stable code.
          codes.set(
            node.name.text,
            parts.map((t) => (t.isStringLiteral() ? t.value : `<${checker.typeToString(t)}>`)),
          );
        }
        ts.forEachChild(node, visit);
      };
      if (declaring.includes(file)) visit(sf);
    }
    expect([...codes.keys()].sort()).toEqual(ERROR_CLASSES.map((c) => c.decl.name).sort());
    const bad: string[] = [];
    for (const [name, list] of codes) {
      if (list.length === 0) bad.push(`${name}: no code`);
      const rule = API_CODE_CLASSES.has(name) ? API_CODE : ERR_CODE;
      for (const code of list) if (!rule.test(code)) bad.push(`${name}: ${code}`);
    }
    expect(bad).toEqual([]);
    expect(codes.get("GatewayError")).toContain("invalid_request");
    expect(codes.get("UpstreamError")).toEqual(["ERR_UPSTREAM_STATUS", "ERR_UPSTREAM_CONNECT", "ERR_UPSTREAM_TIMEOUT", "ERR_UPSTREAM_MALFORMED", "ERR_UPSTREAM_ABORTED"]);
  }, 30_000);
});

describe("EgwError at run time", () => {
  it("carries code, action and the subclass's name; isEgwError sees through every subclass", () => {
    const errors = [
      new AttestationError("ERR_PCR_MISMATCH", "pcr0 differs"),
      new ClientError("ERR_MANIFEST_EXPIRED", "expired"),
      new GatewayError("rate_limited", "slow down", { retryAfter: 2 }),
      new UpstreamError("status", "HTTP 503", 503),
      new TransportError("ERR_CONNECT_REFUSED", "refused"),
      new ConfigError("bad"),
      new UsageError("--x is unknown"),
    ];
    expect(errors.map((e) => [e.name, e.code, e.action])).toEqual([
      ["AttestationError", "ERR_PCR_MISMATCH", "reject"],
      ["ClientError", "ERR_MANIFEST_EXPIRED", "fix-policy"],
      ["GatewayError", "rate_limited", "retry"],
      ["UpstreamError", "ERR_UPSTREAM_STATUS", "retry"],
      ["TransportError", "ERR_CONNECT_REFUSED", "retry"],
      ["ConfigError", "ERR_CONFIG", "fix-config"],
      ["UsageError", "ERR_USAGE", "fix-input"],
    ]);
    for (const e of errors) {
      expect(e).toBeInstanceOf(EgwError);
      expect(e).toBeInstanceOf(Error);
      expect(isEgwError(e)).toBe(true);
    }
  });

  it("is no EgwError for plain errors, Node errno errors or objects that only look like one", () => {
    const errno = Object.assign(new Error("nope"), { code: "ENOENT" });
    for (const v of [new Error("x"), errno, { code: "ERR_USAGE", action: "fix-input", message: "m" }, "ERR_USAGE", null, undefined]) expect(isEgwError(v)).toBe(false);
  });

  it("an UpstreamError's action follows what a retry can do", () => {
    expect(new UpstreamError("connect", "x").action).toBe("retry");
    expect(new UpstreamError("timeout", "x").action).toBe("retry");
    expect(new UpstreamError("status", "x", 429).action).toBe("retry");
    expect(new UpstreamError("status", "x", 401).action).toBe("fix-config");
    expect(new UpstreamError("status", "x", 400).action).toBe("fix-input");
    expect(new UpstreamError("malformed", "x").action).toBe("reject");
    expect(new UpstreamError("aborted", "x").action).toBe("stop");
  });

  it("sets `cause` only when one is given, as each class did before the base", () => {
    expect(Object.hasOwn(new GatewayError("internal_error", "x"), "cause")).toBe(false);
    expect(Object.hasOwn(new ConfigError("x"), "cause")).toBe(false);
    const cause = new Error("inner");
    expect(new GatewayError("internal_error", "x", { cause }).cause).toBe(cause);
    expect(new UsageError("x", { cause }).cause).toBe(cause);
    expect(new AttestationError("ERR_DEV_CA", "x", { cause }).cause).toBe(cause);
  });
});
