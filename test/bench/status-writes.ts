#!/usr/bin/env node
/**
 * `npm run bench:writes`: what a WorkloadRecommendation status write costs the API server, by
 * the way it is written. On the local control plane it creates `--count` recommendations with a
 * status (server-side applied by `kopek`, as kopek does), then, in rounds, changes every status
 * once per mode, `--concurrency` at a time like kopek's workers:
 *
 *   apply          server-side apply of the whole status (kopek's write today)
 *   apply-trimmed  the same, with the Spot result's first reason only (a smaller status)
 *   merge          a JSON merge patch of the whole status
 *   merge-diff     a JSON merge patch of only what changed (null for what went)
 *   json-patch     a JSON patch (RFC 6902) of only what changed
 *
 * Each change is what a scale makes: replicas, cost, savings and a reason's message. It reports,
 * per mode, the API server's own mean time per request (its apiserver_request_duration_seconds,
 * the difference of two scrapes) and the wall time, and their ratios to `apply`. With `--busy`
 * the rounds are measured again while other writers keep the API server busy.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { objectPath } from '../../operator/kube/client.ts';
import { loadKubeConfig } from '../../operator/kube/kubeconfig.ts';
import { RESOURCES } from '../../operator/kube/resources.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { installCrds } from '../support/kopek.ts';
import { inParallel } from '../support/parallel.ts';
import { HELP_OPTION, scriptArgs } from '../support/script-args.ts';
import { applyRecommendation } from './scale/floor.ts';
import { BenchApi } from './scale/http.ts';
import { apiServerActivity, apiServerMetrics, uptime } from './scale/run.ts';

const USAGE = `Usage: npm run bench:writes -- [flags]

Starts the local control plane and measures WorkloadRecommendation status writes written as a
server-side apply (kopek's today), a JSON merge patch (whole status, or only what changed) and a
JSON patch (only what changed), and a server-side apply of a smaller status (the first Spot
reason only): the API server's own time per request and the wall time, as ratios to the apply.

  --count N        recommendations, each written once per mode and round (default 1000)
  --rounds N       rounds, modes interleaved within each (default 2)
  --concurrency N  writes at once (default 4, kopek's workers)
  --statuses FILE  statuses to write, round-robin: \`kubectl get workloadrecommendations -A -o json\`
                   of a real run (default: crds/examples/workloadrecommendation-checkout.yaml)
  --busy N         also measure with N other writers keeping the API server busy (default 0)
`;

const MODES = ['apply', 'apply-trimmed', 'merge', 'merge-diff', 'json-patch'] as const;
type Mode = (typeof MODES)[number];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Status = Record<string, Json>;

const EXAMPLE = fileURLToPath(
  new URL('../../crds/examples/workloadrecommendation-checkout.yaml', import.meta.url),
);
const HEAD = { apiVersion: 'kopek.dev/v1alpha1', kind: 'WorkloadRecommendation' };
const NAMESPACE = 'kopek-writes';

function loadStatuses(file: string | undefined): Status[] {
  if (!file) return [(parse(readFileSync(EXAMPLE, 'utf8')) as { status: Status }).status];
  const list = JSON.parse(readFileSync(file, 'utf8')) as { items: { status?: Status }[] };
  const statuses = list.items.flatMap((item) => (item.status ? [item.status] : []));
  if (statuses.length === 0) throw new Error(`${file} holds no recommendation with a status`);
  // What Apply mode writes is not part of the recommendation reconcile's status.
  return statuses.map(({ applied: _, ...rest }) => rest);
}

/** The status after a scale: one more replica, other money, a reason's message changed. */
function changed(status: Status, round: number): Status {
  const copy = structuredClone(status);
  const cents = (value: Json | undefined): string => (Number(value ?? 0) + round / 100).toFixed(2);
  copy.monthlyCostUSD = cents(status.monthlyCostUSD);
  copy.potentialMonthlySavingsUSD = cents(status.potentialMonthlySavingsUSD);
  const placement = copy.placement as Record<string, Json> | undefined;
  if (placement) placement.replicas = Number(placement.replicas ?? 1) + round;
  const reasons = (copy.spot as { reasons?: { message: string }[] } | undefined)?.reasons;
  const first = reasons?.[0];
  if (first) first.message = `${first.message.replace(/ \(round \d+\)$/, '')} (round ${round})`;
  return copy;
}

