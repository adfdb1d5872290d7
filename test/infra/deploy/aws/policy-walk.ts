import type { Template } from "aws-cdk-lib/assertions";

/*
 * Walks every policy statement of synthesized templates and reports each
 * Allow that could release kms:Decrypt without a recipient attestation.
 * Written against the template (what CloudFormation receives), not against
 * the constructs, so anything CDK adds by itself is walked too.
 */

export type Statement = {
  Sid?: string;
  Effect?: string;
  Principal?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

export interface FoundStatement {
  where: string;
  kind: "key-policy" | "identity-policy";
  statement: Statement;
  /** Logical IDs of the KMS keys in the statement's template. */
  keyIds: string[];
}

const toList = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function globMatches(pattern: unknown, action: string): boolean {
  if (typeof pattern !== "string") return true; // an intrinsic: cannot rule it out
  const re = new RegExp(
    `^${pattern
      .split("")
      .map((ch) => (ch === "*" ? ".*" : ch === "?" ? "." : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
      .join("")}$`,
    "i",
  );
  return re.test(action);
}

/** Does this statement's action list cover `action` (Action globs, or a NotAction that leaves it in)? */
export function coversAction(s: Statement, action: string): boolean {
  if (s.Action !== undefined) return toList(s.Action).some((a) => globMatches(a, action));
  if (s.NotAction !== undefined) return !toList(s.NotAction).some((a) => globMatches(a, action));
  return false;
}

export const coversDecrypt = (s: Statement): boolean => coversAction(s, "kms:Decrypt");

/**
 * A condition that holds only when the request carries an attestation:
 * any operator on a kms:RecipientAttestation:* key, except …IfExists (true
 * when the key is absent) and Null (attested only with "false").
 */
export function requiresAttestation(s: Statement): boolean {
  for (const [operator, block] of Object.entries(s.Condition ?? {})) {
    for (const [key, value] of Object.entries(block)) {
      if (!key.toLowerCase().startsWith("kms:recipientattestation:")) continue;
      if (operator === "Null") {
        if (String(value) === "false") return true;
        continue;
      }
      if (operator.endsWith("IfExists")) continue;
      return true;
    }
  }
  return false;
}

export function allStatements(templates: Record<string, Template>): FoundStatement[] {
  const found: FoundStatement[] = [];
  for (const [name, template] of Object.entries(templates)) {
    const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, any> }>;
    const keyIds = Object.entries(resources)
      .filter(([, r]) => r.Type === "AWS::KMS::Key")
      .map(([id]) => id);
    const push = (where: string, kind: FoundStatement["kind"], doc: any) => {
      for (const statement of toList(doc?.Statement) as Statement[]) found.push({ where: `${name}/${where}`, kind, statement, keyIds });
    };
    for (const [id, r] of Object.entries(resources)) {
      const p = r.Properties ?? {};
      if (r.Type === "AWS::KMS::Key") push(id, "key-policy", p.KeyPolicy);
      if (r.Type === "AWS::IAM::Policy" || r.Type === "AWS::IAM::ManagedPolicy") push(id, "identity-policy", p.PolicyDocument);
      if (r.Type === "AWS::IAM::Role" || r.Type === "AWS::IAM::User" || r.Type === "AWS::IAM::Group") {
        for (const inline of toList(p.Policies) as { PolicyDocument?: unknown }[]) push(id, "identity-policy", inline.PolicyDocument);
      }
    }
  }
  return found;
}

/** True when every resource of the statement is the ARN of a KMS key of the same template. */
function limitedToKey(f: FoundStatement): boolean {
  const resources = toList(f.statement.Resource);
  return (
    resources.length > 0 &&
    resources.every((r) => {
      const att = (r as { "Fn::GetAtt"?: unknown[] })?.["Fn::GetAtt"];
      return Array.isArray(att) && att[1] === "Arn" && f.keyIds.includes(String(att[0]));
    })
  );
}

/**
 * Every Allow that covers kms:Decrypt must require an attestation; an
 * identity policy must in addition name only this stack's key.
 */
export function decryptViolations(templates: Record<string, Template>): string[] {
  return allStatements(templates)
    .filter((f) => f.statement.Effect === "Allow" && coversDecrypt(f.statement))
    .filter((f) => !requiresAttestation(f.statement) || (f.kind === "identity-policy" && !limitedToKey(f)))
    .map((f) => `${f.where} ${f.statement.Sid ?? "(no Sid)"}`);
}
