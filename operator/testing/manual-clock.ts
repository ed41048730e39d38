import type { Clock, Timer } from '../clock.ts';

interface Scheduled {
  due: number;
  order: number;
  callback: () => void;
  /** Set for intervals. */
  every?: number;
  cancelled: boolean;
}

/**
 * A clock that only moves when a test says so. `advance` fires every timer that falls due, in
 * order, and lets the promises they settle run between timers, so code that awaits after a
 * timer sees the time it expects.
 */
export class ManualClock implements Clock {
  private current: number;
  private order = 0;
  private readonly timers: Scheduled[] = [];

  constructor(start = Date.parse('2026-12-01T00:00:00Z')) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): Timer {
    return this.schedule(callback, ms);
  }

  setInterval(callback: () => void, ms: number): Timer {
    return this.schedule(callback, ms, Math.max(1, ms));
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  /** Moves the time forward by `ms`, firing what falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    await settle();
    for (;;) {
      const next = this.nextDue();
      if (next === undefined || next.due > end) break;
      this.current = Math.max(this.current, next.due);
      if (next.every === undefined) next.cancelled = true;
      else next.due += next.every;
      next.callback();
      await settle();
    }
    this.current = end;
    await settle();
  }

  private schedule(callback: () => void, ms: number, every?: number): Timer {
    const timer: Scheduled = {
      due: this.current + Math.max(0, ms),
      order: this.order++,
      callback,
      cancelled: false,
      ...(every !== undefined ? { every } : {}),
    };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  private nextDue(): Scheduled | undefined {
    let next: Scheduled | undefined;
    for (let i = this.timers.length - 1; i >= 0; i--) {
      const timer = this.timers[i];
      if (!timer) continue;
      if (timer.cancelled) {
        this.timers.splice(i, 1);
        continue;
      }
      if (!next || timer.due < next.due || (timer.due === next.due && timer.order < next.order))
        next = timer;
    }
    return next;
  }
}

/** Lets queued promise callbacks and I/O callbacks that are already due run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