/** The status with the Spot result's first reason only (a verdict other than Recommended needs one). */
function trimmed(status: Status): Status {
  const spot = status.spot as Record<string, Json> | undefined;
  if (!spot || !Array.isArray(spot.reasons)) return status;
  return { ...status, spot: { ...spot, reasons: spot.reasons.slice(0, 1) } };
}

function isObject(value: Json | undefined): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386: what turns `before` into `after` (objects merged, null removes, arrays whole). */
function mergeDiff(before: Status, after: Status): Status {
  const diff: Status = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const [a, b] = [before[key], after[key]];
    if (b === undefined) diff[key] = null;
    else if (isObject(a) && isObject(b)) {
      const inner = mergeDiff(a, b);
      if (Object.keys(inner).length > 0) diff[key] = inner;
    } else if (JSON.stringify(a) !== JSON.stringify(b)) diff[key] = b;
  }
  return diff;
}

/** RFC 6902: replace, add or remove each value that differs (arrays whole), under `path`. */
function jsonPatch(before: Json | undefined, after: Json | undefined, path: string): unknown[] {
  if (isObject(before) && isObject(after)) {
    const escape = (key: string): string => key.replaceAll('~', '~0').replaceAll('/', '~1');
    return [...new Set([...Object.keys(before), ...Object.keys(after)])].flatMap((key) =>
      jsonPatch(before[key], after[key], `${path}/${escape(key)}`),
    );
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  if (after === undefined) return [{ op: 'remove', path }];
  return [{ op: before === undefined ? 'add' : 'replace', path, value: after }];
}

interface Written {
  /** The API server's own mean seconds per status write, and how many it counted. */
  serverSeconds: number;
  serverCount: number;
  wallSeconds: number;
  bytes: number;
}

/** The recommendations' names, the statuses they hold now, and the statuses to write (round-robin). */
interface Fleet {
  names: readonly string[];
  stored: Status[];
  statuses: readonly Status[];
}

function at<T>(list: readonly T[], index: number): T {
  const item = list[index];
  if (item === undefined) throw new Error(`no item ${index}`);
  return item;
}

async function writeAll(
  api: BenchApi,
  { names, stored, statuses }: Fleet,
  mode: Mode,
  round: number,
  concurrency: number,
): Promise<Written> {
  const before = await apiServerMetrics(api);
  let bytes = 0;
  const started = performance.now();
  await inParallel(names, concurrency, async (name, i) => {
    const path = `${objectPath(RESOURCES.workloadrecommendations, name, NAMESPACE)}/status`;
    const base = at(statuses, i % statuses.length);
    const next = changed(mode === 'apply-trimmed' ? trimmed(base) : base, round);
    const previous = at(stored, i);
    const query = { fieldManager: 'kopek', fieldValidation: 'Strict' };
    const [body, contentType, force]: [unknown, string, boolean] =
      mode === 'apply' || mode === 'apply-trimmed'
        ? [
            { ...HEAD, metadata: { name, namespace: NAMESPACE }, status: next },
            'application/apply-patch+yaml',
            true,
          ]
        : mode === 'merge'
          ? [{ status: next }, 'application/merge-patch+json', false]
          : mode === 'merge-diff'
            ? [{ status: mergeDiff(previous, next) }, 'application/merge-patch+json', false]
            : [jsonPatch(previous, next, '/status'), 'application/json-patch+json', false];
    bytes += JSON.stringify(body).length;
    await api.json('PATCH', path, {
      query: force ? { ...query, force: 'true' } : query,
      body,
      contentType,
    });
    stored[i] = next;
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const activity = apiServerActivity(before, await apiServerMetrics(api));
  const verb = mode.startsWith('apply') ? 'APPLY/status' : 'PATCH/status';
  const timing = activity.recommendationRequests[verb] ?? { count: 0, meanSeconds: 0 };
  return {
    serverSeconds: timing.meanSeconds,
    serverCount: timing.count,
    wallSeconds,
    bytes: bytes / names.length,
  };
}

/** `writers` loops of server-side applies of 4 KiB ConfigMaps, until `signal` aborts. */
async function keepBusy(api: BenchApi, writers: number, signal: AbortSignal): Promise<number> {
  let writes = 0;
  const data = { payload: 'x'.repeat(4096) };
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; !signal.aborted; i++) {
        const name = `busy-${w}-${i % 50}`;
        await api.apply(
          `/api/v1/namespaces/${NAMESPACE}/configmaps/${name}`,
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name },
            data: { ...data, i: String(i) },
          },
          'kopek-bench-load',
        );
        writes++;
      }
    }),
  );
  return writes;
}

