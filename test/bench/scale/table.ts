/** The scale benchmark's results as the table it prints. */
import type { Activity, Memory, ScaleResult, Timing } from './run.ts';
import { formatCpuSplit } from './machine-cpu.ts';

const MiB = 2 ** 20;
const n = (value: number): string => Math.round(value).toLocaleString('en-US');
const s = (seconds: number | undefined): string =>
  seconds === undefined || Number.isNaN(seconds) ? '–' : `${seconds.toFixed(1)} s`;
const ms = (value: number | undefined): string =>
  value === undefined
    ? '–'
    : value === Number.POSITIVE_INFINITY
      ? 'not updated'
      : value >= 1000
        ? `${(value / 1000).toFixed(2)} s`
        : `${Math.round(value)} ms`;
const mib = (bytes: number): string => `${n(bytes / MiB)} MiB`;

function activity(a: Activity): string {
  const events = Object.entries(a.events)
    .sort(([, x], [, y]) => y - x)
    .map(([resource, count]) => `${resource} ${n(count)}`)
    .join(', ');
  const queues = Object.values(a.queues);
  const adds = queues.reduce((sum, q) => sum + q.adds, 0);
  const reconciles = queues.reduce((sum, q) => sum + q.reconciles, 0);
  return `${n(adds)} / ${n(reconciles)}; events: ${events || 'none'}`;
}

/** Where kopek's time went in a phase: rebuilds, waits in the queue, reconciles, its writes. */
function work(a: Activity): string {
  const rebuilds = Object.entries(a.rebuilds)
    .map(
      ([scope, r]) =>
        `${n(r.count)} ${scope} (${s(r.seconds)}, ${n(r.workloads / Math.max(1, r.count))} workloads each)`,
    )
    .join(', ');
  const queues = Object.entries(a.queues)
    .sort(([, x], [, y]) => y.waited - x.waited)
    .map(
      ([controller, q]) =>
        `${controller}: queue wait mean ${ms(q.meanWaitSeconds * 1000)}, ${n(q.waitedOver10s)} of ${n(q.waited)} over 10 s, reconcile mean ${ms(q.reconcileMeanSeconds * 1000)}`,
    )
    .join('; ');
  return `rebuilds: ${rebuilds || 'none'}; ${queues || 'no reconciles'}; ${n(a.applies.count)} applies, mean ${ms(a.applies.meanSeconds * 1000)}`;
}

/** kopek's own delay from a change's event to its write (or to "no write needed"), by outcome. */
function ownDelay(a: Activity): string {
  const seconds = (value: number | undefined): string =>
    ms(value === undefined ? undefined : value * 1000);
  return (
    Object.entries(a.changeToWrite)
      .map(
        ([outcome, q]) =>
          `${outcome} ${n(q.count)}: ${seconds(q.p50Seconds)} / ${seconds(q.p99Seconds)}`,
      )
      .join('; ') || 'none'
  );
}

const timings = (of: Record<string, Timing>): string =>
  Object.entries(of)
    .sort(([, a], [, b]) => b.count - a.count)
    .map(([what, t]) => `${what} ${n(t.count)} × ${ms(t.meanSeconds * 1000)}`)
    .join(', ') || 'none';

type Row = (id: string, what: string, value: string) => void;

