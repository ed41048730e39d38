import type { Clock, Timer } from './clock.ts';

export interface BatcherOptions {
  clock: Clock;
  /** Waits this long after the first request, so one change's burst of events is one run. */
  debounceMs: number;
  /** Least time between the starts of two runs. */
  minIntervalMs: number;
  /** Told when a run fails; the next request runs the job again. */
  onError: (error: unknown) => void;
}

/**
 * Runs an async job in batches: requests made while a run is waiting or under way are
 * coalesced into at most one more run, started no sooner than `minIntervalMs` after the last.
 */
export class Batcher {
  private readonly options: BatcherOptions;
  private readonly job: () => Promise<void>;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private pending = false;
  private lastStart = Number.NEGATIVE_INFINITY;

  constructor(options: BatcherOptions, job: () => Promise<void>) {
    this.options = options;
    this.job = job;
  }

  /** A run is waiting for its time, under way, or asked for after the one under way. */
  get busy(): boolean {
    return this.timer !== undefined || this.running !== undefined;
  }

  request(): void {
    if (this.running) {
      this.pending = true;
      return;
    }
    if (this.timer) return;
    const { clock, debounceMs, minIntervalMs } = this.options;
    const delay = Math.max(debounceMs, this.lastStart + minIntervalMs - clock.now());
    this.timer = clock.setTimeout(() => {
      this.timer = undefined;
      this.lastStart = clock.now();
      this.running = this.job()
        .catch(this.options.onError)
        .finally(() => {
          this.running = undefined;
          if (this.pending) {
            this.pending = false;
            this.request();
          }
        });
    }, delay);
  }

  /** Cancels a waiting run and waits for one under way. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.pending = false;
    await this.running;
  }
}
