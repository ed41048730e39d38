import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long to wait after a component's exit for its output pipes to close. */
const OUTPUT_DRAIN_MS = 2000;

/** How a component of the local control plane is started. */
export interface ComponentSpec {
  name: string;
  command: string;
  args: string[];
  logPath: string;
  env?: NodeJS.ProcessEnv;
}

/** The last `lines` lines of a log file, for error messages (empty when unreadable). */
export function logTail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * One running process of the control plane. It is started under a small shell guard that
 * kills it when the owning process (`ownerPid`) goes away, even by SIGKILL, so no component
 * outlives the test run or supervisor that started it.
 */
export class Component {
  readonly spec: ComponentSpec;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(spec: ComponentSpec) {
    this.spec = spec;
  }

  get running(): boolean {
    return this.child?.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How the process ended: its exit code or the signal that ended it; undefined while it runs. */
  get exitStatus(): number | NodeJS.Signals | undefined {
    return this.child?.exitCode ?? this.child?.signalCode ?? undefined;
  }

  /** Resolves once the process has exited (at once when it never started). */
  waitForExit(): Promise<void> {
    return this.exited;
  }

  start(ownerPid: number = process.pid): void {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    const log = createWriteStream(this.spec.logPath, { flags: 'a' });
    // The guard runs the component in the background, then waits until either the owner or
    // the component is gone; on the owner's death (or a TERM to the guard) it stops the component.
    const guard = [
      '"$@" & child=$!',
      "trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM INT",
      `while kill -0 ${ownerPid} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1 & wait $!; done`,
      'kill -TERM $child 2>/dev/null; wait $child',
    ].join('\n');
    const child = spawn('sh', ['-c', guard, this.spec.name, this.spec.command, ...this.spec.args], {
      env: this.spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a last-resort KILL reaches the component and not only the guard.
      detached: true,
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.child = child;
    // Output can still be in the pipes at 'exit': end the log at 'close', once it is all read —
    // or soon after 'exit' when a process the component left behind holds the pipes open.
    const closed = new Promise<void>((resolve) =>
      child.on('close', () => {
        resolve();
      }),
    );
    this.exited = once(child, 'exit')
      .then(() => Promise.race([closed, sleep(OUTPUT_DRAIN_MS, undefined, { ref: false })]))
      .then(async () => {
        log.end();
        await once(log, 'finish');
      });
  }

  /** Stops the component: TERM, then KILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.killGroup();
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** kill -9 of the component and its guard (a crash, for chaos tests); resolves once it is gone. */
  async kill(): Promise<void> {
    this.killGroup();
    await this.exited;
  }

  /** Synchronous last-resort kill of the guard and the component, for process 'exit' handlers. */
  killGroup(): void {
    const pid = this.child?.pid;
    if (pid === undefined || !this.running) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** An error naming this component, with the end of its log. */
  failure(what: string): Error {
    const state = this.running
      ? 'is running'
      : `exited (${this.child?.exitCode ?? this.child?.signalCode ?? 'never started'})`;
    return new Error(
      `${this.spec.name} ${what}; it ${state}. Last lines of ${this.spec.logPath}:\n${logTail(this.spec.logPath)}`,
    );
  }
}

/** Polls `check` until it returns true, the component dies, or `timeoutMs` passes. */
export async function waitUntil(
  component: Component,
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!component.running) throw component.failure(`stopped before it ${what}`);
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline)
      throw component.failure(`did not ${what} within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
