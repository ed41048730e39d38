import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../cluster/cluster.ts';
import { Component, logTail, waitUntil } from '../cluster/process.ts';
import { KOPEK_CLI, leaseHolder, startClusterForKopek, writeCalls } from '../support/kopek.ts';
import { freePort } from '../support/ports.ts';

const SHOP = fileURLToPath(new URL('../demo/shop.yaml', import.meta.url));

interface Replica {
  identity: string;
  metricsUrl: string;
  process: Component;
}

interface LeaseSpec {
  holderIdentity?: string;
  renewTime?: string;
  acquireTime?: string;
  leaseDurationSeconds?: number;
  leaseTransitions?: number;
}

async function leaseSpec(cluster: LocalCluster): Promise<LeaseSpec> {
  const result = await cluster.kubectl(['get', 'lease', 'kopek', '-n', 'kopek', '-o', 'json']);
  return (JSON.parse(result.stdout) as { spec: LeaseSpec }).spec;
}

async function leading(replica: Replica): Promise<number> {
  const text = await (await fetch(`${replica.metricsUrl}/metrics`)).text();
  return Number(/^leader_election_master_status\{name="kopek"\} (\d)/m.exec(text)?.[1] ?? -1);
}

describe('two kopek processes', () => {
  let cluster: LocalCluster;
  let dir: string;
  const replicas: Replica[] = [];

  async function startReplica(identity: string, kubeconfig: string): Promise<Replica> {
    const port = await freePort();
    const process = new Component({
      name: identity,
      command: globalThis.process.execPath,
      args: [
        KOPEK_CLI,
        'run',
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        `127.0.0.1:${port}`,
        // Scraped by this test over loopback; the secure default is tested in metrics-auth.
        '--metrics-secure',
        'false',
        '--leader-election-namespace',
        'kopek',
        '--identity',
        identity,
        '--batch-interval',
        '200ms',
      ],
      logPath: join(dir, `${identity}.log`),
    });
    process.start();
    const replica = { identity, metricsUrl: `http://127.0.0.1:${port}`, process };
    await waitUntil(
      process,
      'served /readyz',
      async () => (await fetch(`${replica.metricsUrl}/readyz`)).ok,
      30_000,
    );
    return replica;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-ha-'));
    cluster = await startClusterForKopek();
    await cluster.kubectl(['apply', '-f', SHOP]);
    const kubeconfig = await cluster.kubeconfigAsServiceAccount('kopek', 'kopek');
    replicas.push(
      await startReplica('kopek-a', kubeconfig),
      await startReplica('kopek-b', kubeconfig),
    );
  });

  afterAll(async () => {
    for (const replica of replicas) await replica.process.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('outside the cluster, without the Lease namespace, kopek run exits 2 at once and says what to do', () => {
    // As from a laptop: the admin kubeconfig, and a namespace nobody created.
    const run = spawnSync(
      process.execPath,
      [
        KOPEK_CLI,
        'run',
        '--kubeconfig',
        cluster.kubeconfigPath,
        '--metrics-bind-address',
        '127.0.0.1:0',
        '--leader-election-namespace',
        'no-such-namespace',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('leader election needs the namespace no-such-namespace');
    expect(run.stderr).toContain('--leader-elect=false');
    expect(run.stderr).not.toContain('another replica holds the lease');
  }, 90_000);

  it('elect exactly one leader, and only the leader writes', async () => {
    await expect
      .poll(
        async () =>
          (await cluster.kubectl(['get', 'wrec', '-n', 'shop', '-o', 'name'])).stdout
            .trim()
            .split('\n').length,
        { timeout: 60_000 },
      )
      .toBe(5);
    const holder = await leaseHolder(cluster);
    const leader = replicas.find((replica) => replica.identity === holder);
    const standby = replicas.find((replica) => replica.identity !== holder);
    if (!leader || !standby) throw new Error(`lease held by ${String(holder)}`);
    expect(await leading(leader)).toBe(1);
    expect(await leading(standby)).toBe(0);
    expect(await writeCalls(leader.metricsUrl)).toBeGreaterThan(0);
    expect(await writeCalls(standby.metricsUrl, { includeLeases: true })).toBe(0);
    // Both are ready: the standby's caches are warm for a fast takeover.
    expect((await fetch(`${standby.metricsUrl}/readyz`)).ok).toBe(true);
  });

  it('hand over once the lease expires when the leader is killed, and the new leader keeps recommendations current', async () => {
    const holder = await leaseHolder(cluster);
    const leader = replicas.find((replica) => replica.identity === holder);
    const standby = replicas.find((replica) => replica.identity !== holder);
    if (!leader || !standby) throw new Error(`lease held by ${String(holder)}`);
    const before = await leaseSpec(cluster);
    leader.process.killGroup(); // no chance to release the lease: it must expire
    // A bound for a takeover that never comes, not a speed test: the machine is shared.
    await expect
      .poll(() => leaseHolder(cluster), { timeout: 60_000, interval: 250 })
      .toBe(standby.identity);
    const after = await leaseSpec(cluster);
    // The standby waited a whole lease duration past the last renewal it could have seen (both
    // timestamps are this machine's clock), and counted one transition.
    const waitedMs = Date.parse(after.acquireTime ?? '') - Date.parse(before.renewTime ?? '');
    expect(waitedMs).toBeGreaterThanOrEqual((before.leaseDurationSeconds ?? 15) * 1000);
    expect(after.leaseTransitions).toBe((before.leaseTransitions ?? 0) + 1);

    await cluster.kubectl(['scale', 'deployment/storefront', '-n', 'shop', '--replicas=5']);
    await expect
      .poll(
        async () =>
          (
            await cluster.kubectl([
              'get',
              'wrec',
              'deployment-storefront',
              '-n',
              'shop',
              '-o',
              'jsonpath={.status.placement.replicas}',
            ])
          ).stdout,
        { timeout: 30_000 },
      )
      .toBe('5');
    expect(await writeCalls(standby.metricsUrl)).toBeGreaterThan(0);
    expect(logTail(standby.process.spec.logPath, 200)).toContain('became the leader');
  });
});
