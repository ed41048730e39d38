import type { SoakReport, Trend } from './soak.ts';

const MiB = 1024 * 1024;

function trendLines(title: string, trends: Trend[], unit: number, suffix: string): string[] {
  return trends.map(
    (t) =>
      `  ${title.padEnd(16)} ${`${t.replica}#${t.incarnation} ${t.leading ? 'leader' : 'standby'}`.padEnd(20)} ${String(t.minutes).padStart(5)} min  first 5 min ${(t.first5 / unit).toFixed(1).padStart(7)}${suffix}  last 5 min ${(t.last5 / unit).toFixed(1).padStart(7)}${suffix}  slope ${(t.slopePerHour / unit).toFixed(1).padStart(7)}${suffix}/h`,
  );
}

/** The soak's figures as text for a person (and the closing note). */
export function formatReport(report: SoakReport): string {
  const lines = [
    `seed ${report.seed}, chaos ${report.chaos ? 'on' : 'off'}, churn ${(report.churnSeconds / 60).toFixed(1)} min, kopek's Node flags: ${report.kopekNodeFlags.join(' ') || 'none'}, environment: ${
      Object.entries(report.kopekEnv)
        .map(([name, value]) => `${name}=${value}`)
        .join(' ') || 'none'
    }`,
    `kopek: ${report.kopekCli}`,
    'bytes' in report.memoryLimit
      ? `memory limit: ${(report.memoryLimit.bytes / MiB).toFixed(0)} MiB a replica (a memory cgroup each); OOM kills: ${Object.entries(
          report.memoryLimit.oomKills,
        )
          .map(([replica, kills]) => `${replica} ${kills}`)
          .join(', ')}`
      : `memory limit: none (${report.memoryLimit.none})`,
    `changes: ${report.changes.applied} applied (${report.changes.perSecond.toFixed(1)}/s), ${report.changes.failed} failed, ${report.changes.skipped} skipped (16 in flight)`,
    'per kopek process (replica#start) and role:',
    ...trendLines('heap used', report.trends.heapBytes, MiB, ' MiB'),
    ...trendLines('heap committed', report.trends.heapTotalBytes, MiB, ' MiB'),
    ...trendLines('RSS', report.trends.rssBytes, MiB, ' MiB'),
    ...trendLines('RSS anonymous', report.trends.rssAnonBytes, MiB, ' MiB'),
    ...trendLines('external', report.trends.externalBytes, MiB, ' MiB'),
    ...trendLines('open fds', report.trends.fds, 1, ''),
    ...trendLines('API connections', report.trends.apiConnections, 1, ''),
    // The cluster grows and shrinks with churn: read memory against it.
    ...trendLines('cached objects', report.trends.cacheObjects, 1, ''),
    `reconcile errors: ${report.reconcileErrors.total} in all, ${report.reconcileErrors.outsideFaults} outside faults (+60 s)`,
    ...Object.entries(report.reconcileErrors.byReason)
      .sort(([, a], [, b]) => b.total - a.total)
      .map(
        ([reason, count]) =>
          `  ${reason.padEnd(28)} ${String(count.total).padStart(6)} in all ${String(count.outsideFaults).padStart(6)} outside faults; during ${
            Object.entries(count.byFault)
              .map(([kind, n]) => `${kind} ${n}`)
              .join(', ') || 'none'
          }`,
      ),
    `queue depth: max ${report.queueDepth.max}, at the end ${report.queueDepth.atEnd}`,
    'faults:',
    ...report.faults.map(
      (f) =>
        `  ${f.start.toFixed(0).padStart(5)}-${f.end.toFixed(0).padEnd(5)} s  ${f.kind.padEnd(15)} ${f.detail}`,
    ),
    `convergence: ${report.convergence.equal ? 'EQUAL' : 'DIFFERENT'} to a fresh kopek over ${report.convergence.recommendations} recommendations` +
      (report.convergence.secondsAfterLastFault !== undefined
        ? `, ${report.convergence.secondsAfterLastFault.toFixed(0)} s after the last fault and churn`
        : ''),
    ...report.convergence.differences.map((d) => `  ${d.slice(0, 400)}`),
    `time: ${report.phases.map((p) => `${p.name} ${p.seconds.toFixed(0)} s`).join(', ')}`,
    `load at start: ${report.load.start}`,
    `load at end:   ${report.load.end}`,
  ];
  return lines.join('\n');
}
