import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../cluster/cluster.ts';
import { logTail } from '../cluster/process.ts';
import { KOPEK_CLI, leaseHolder, startClusterForKopek } from '../support/kopek.ts';

/** Far more workloads than one worker reconciles in the time the test gives kopek to stop. */
const WORKLOADS = 1000;
/** How long after SIGTERM kopek may take to exit: a few in-flight requests, not its backlog. */
const EXIT_WITHIN_MS = 15_000;

function deployment(name: string): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'busy' },
    spec: {
      replicas: 0,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
      },
    },
  };
}

async function count(cluster: LocalCluster, resource: string, namespace: string): Promise<number> {
  const result = await cluster.kubectl(['get', resource, '-n', namespace, '-o', 'name']);
  return result.stdout.split('\n').filter((line) => line !== '').length;
}

describe('kopek run on SIGTERM', () => {
  let cluster: LocalCluster;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-shutdown-'));
    cluster = await startClusterForKopek();
    await cluster.kubectl(['create', 'namespace', 'busy']);
    await cluster.kubectl(['apply', '--server-side', '-f', '-'], {
      input: Array.from({ length: WORKLOADS }, (_, i) =>
        JSON.stringify(deployment(`app-${i}`)),
      ).join('\n'),
    });
  }, 300_000);

  afterAll(async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 promptly while it has a backlog of reconciles, and releases the lease', async () => {
    const logPath = join(dir, 'kopek.log');
    const log = createWriteStream(logPath);
    const kopek = spawn(
      process.execPath,
      [
        KOPEK_CLI,
        'run',
        '--kubeconfig',
        await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
        '--metrics-bind-address',
        '127.0.0.1:0',
        '--metrics-secure=false',
        '--leader-election-namespace',
        'kopek',
        '--identity',
        'kopek-busy',
        // One worker: the backlog of WORKLOADS reconciles lasts far longer than EXIT_WITHIN_MS.
        '--workers',
        '1',
        // No registry here: every image lookup fails fast instead of waiting for a timeout.
        '--registry-timeout',
        '1s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    kopek.stdout.pipe(log, { end: false });
    kopek.stderr.pipe(log, { end: false });
    // 'close': its log is then complete.
    const exited = once(kopek, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      // Busy: it has started writing recommendations and is far from done.
      await expect
        .poll(() => count(cluster, 'workloadrecommendations', 'busy'), {
          timeout: 180_000,
          interval: 500,
        })
        .toBeGreaterThan(0);
      const before = await count(cluster, 'workloadrecommendations', 'busy');
      expect(before).toBeLessThan(WORKLOADS / 2);

      const signalled = Date.now();
      kopek.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((resolve) =>
        setTimeout(() => {
          resolve('timeout');
        }, 120_000).unref(),
      );
      const ended = await Promise.race([exited, timeout]);
      const seconds = (Date.now() - signalled) / 1000;
      expect(ended, logTail(logPath)).toEqual([0, null]);
      expect(seconds * 1000, `exited ${seconds} s after SIGTERM`).toBeLessThan(EXIT_WITHIN_MS);
      // Every step of the stop ended by itself, none was cut short by its time limit.
      log.end();
      await once(log, 'finish');
      expect(await readFile(logPath, 'utf8')).not.toContain('stopping without waiting any longer');

      expect(await leaseHolder(cluster)).toBe('');
    } finally {
      kopek.kill('SIGKILL');
    }
  }, 400_000);
});
