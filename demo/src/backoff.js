// Reconnect delays: exponential with a cap, and jittered so that a restarted
// server is not hit by every page at the same instant (the reconnect storm of
// DESIGN.md). "Equal jitter": uniform in [ceiling/2, ceiling], so a countdown
// is always there to show, never 0 s.

export class Backoff {
  constructor ({ base = 0.5, cap = 15, random = Math.random } = {}) {
    this.base = base
    this.cap = cap
    this.random = random
    this.attempt = 0
  }

  // The next delay (seconds), and the ceiling it was drawn under.
  next () {
    const ceiling = Math.min(this.cap, this.base * 2 ** this.attempt)
    const delay = ceiling / 2 + this.random() * (ceiling / 2)
    this.attempt += 1
    return { attempt: this.attempt, ceiling, delay }
  }

  // After a connection synced: the next failure starts from the base again.
  reset () {
    this.attempt = 0
  }
}
