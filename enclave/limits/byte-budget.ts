/**
 * A budget of bytes shared by every request in flight: the request bodies
 * the gateway holds in memory at once (limits.maxInFlightBodyBytes). Without
 * it, maxBodyBytes × maxConcurrentRequests (10 MiB × 256 by default) is the
 * bound, far above an enclave's memory. Each request takes a Reservation and
 * grows it as bytes arrive (or at once to a declared Content-Length); the
 * counted bytes are the authority, a declaration only reserves earlier. It
 * never waits: a reservation that does not fit fails, and the caller answers
 * 503 overloaded without reading further.
 */
export class ByteBudget {
  private used = 0;

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 0) throw new TypeError(`"limit" expected a non-negative integer, got ${limit}`);
  }

  reservation(): Reservation {
    return new Reservation(this);
  }

  get inUse(): number {
    return this.used;
  }

  /** @internal */
  grow(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  /** @internal */
  shrink(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

export class Reservation {
  private held = 0;
  private released = false;

  constructor(private readonly budget: ByteBudget) {}

  /** Makes sure `total` bytes are held for this request; false (nothing taken) if the budget has no room. */
  ensure(total: number): boolean {
    if (this.released) return false;
    if (total <= this.held) return true;
    if (!this.budget.grow(total - this.held)) return false;
    this.held = total;
    return true;
  }

  get bytes(): number {
    return this.held;
  }

  /** Gives every held byte back; later calls do nothing. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.shrink(this.held);
    this.held = 0;
  }
}