interface Row extends Written {
  mode: Mode;
}

async function measureRounds(
  api: BenchApi,
  fleet: Fleet,
  options: { rounds: number; concurrency: number; firstRound: number },
): Promise<Row[]> {
  const totals = new Map<Mode, Written>();
  for (let r = 0; r < options.rounds; r++)
    for (const mode of MODES) {
      const round = options.firstRound + r * MODES.length + MODES.indexOf(mode) + 1;
      const written = await writeAll(api, fleet, mode, round, options.concurrency);
      const total = totals.get(mode);
      totals.set(
        mode,
        total
          ? {
              serverSeconds:
                (total.serverSeconds * total.serverCount +
                  written.serverSeconds * written.serverCount) /
                (total.serverCount + written.serverCount),
              serverCount: total.serverCount + written.serverCount,
              wallSeconds: total.wallSeconds + written.wallSeconds,
              bytes: (total.bytes + written.bytes) / 2,
            }
          : written,
      );
    }
  return MODES.map((mode) => ({ mode, ...at([...totals.values()], MODES.indexOf(mode)) }));
}

function formatRows(title: string, rows: readonly Row[]): string {
  const apply = at(rows, MODES.indexOf('apply'));
  const lines = [
    title,
    '  mode            bytes/write  API server ms/write (×apply)  writes counted  wall s (×apply)',
  ];
  for (const row of rows)
    lines.push(
      `  ${row.mode.padEnd(14)}  ${row.bytes.toFixed(0).padStart(11)}  ${(row.serverSeconds * 1000).toFixed(2).padStart(8)} (${(row.serverSeconds / apply.serverSeconds).toFixed(2)}×)${' '.repeat(12)}  ${String(row.serverCount).padStart(14)}  ${row.wallSeconds.toFixed(1).padStart(6)} (${(row.wallSeconds / apply.wallSeconds).toFixed(2)}×)`,
    );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = scriptArgs(USAGE, () =>
    parseArgs({
      options: {
        count: { type: 'string', default: '1000' },
        rounds: { type: 'string', default: '2' },
        concurrency: { type: 'string', default: '4' },
        statuses: { type: 'string' },
        busy: { type: 'string', default: '0' },
        help: HELP_OPTION,
      },
    }),
  );
  const count = Number(values.count);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency);
  const busy = Number(values.busy);
  const statuses = loadStatuses(values.statuses);
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const sizes = statuses.map((s) => JSON.stringify(s).length).sort((a, b) => a - b);
  say(
    `${statuses.length} statuses, median ${sizes[sizes.length >> 1]} bytes; ${count} recommendations, ${rounds} rounds, ${concurrency} at once`,
  );
  const cluster = await LocalCluster.start({ log: say });
  try {
    await installCrds(cluster);
    await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    const api = new BenchApi(loadKubeConfig(cluster.kubeconfigPath));
    const names = Array.from({ length: count }, (_, i) => `deployment-writes-${i}`);
    const stored: Status[] = [];
    await inParallel(names, concurrency, async (name, i) => {
      const status = at(statuses, i % statuses.length);
      await applyRecommendation(api, name, NAMESPACE, status);
      stored[i] = status;
    });
    const fleet: Fleet = { names, stored, statuses };
    say(`quiet (${uptime()})`);
    const quiet = await measureRounds(api, fleet, {
      rounds,
      concurrency,
      firstRound: 0,
    });
    say(formatRows('quiet API server:', quiet));
    if (busy > 0) {
      const stop = new AbortController();
      const load = new BenchApi(loadKubeConfig(cluster.kubeconfigPath));
      const writes = keepBusy(load, busy, stop.signal);
      say(`busy: ${busy} other writers (${uptime()})`);
      const started = performance.now();
      const busyRows = await measureRounds(api, fleet, {
        rounds,
        concurrency,
        firstRound: rounds * MODES.length,
      });
      stop.abort();
      const loadWrites = await writes;
      await load.close();
      say(
        formatRows(
          `busy API server (${(loadWrites / ((performance.now() - started) / 1000)).toFixed(0)} other writes/s):`,
          busyRows,
        ),
      );
    }
    say(`done (${uptime()})`);
    await api.close();
  } finally {
    await cluster.stop();
  }
}

await main();
