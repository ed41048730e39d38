/**
 * The operator's only source of time. Everything that reads the time or waits (leases, backoff,
 * batching, resyncs, caches of registry answers) takes a Clock, so unit tests step a manual
 * clock instead of sleeping, and production uses the system clock.
 */

/** A pending timer; `cancel` is safe to call more than once. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `callback` once after `ms`. Timers never keep the process alive on their own. */
  setTimeout(callback: () => void, ms: number): Timer;
  /** Runs `callback` every `ms` until cancelled. */
  setInterval(callback: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return {
      cancel: () => {
        clearTimeout(handle);
      },
    };
  },
  setInterval: (callback, ms) => {
    const handle = setInterval(callback, ms);
    handle.unref();
    return {
      cancel: () => {
        clearInterval(handle);
      },
    };
  },
};

/**
 * Resolves with `promise`'s value, or with undefined as soon as `signal` aborts (or already has),
 * whichever comes first: a wait that a stop must not sit behind.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  let onAbort = (): void => undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => {
      resolve(undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => {
    signal.removeEventListener('abort', onAbort);
  });
}

/** Resolves after `ms` on `clock`, or at once when `signal` aborts (or already has). */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