function changeRows(c: NonNullable<ScaleResult['changes']>, row: Row): void {
  row(
    '4',
    `change → recommendation updated, p50 / p99 / max (${n(c.count)} changes at ${c.achievedRate.toFixed(1)}/s; not updated in the drain time counts as slowest)`,
    `${ms(c.p50Ms)} / ${ms(c.p99Ms)} / ${ms(c.maxMs)}`,
  );
  for (const [type, t] of Object.entries(c.byType))
    row(
      '',
      `  ${type} (${n(t.count)}): p50 / p99; not updated`,
      `${ms(t.p50Ms)} / ${ms(t.p99Ms)}; ${n(t.notUpdated)}`,
    );
  row(
    '',
    'changes with no recommendation update in the drain time / failed / skipped',
    `${n(c.notUpdated)} / ${n(c.failed)} / ${n(c.skipped)}`,
  );
  row(
    '',
    'kopek writes / recommendation events during the change phase',
    `${n(c.kopekWrites)} / ${n(c.recommendationEvents)}`,
  );
  row('', 'kopek queue adds / reconciles; watch events (change phase)', activity(c.activity));
  row('', "where kopek's time went (change phase)", work(c.activity));
  row(
    '',
    "kopek's own delay, change event → write starts (or none needed), p50 / p99",
    ownDelay(c.activity),
  );
  row('', 'kopek CPU time during the change phase', s(c.cpuSeconds));
  row('', "the machine's CPU during the change phase, by process", formatCpuSplit(c.machineCpu));
  if (c.apiserver) {
    row(
      '',
      'API server: wait in priority-and-fairness queues, by level',
      timings(c.apiserver.queuedByPriorityLevel),
    );
    row(
      '',
      'API server: requests on recommendations, count × mean time',
      timings(c.apiserver.recommendationRequests),
    );
  }
}

function steadyRows(st: NonNullable<ScaleResult['steady']>, row: Row): void {
  row('5', `kopek writes at steady state (${s(st.seconds)}, leases excluded)`, n(st.writes));
  row('', 'recommendation updates seen at steady state', n(st.recommendationEvents));
  row('', 'kopek API requests per minute at steady state', st.requestsPerMinute.toFixed(1));
  row(
    '',
    '  by verb and resource (per minute)',
    Object.entries(st.byRequest)
      .sort(([, a], [, b]) => b - a)
      .map(([key, value]) => `${key} ${value.toFixed(1)}`)
      .join(', ') || '–',
  );
  row('', 'kopek CPU at steady state (% of one core)', `${st.cpuPercent.toFixed(1)}%`);
  row('', 'kopek queue adds / reconciles; watch events (steady state)', activity(st.activity));
}

