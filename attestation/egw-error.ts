/**
 * The one base of every error this project throws: a stable `code` callers
 * switch on (never the message), and an `action` that says what the caller
 * should do about it (grouped after tinfoil-js's verifier errors). The CLI
 * and the boot status read both through `isEgwError`, so a module's error is
 * reported by its code without anyone guessing at the object's shape.
 *
 * Codes are SCREAMING_SNAKE with an ERR_ prefix, except the gateway's API
 * codes (enclave/errors.ts), which are the snake_case `error.code` values
 * OpenAI-compatible clients already switch on. test/attestation/egw-error.test.ts
 * checks both rules, and that every error class in the source tree extends
 * this one.
 *
 * It lives in attestation/ because attestation/ imports nothing of ours and
 * every other folder may import attestation/: the base sits below all of them.
 *
 * Messages name the field, the check and the sizes that failed; never a
 * prompt, a completion, a key, a token or a nonce (they may be secrets or
 * attacker-chosen text). Details for operators go to `cause`.
 */

/**
 * What the caller should do:
 *  - "fix-input":  the bytes, arguments or files handed in are not well formed
 *  - "fix-policy": the caller's policy (trust policy, pins, verifier options) is unusable
 *  - "fix-config": an endpoint, option or deployment setting is wrong; retrying is useless
 *  - "reject":     well formed, but a security check failed: do not use it
 *  - "retry":      transient (peer not there yet, timeout, rate limit); try again later
 *  - "stop":       this machine or this process cannot do it at all
 */
export type EgwErrorAction = "fix-input" | "fix-policy" | "fix-config" | "reject" | "retry" | "stop";

export class EgwError<C extends string = string, A extends EgwErrorAction = EgwErrorAction> extends Error {
  readonly code: C;
  readonly action: A;

  /**
   * `options` goes to Error as given: a subclass that never sets `cause`
   * passes nothing, so no `cause` property appears on its errors.
   */
  constructor(code: C, message: string, action: A, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.action = action;
  }
}

export function isEgwError(err: unknown): err is EgwError {
  return err instanceof EgwError;
}
