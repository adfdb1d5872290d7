/**
 * Token buckets keyed by a string (client name, or "attestation"), refilled
 * continuously from an injected clock. Bounded: at most `maxKeys` buckets,
 * the least recently used dropped first (a dropped bucket restarts full,
 * which can only be more permissive for an idle key, never less).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * Takes one token for `key` from a bucket of `capacity` refilled at
   * `perSecond`. Returns 0 when allowed, else the seconds until a token is due.
   */
  take(key: string, capacity: number, perSecond: number): number {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else bucket = { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) break;
      this.buckets.delete(oldest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return perSecond > 0 ? Math.ceil((1 - bucket.tokens) / perSecond) : 60;
  }
}

/** Counts in-flight work against a fixed limit; `tryAcquire` never waits. */
export class Semaphore {
  private active = 0;

  constructor(readonly limit: number) {}

  tryAcquire(): (() => void) | null {
    if (this.active >= this.limit) return null;
    this.active++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.active--;
      }
    };
  }

  get inFlight(): number {
    return this.active;
  }
}
