/**
 * Runs a command under GNU time (`/usr/bin/time -v`): its wall time and its peak resident memory
 * as the kernel counts it, with stdout to a file (or discarded).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childrenOf } from '../../support/proc.ts';

export const GNU_TIME = '/usr/bin/time';

export interface Timed {
  seconds: number;
  maxRssBytes: number;
  exitCode: number;
  stderr: string;
  /** Killed after the timeout. */
  timedOut: boolean;
}

/** Parses GNU time's -v report. */
export function parseTimeReport(report: string): { seconds: number; maxRssBytes: number } {
  const elapsed = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(report)?.[1];
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(report)?.[1];
  if (elapsed === undefined || rss === undefined)
    throw new Error(`not a GNU time -v report: ${report.slice(0, 200)}`);
  const seconds = elapsed
    .split(':')
    .map(Number)
    .reduce((total, part) => total * 60 + part, 0);
  return { seconds, maxRssBytes: Number(rss) * 1024 };
}

export async function timed(
  command: string,
  args: readonly string[],
  options: { stdout?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<Timed> {
  const dir = await mkdtemp(join(tmpdir(), 'kopek-timed-'));
  const report = join(dir, 'time.txt');
  const out = openSync(options.stdout ?? '/dev/null', 'w');
  try {
    let stderr = '';
    let timedOut = false;
    const started = performance.now();
    const exitCode = await new Promise<number>((resolve, reject) => {
      const child = spawn(GNU_TIME, ['-v', '-o', report, command, ...args], {
        stdio: ['ignore', out, 'pipe'],
        ...(options.cwd ? { cwd: options.cwd } : {}),
      });
      // Kill the command itself: GNU time then reports how it ended, and its peak memory.
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              for (const pid of childrenOf(child.pid ?? 0)) process.kill(pid, 'SIGKILL');
            }, options.timeoutMs);
      child.on('exit', () => {
        clearTimeout(timer);
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        if (stderr.length < 1_000_000) stderr += chunk.toString();
      });
      child.on('error', (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'ENOENT'
            ? new Error(
                `${GNU_TIME} is missing: run bash test/system-deps.sh (Debian package time)`,
              )
            : error,
        );
      });
      child.on('exit', (code) => {
        resolve(code ?? 1);
      });
    });
    // Our own clock: GNU time rounds the wall time to 10 ms.
    const seconds = (performance.now() - started) / 1000;
    const { maxRssBytes } = parseTimeReport(await readFile(report, 'utf8'));
    return { seconds, maxRssBytes, exitCode, stderr, timedOut };
  } finally {
    closeSync(out);
    await rm(dir, { recursive: true, force: true });
  }
}
