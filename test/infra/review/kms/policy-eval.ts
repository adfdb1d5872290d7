import { coversAction, type Statement } from "../../deploy/aws/policy-walk.js";

/*
 * A small evaluator of the IAM subset our key policies use (IAM User Guide,
 * "Policy evaluation logic" and "Condition operators"): an explicit Deny wins,
 * then any Allow, else the implicit deny. Within a condition block keys are
 * ANDed and the values of one key ORed; a missing key makes positive
 * operators false and negated ones (StringNot…) true; Null "true" holds when
 * the key is missing. Condition key names are case-insensitive, values
 * case-sensitive except for …IgnoreCase. An operator it does not model
 * throws, so a policy cannot pass by using one.
 */

export interface KmsRequest {
  principal: string;
  action: string;
  /** The attestation's PCRs (hex), or undefined for a request without Recipient. */
  pcrs?: Record<number, string>;
  context?: Record<string, string>;
}

export type Outcome = "allow" | "deny" | "implicit-deny";

function requestValue(req: KmsRequest, key: string): string | undefined {
  const k = key.toLowerCase();
  if (k === "kms:recipientattestation:imagesha384") return req.pcrs?.[0];
  const pcr = /^kms:recipientattestation:pcr(\d+)$/.exec(k);
  if (pcr) return req.pcrs?.[Number(pcr[1])];
  if (k.startsWith("kms:encryptioncontext:")) {
    const name = k.slice("kms:encryptioncontext:".length);
    const hit = Object.entries(req.context ?? {}).find(([c]) => c.toLowerCase() === name);
    return hit?.[1];
  }
  throw new Error(`policy-eval: condition key ${key} is not modelled`);
}

function holds(operator: string, actual: string | undefined, expected: unknown): boolean {
  const values = ([] as unknown[]).concat(expected).map(String);
  const lower = (s: string) => s.toLowerCase();
  switch (operator) {
    case "StringEquals":
      return actual !== undefined && values.includes(actual);
    case "StringEqualsIgnoreCase":
      return actual !== undefined && values.map(lower).includes(lower(actual));
    case "StringNotEquals":
      return actual === undefined || !values.includes(actual);
    case "StringNotEqualsIgnoreCase":
      return actual === undefined || !values.map(lower).includes(lower(actual));
    case "Null":
      return values[0] === "true" ? actual === undefined : actual !== undefined;
    default:
      throw new Error(`policy-eval: operator ${operator} is not modelled`);
  }
}

function principalMatches(principal: unknown, who: string): boolean {
  if (principal === "*") return true;
  const aws = (principal as { AWS?: unknown } | undefined)?.AWS;
  return aws === "*" || ([] as unknown[]).concat(aws).includes(who);
}

export function statementMatches(s: Statement, req: KmsRequest): boolean {
  if (!principalMatches(s.Principal, req.principal) || !coversAction(s, req.action)) return false;
  return Object.entries(s.Condition ?? {}).every(([op, block]) => Object.entries(block).every(([key, v]) => holds(op, requestValue(req, key), v)));
}

export function evaluate(statements: readonly Statement[], req: KmsRequest): Outcome {
  if (statements.some((s) => s.Effect === "Deny" && statementMatches(s, req))) return "deny";
  if (statements.some((s) => s.Effect === "Allow" && statementMatches(s, req))) return "allow";
  return "implicit-deny";
}
