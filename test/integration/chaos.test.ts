import { beforeAll, describe, expect, it } from 'vitest';
import { chartMemoryLimit } from '../bench/scale/memory-limit.ts';
import { formatReport } from '../soak/report.ts';
import { runSoak, type SoakReport } from '../soak/soak.ts';
import { chartDefaults } from '../support/chart-values.ts';

/**
 * Two minutes of the soak with every fault (npm run soak runs it for 30): kopek must end with
 * exactly the recommendations a fresh kopek computes from scratch on the same cluster.
 */
describe('kopek under churn and repeated faults', () => {
  let report: SoakReport;

  beforeAll(async () => {
    report = await runSoak({
      minutes: 2,
      changesPerSecond: 5,
      chaos: true,
      seed: 16,
      log: (line) => {
        process.stdout.write(`chaos: ${line}\n`);
      },
      sampleIntervalMs: 5000,
      // Each replica under the chart's memory limit and malloc settings, as its pod (where
      // cgroups can be made).
      memoryLimit: 'chart',
      kopekEnv: chartDefaults().mallocEnv,
    });
    process.stdout.write(`${formatReport(report)}\n`);
  }, 20 * 60_000);

  it('ran every fault: API server and etcd killed, watches frozen, registry slow and failing, leader killed', () => {
    expect(new Set(report.faults.map((fault) => fault.kind))).toEqual(
      new Set([
        'kill-apiserver',
        'kill-etcd',
        'freeze-watches',
        'registry-slow',
        'registry-500',
        'kill-leader',
      ]),
    );
    expect(report.faults.find((f) => f.kind === 'kill-leader')?.detail).toContain('SIGKILL');
    expect(report.changes.applied).toBeGreaterThan(200);
  });

  it('ends with the recommendations a fresh kopek computes: nothing lost, nothing stale, no orphans', () => {
    expect(report.convergence.differences).toEqual([]);
    expect(report.convergence.equal).toBe(true);
    expect(report.convergence.recommendations).toBeGreaterThanOrEqual(30);
    expect(report.convergence.secondsAfterLastFault).toBeDefined();
  });

  it('sampled both replicas, and the leader ended with an empty queue', () => {
    expect(new Set(report.samples.map((sample) => sample.replica))).toEqual(
      new Set(['kopek-a', 'kopek-b']),
    );
    expect(report.queueDepth.atEnd).toBe(0);
  });

  it.runIf(process.getuid?.() === 0)(
    "ran each replica in a memory cgroup of its own with the chart's limit, never OOM-killed",
    () => {
      expect(report.memoryLimit).toEqual({
        bytes: chartMemoryLimit(),
        // kopek-fresh: the kopek started at the end to compute the recommendations afresh.
        oomKills: { 'kopek-a': 0, 'kopek-b': 0, 'kopek-fresh': 0 },
      });
    },
  );
});