export function formatTable(r: ScaleResult): string {
  const rows: [string, string, string][] = [];
  const row = (id: string, what: string, value: string): void => {
    rows.push([id, what, value]);
  };
  const { sizes } = r;
  if (r.floor) {
    const { reused, perRequest } = r.floor;
    row(
      '1',
      `floor: LIST of what kopek watches (${n(reused.listedObjects)} objects, pages of 500)`,
      s(reused.listSeconds),
    );
    row(
      '',
      `floor: ${n(reused.applied)} SSA + status SSA, ${reused.concurrency} at a time`,
      s(reused.applySeconds),
    );
    row('', 'floor: process start to exit (the baseline)', s(reused.wallSeconds));
    row(
      '',
      'floor with credentials and a new connection pool per request',
      `${s(perRequest.wallSeconds)} (list ${s(perRequest.listSeconds)}, applies ${s(perRequest.applySeconds)})`,
    );
  }
  if (r.cold) {
    row(
      '2',
      `kopek run cold start → all ${n(sizes.analysedWorkloads)} recommendations written`,
      `${s(r.cold.allWrittenSeconds)}${r.cold.ratioToFloor !== undefined ? ` = ${r.cold.ratioToFloor.toFixed(2)}× floor` : ''}`,
    );
    row('', 'kopek ready (/readyz: caches synced)', s(r.cold.readySeconds));
    row('', 'kopek CPU time during the cold start', s(r.cold.cpuSeconds));
    row(
      '',
      "the machine's CPU during the cold start, by process",
      formatCpuSplit(r.cold.machineCpu),
    );
    row(
      '',
      'kopek requests / writes during the cold start',
      `${n(r.cold.requests)} / ${n(r.cold.writes)}`,
    );
    row('', 'kopek queue adds / reconciles; watch events (cold start)', activity(r.cold.activity));
    row('', "where kopek's time went (cold start)", work(r.cold.activity));
  }
  if (r.memory) {
    row(
      '3',
      'kopek peak RSS / peak heap used (sampled)',
      `${mib(r.memory.peak.rssBytes)} / ${mib(r.memory.peak.heapBytes)}`,
    );
    if (r.memory.settled.rssBytes > 0)
      row(
        '',
        'kopek settled RSS / heap used (end of steady state)',
        `${mib(r.memory.settled.rssBytes)} / ${mib(r.memory.settled.heapBytes)}`,
      );
    const byKind = (when: string, memory: Memory | undefined): void => {
      const k = memory?.byKind;
      if (!memory || !k) return;
      row(
        '',
        `kopek RSS ${when}, by mapping (V8's heap is anonymous; external memory is malloc's or anonymous)`,
        `${mib(memory.rssBytes)}: malloc arenas ${mib(k.mallocMainArena)} main + ${mib(k.mallocOtherArenas)} others, other anonymous ${mib(k.otherAnonymous)} (V8 heap committed ${mib(k.v8HeapCommitted)}), files ${mib(k.file)}; external ${mib(k.external)}`,
      );
    };
    byKind('settled', r.memory.settled);
    byKind('after the changes', r.memory.afterChanges);
    row(
      '',
      'heap samples missed (/metrics did not answer within 5 s)',
      n(r.memory.missedHeapSamples),
    );
  }
  if (r.changes) changeRows(r.changes, row);
  if (r.steady) steadyRows(r.steady, row);
  if (r.registry) {
    row(
      '6',
      'registry manifest GETs after cold start / at the end / distinct images',
      `${n(r.registry.manifestGetsAfterColdStart)} / ${n(r.registry.manifestGetsAtEnd)} / ${n(r.registry.distinctImages)}`,
    );
  }
  for (const a of r.analyze ?? []) {
    row(
      '7',
      `kopek analyze -f dump.${a.dump} (${mib(a.dumpBytes)}, kubectl ${s(a.dumpSeconds)}): wall / peak RSS`,
      a.exitCode === 0
        ? `${s(a.seconds)} / ${mib(a.maxRssBytes)} (${n(a.recommendations ?? 0)} recommendations)`
        : `failed (exit ${a.exitCode}) after ${s(a.seconds)}, ${mib(a.maxRssBytes)}: ${a.error ?? ''}`,
    );
  }
  const width = Math.max(...rows.map(([, what]) => what.length));
  const lines = [
    `kopek scale benchmark: ${n(sizes.nodes)} nodes, ${n(sizes.workloads)} workloads (${n(sizes.analysedWorkloads)} analysed), ${n(sizes.pods)} pods, ${n(sizes.images)} images, ${n(sizes.objects)} objects created`,
    `node ${r.node}, ${r.cpus} CPUs; kopek ${r.kopekBuild === 'compiled' ? 'compiled, as the image runs it' : 'from its TypeScript sources'}; kopek run's Node flags: ${r.kopekNodeFlags.join(' ') || 'none'}${
      Object.keys(r.kopekEnv).length > 0
        ? `; environment: ${Object.entries(r.kopekEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`
        : ''
    }`,
    'bytes' in r.memoryLimit
      ? `kopek run in a memory cgroup limited to ${mib(r.memoryLimit.bytes)}${r.memoryLimit.oomKills ? `: OOM-killed ${r.memoryLimit.oomKills} time(s)` : ''}`
      : `kopek run without a memory limit: ${r.memoryLimit.none}`,
    `load at start: ${r.load.start}`,
    `load at end:   ${r.load.end}`,
    '',
    'Setup',
    ...Object.entries(r.setupSeconds).map(
      ([what, seconds]) => `  ${what.padEnd(width)}  ${s(seconds)}`,
    ),
    '',
    ...rows.map(([id, what, value]) => `${id.padEnd(2)}${what.padEnd(width)}  ${value}`),
  ];
  if (r.imports.length > 0) {
    lines.push('', 'Import cost (node -e "await import(…)", median):');
    for (const cost of r.imports)
      lines.push(
        `  ${cost.what.padEnd(width)}  ${cost.seconds.toFixed(2)} s, ${mib(cost.maxRssBytes)}`,
      );
  }
  lines.push(
    '',
    `Load average by phase: ${Object.entries(r.load.byPhase)
      .map(([p, l]) => `${p} ${l.join(' ')}`)
      .join('; ')}`,
  );
  if (r.profile) lines.push('', r.profile);
  return `${lines.join('\n')}\n`;
}
