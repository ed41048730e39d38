#!/usr/bin/env node
/**
 * Benchmark (not a test): recommendations per second over 50,000 synthetic workloads, and how
 * the time of factsFromObjects grows with the size of a dump.
 *
 *   npm run bench   (node test/bench/recommend.ts [--workloads N] [--rounds R] [--dump-workloads D])
 *
 * The machine is shared and noisy, so the figures that mean something are ratios measured in
 * the same run: recommend against a baseline over the same facts (JSON.stringify of each
 * workload's facts, a pass that touches every field once), and factsFromObjects over a dump of
 * 2·D workloads against one of D (linear: about 2×). Each runs R rounds; the best round counts.
 */
import { performance } from 'node:perf_hooks';
import type { WorkloadKind } from '../../recommender/api/v1alpha1.ts';
import { factsFromObjects } from '../../recommender/facts-from-objects.ts';
import type { ImagePlatformsFact, WorkloadFacts } from '../../recommender/facts.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { recommend } from '../../recommender/recommend.ts';
import {
  CLUSTER,
  ZONES,
  container,
  goodFacts,
  node,
  pod,
  service,
  template,
} from '../../recommender/testing.ts';
import { rng } from '../support/random.ts';
import { syntheticDump } from './synthetic-dump.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const WORKLOADS = arg('--workloads', 50_000);
const ROUNDS = arg('--rounds', 3);
const DUMP_WORKLOADS = arg('--dump-workloads', 5_000);

const TYPES = [
  'm6i.xlarge',
  'm6i.2xlarge',
  'c6i.2xlarge',
  'r6i.2xlarge',
  'm5.xlarge',
  'm7g.xlarge',
  'c7g.xlarge',
  't3.large',
];
const KINDS: WorkloadKind[] = [
  'Deployment',
  'Deployment',
  'Deployment',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Rollout',
];
const PLATFORMS: ImagePlatformsFact[] = [
  { platforms: ['linux/amd64', 'linux/arm64'] },
  { platforms: ['linux/amd64', 'linux/arm64'] },
  { platforms: ['linux/amd64'] },
  { error: 'registry: 401' },
];

function synthetic(count: number): WorkloadFacts[] {
  const r = rng(20260720);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const nodes = Array.from({ length: 300 }, (_, i) =>
    node(`node-${i}`, ZONES[i % 3] ?? 'us-east-1a', pick(TYPES), {
      capacityType: r() < 0.2 ? 'spot' : 'on-demand',
      arch: 'amd64',
    }),
  ).map((n) => (/^[a-z]+\dg/.test(n.instanceType ?? '') ? { ...n, arch: 'arm64' } : n));
  const out: WorkloadFacts[] = [];
  for (let i = 0; i < count; i++) {
    const kind = pick(KINDS);
    const replicas = 1 + Math.floor(r() * 8);
    const images = [
      `registry.example.com/team-${i % 97}/app-${i}:1.${i % 13}`,
      r() < 0.5 ? 'envoyproxy/envoy:v1.34.1' : undefined,
    ].filter((x): x is string => x !== undefined);
    const imagePlatforms: Record<string, ImagePlatformsFact> = {};
    for (const image of images) if (r() < 0.9) imagePlatforms[image] = pick(PLATFORMS);
    out.push(
      goodFacts({
        kind,
        name: `app-${i}`,
        namespace: `team-${i % 97}`,
        replicas,
        template: template({
          containers: images.map((image, j) =>
            container(j === 0 ? 'app' : 'envoy', image, {
              cpuRequestCores: 0.1 + r() * 2,
              readinessProbe: r() < 0.8,
            }),
          ),
          volumeClaimTemplates: kind === 'StatefulSet' && r() < 0.7 ? ['data'] : [],
          terminationGracePeriodSeconds: pick([30, 30, 60, 120, 300]),
          nodeSelector: r() < 0.05 ? { 'kubernetes.io/arch': 'amd64' } : {},
        }),
        pods: Array.from({ length: replicas }, (_, j) =>
          pod(`app-${i}-${j}`, pick(nodes), 0.1 + r() * 2, 0.25 + r() * 8),
        ),
        imagePlatforms,
        services:
          r() < 0.7
            ? [
                service(`app-${i}`, {
                  readyEndpointsPerZone: {
                    'us-east-1a': 1 + Math.floor(r() * 3),
                    'us-east-1b': Math.floor(r() * 3),
                    'us-east-1c': 1,
                  },
                }),
              ]
            : [],
        cluster: CLUSTER,
        ...(r() < 0.6 ? { pdb: { name: `app-${i}`, disruptionsAllowed: r() < 0.9 ? 1 : 0 } } : {}),
      }),
    );
  }
  return out;
}

function best(
  label: string,
  facts: readonly WorkloadFacts[],
  fn: (f: WorkloadFacts) => unknown,
): number {
  let fastest = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    for (const f of facts) sink += fn(f) === undefined ? 0 : 1;
    fastest = Math.min(fastest, performance.now() - start);
  }
  if (sink === -1) process.stdout.write(label);
  return fastest;
}

/** The best of R rounds of factsFromObjects over a synthetic dump of `workloads` workloads. */
function factsMs(workloads: number): { ms: number; objects: number } {
  const dump = syntheticDump(workloads);
  let fastest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    const built = factsFromObjects(dump);
    fastest = Math.min(fastest, performance.now() - start);
    if (built.facts.length !== workloads)
      throw new Error(`facts for ${built.facts.length} of ${workloads}`);
  }
  return { ms: fastest, objects: dump.length };
}
// First, while the heap holds nothing else: a major GC marks every live object, so the 50,000
// workloads' facts below would slow this part down for reasons of the benchmark's own.
factsMs(Math.min(500, DUMP_WORKLOADS)); // warm-up
const small = factsMs(DUMP_WORKLOADS);
const large = factsMs(2 * DUMP_WORKLOADS);
const dumpLine = (n: number, run: { ms: number; objects: number }) =>
  `${n.toLocaleString('en-US')} workloads (${run.objects.toLocaleString('en-US')} objects) in ${run.ms.toFixed(0)} ms`;

const facts = synthetic(WORKLOADS);
// Warm up both paths (JIT, the price tables' lazy caches) on a slice first.
best('warm', facts.slice(0, 2000), (f) => JSON.stringify(f));
best('warm', facts.slice(0, 2000), (f) => recommend(f, SNAPSHOT_PRICES));

const baselineMs = best('baseline', facts, (f) => JSON.stringify(f));
const recommendMs = best('recommend', facts, (f) => recommend(f, SNAPSHOT_PRICES));
const perSecond = (ms: number) => Math.round((facts.length / ms) * 1000);

process.stdout.write(
  [
    `workloads:        ${facts.length} synthetic (best of ${ROUNDS} rounds, node ${process.version})`,
    `baseline:         ${perSecond(baselineMs).toLocaleString('en-US')} JSON.stringify(facts)/s (${baselineMs.toFixed(0)} ms)`,
    `recommend:        ${perSecond(recommendMs).toLocaleString('en-US')} recommendations/s (${recommendMs.toFixed(0)} ms)`,
    `ratio:            recommend takes ${(recommendMs / baselineMs).toFixed(1)}× the time of the baseline`,
    `facts from dump:  ${dumpLine(DUMP_WORKLOADS, small)}; ${dumpLine(2 * DUMP_WORKLOADS, large)}`,
    `growth:           twice the dump takes ${(large.ms / small.ms).toFixed(2)}× the time (linear: ≈2)`,
    '',
  ].join('\n'),
);
