#!/usr/bin/env node
/**
 * `npm run bench:scale`: kopek on a large EKS-like cluster (see USAGE). Not a test: it prints
 * the figures and the machine's load, and writes them as JSON with --out.
 */
import { writeFile } from 'node:fs/promises';
import { runScaleBench, ScaleBenchFailure, type ScaleOptions } from './scale/run.ts';
import { formatTable } from './scale/table.ts';
import { parseMemoryLimitOption } from './scale/memory-limit.ts';
import { chartDefaults } from '../support/chart-values.ts';

const USAGE = `Usage: npm run bench:scale -- [flags]

Starts the local control plane with KWOK nodes, a local registry, and workloads with their pods
(scheduled by the real scheduler), Services, EndpointSlices, PDBs and HPAs; then measures:
  1. the floor: a paged LIST of what kopek watches + server-side applies of one
     WorkloadRecommendation (and status) per workload, by a minimal script on kopek's HTTP stack;
  2. kopek run's cold start until every recommendation is written (and its ratio to the floor);
  3. kopek's peak and settled RSS and heap;
  4. change latency: workload changes (scale, image, annotation) → recommendation updated;
  5. writes and API requests per minute at steady state;
  6. registry manifest GETs against distinct images;
  7. kopek analyze over kubectl dumps (YAML and JSON) of the same cluster;
and the import cost of kopek's entry point.

  --nodes N            KWOK nodes (default 2000)
  --workloads N        workloads (default 5000)
  --pods N             pods in all, DaemonSets' included (default 50000)
  --images N           distinct images (default: 6% of workloads, 5 to 300)
  --old-revisions N    old revisions per Deployment, up to 10: ReplicaSets scaled to zero, as
                       rollouts leave them (default 0; Kubernetes keeps 10, revisionHistoryLimit)
  --steady-minutes M   steady-state window (default 5)
  --change-rate R      workload changes per second (default: 1% of the workloads, 50 at full
                       size; each change needs a Deployment with no change still pending)
  --change-seconds S   how long changes are made (default 60)
  --drain-seconds S    how long a change may wait for its recommendation (default 60)
  --import-runs N      runs per import measurement, 0 to skip (default 5)
  --no-analyze         skip kopek analyze
  --analyze-formats F  the dumps kopek analyze reads: yaml, json or yaml,json (default)
  --kopek-node-options FLAGS
                       Node flags for kopek run, space-separated (default: the chart's nodeOptions;
                       '' for Node's defaults)
  --memory-limit Q|chart|none
                       run kopek in a memory cgroup with this limit (e.g. 512Mi), as its pod; default
                       chart: the chart's limit, or none with a warning where no cgroup can be made;
                       none with --profile (a heap snapshot can take more than the limit)
  --kopek-env NAME=VALUE
                       an environment variable for kopek run (repeatable; default: the chart's
                       mallocEnv; NAME= leaves NAME out, e.g. MALLOC_ARENA_MAX= for glibc's default)
  --typescript         run kopek's TypeScript sources (Node's type stripping, as the tests do);
                       default: kopek compiled as the image runs it
  --profile DIR        profile kopek's cold start instead (CPU profile + heap snapshot into DIR,
                       summarized), then stop
  --cpu-prof DIR       run kopek under Node's --cpu-prof into DIR and print the top frames of
                       the change phase
  --timeout-minutes M  longest wait for the pods, and for kopek's cold start (default 90)
  --out FILE           also write the results as JSON
  --keep               keep the working directory (logs, dumps)`;

/** The flags that take a whole number: the option each sets, and its least value. */
const WHOLE_NUMBER_FLAGS: Readonly<
  Record<
    string,
    readonly ['nodes' | 'workloads' | 'pods' | 'images' | 'oldRevisions' | 'importRuns', number]
  >
> = {
  '--nodes': ['nodes', 1],
  '--workloads': ['workloads', 1],
  '--pods': ['pods', 1],
  '--images': ['images', 1],
  '--old-revisions': ['oldRevisions', 0],
  '--import-runs': ['importRuns', 0],
};

