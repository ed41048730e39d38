import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KOPEK_CLI } from '../support/kopek.ts';

/**
 * A kubeconfig whose API server nobody serves: kopek sets its V8 flags before it connects, and
 * then retries its watches until it is stopped.
 */
const UNSERVED_KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{ name: none, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: none, user: { token: none } }]
contexts: [{ name: none, context: { cluster: none, user: none } }]
current-context: none
`;

/** The flags of `kopek run`'s "V8 memory flags set" log line, read from its stderr. */
async function memoryFlags(args: string[], env: Record<string, string>): Promise<unknown> {
  // Only the settings each case gives: none of the environment's own KOPEK_ variables.
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('KOPEK_'));
  const kopek = spawn(process.execPath, [KOPEK_CLI, 'run', ...args], {
    env: { ...Object.fromEntries(inherited), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(kopek, 'close');
  // kopek logs the line at start; without it, it would run on, retrying its watches.
  const giveUp = setTimeout(() => kopek.kill('SIGKILL'), 30_000);
  try {
    for await (const line of createInterface({ input: kopek.stderr })) {
      // kopek's log lines are JSON; Node's own warnings are not.
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { msg?: string; flags?: unknown };
      if (entry.msg === 'V8 memory flags set') return entry.flags;
    }
    throw new Error('kopek run did not log its V8 memory flags within 30 s');
  } finally {
    clearTimeout(giveUp);
    kopek.kill('SIGKILL');
    await exited;
  }
}

describe('kopek run', () => {
  let dir: string;
  let common: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-flags-'));
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, UNSERVED_KUBECONFIG);
    common = [
      '--kubeconfig',
      kubeconfig,
      '--metrics-bind-address',
      '127.0.0.1:0',
      '--leader-elect=false',
    ];
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('logs the V8 memory flags it set: young collections during marking, heap growth 20% by default', async () => {
    expect(await memoryFlags(common, {})).toEqual([
      '--no-separate-gc-phases',
      '--heap-growing-percent=20',
    ]);
  });

  it('adds memory saver mode from its environment and takes the heap growth its flag gives', async () => {
    expect(
      await memoryFlags([...common, '--heap-growing-percent', '10'], {
        KOPEK_MEMORY_SAVER: 'true',
      }),
    ).toEqual(['--memory-saver-mode', '--no-separate-gc-phases', '--heap-growing-percent=10']);
  });
});