function parseArgs(argv: readonly string[]): ScaleOptions & { out?: string } {
  let changeRate: number | undefined;
  const options: ScaleOptions & { out?: string } = {
    nodes: 2000,
    workloads: 5000,
    pods: 50_000,
    steadySeconds: 300,
    changeRate: 0, // --change-rate, or from the size (below)
    changeSeconds: 60,
    drainSeconds: 60,
    oldRevisions: 0,
    settleQuietSeconds: 15,
    importRuns: 5,
    analyzeFormats: ['yaml', 'json'],
    timeoutMinutes: 90,
    keep: false,
    // As the chart runs it (--kopek-node-options '' for Node's defaults; --kopek-env adds to or
    // replaces the chart's malloc settings).
    kopekNodeFlags: chartDefaults().nodeFlags,
    kopekEnv: chartDefaults().mallocEnv,
    say: (line) => {
      process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
    },
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] ?? '';
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    const number = (min: number): number => {
      const text = value();
      const parsed = Number(text);
      if (!Number.isFinite(parsed) || parsed < min)
        throw new Error(`${flag} must be a number ≥ ${min}, got "${text}"`);
      return parsed;
    };
    const whole = (min: number): number => {
      const parsed = number(min);
      if (!Number.isInteger(parsed)) throw new Error(`${flag} must be a whole number`);
      return parsed;
    };
    const counted = Object.hasOwn(WHOLE_NUMBER_FLAGS, flag) ? WHOLE_NUMBER_FLAGS[flag] : undefined;
    if (counted !== undefined) {
      options[counted[0]] = whole(counted[1]);
      continue;
    }
    switch (flag) {
      case '--steady-minutes':
        options.steadySeconds = number(0) * 60;
        break;
      case '--change-rate':
        changeRate = number(0.1);
        break;
      case '--change-seconds':
        options.changeSeconds = number(0);
        break;
      case '--drain-seconds':
        options.drainSeconds = number(1);
        break;
      case '--no-analyze':
        options.analyzeFormats = [];
        break;
      case '--analyze-formats': {
        const formats = value().split(',');
        if (!formats.every((f): f is 'yaml' | 'json' => f === 'yaml' || f === 'json'))
          throw new Error('--analyze-formats takes yaml, json or yaml,json');
        options.analyzeFormats = formats;
        break;
      }
      case '--kopek-node-options':
        options.kopekNodeFlags = value()
          .split(/\s+/)
          .filter((f) => f !== '');
        break;
      case '--kopek-env': {
        const setting = value();
        const equals = setting.indexOf('=');
        if (equals < 1) throw new Error(`--kopek-env wants NAME=VALUE, got "${setting}"`);
        // NAME= leaves the variable out (e.g. one of the chart's malloc settings).
        const { [setting.slice(0, equals)]: _, ...others } = options.kopekEnv ?? {};
        options.kopekEnv =
          equals === setting.length - 1
            ? others
            : { ...others, [setting.slice(0, equals)]: setting.slice(equals + 1) };
        break;
      }
      case '--memory-limit': {
        options.memoryLimit = parseMemoryLimitOption(value());
        break;
      }
      case '--typescript':
        options.typescript = true;
        break;
      case '--profile':
        options.profileDir = value();
        break;
      case '--cpu-prof':
        options.cpuProfileDir = value();
        break;
      case '--timeout-minutes':
        options.timeoutMinutes = number(1);
        break;
      case '--out':
        options.out = value();
        break;
      case '--keep':
        options.keep = true;
        break;
      default:
        throw new Error(`unknown flag ${flag}`);
    }
  }
  // A Deployment keeps 10 old revisions (revisionHistoryLimit) and deletes older ones.
  if (options.oldRevisions > 10) throw new Error('--old-revisions takes at most 10');
  if (options.profileDir && options.cpuProfileDir)
    throw new Error('--profile and --cpu-prof profile different phases: pick one');
  // 50 a second at 5,000 workloads: at a smaller size, that many would soon find every
  // Deployment still waiting for its last change's recommendation.
  options.changeRate = changeRate ?? Math.max(1, options.workloads / 100);
  return options;
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
let options: ReturnType<typeof parseArgs>;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  console.error(
    `bench:scale: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`,
  );
  process.exit(1);
}
const stopping = new Promise<never>((_, reject) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      reject(new Error(`stopped by ${signal}`));
    });
});
try {
  const result = await Promise.race([runScaleBench(options), stopping]);
  process.stdout.write(`\n${formatTable(result)}`);
  if (options.out) await writeFile(options.out, `${JSON.stringify(result, null, 2)}\n`);
  process.exit(0);
} catch (error) {
  if (error instanceof ScaleBenchFailure) {
    process.stdout.write(`\nWhat was measured before the failure:\n${formatTable(error.partial)}`);
    if (options.out) await writeFile(options.out, `${JSON.stringify(error.partial, null, 2)}\n`);
  }
  console.error(`bench:scale failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
