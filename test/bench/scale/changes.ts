/**
 * The change phase: `rate` workload changes a second for `seconds`, in turn a scale (±1
 * replica), an image (to one with other platforms: a rollout) and an annotation
 * (`kopek.dev/spot: never`, set or removed), each to a different Deployment kopek analyses
 * (without an HPA or an opt-out of its own, so each change changes its recommendation). Each change is
 * timed from the API server's acknowledgement to the first update of its recommendation that
 * shows it: as many pods priced as the new replicas, the new image in the arm64 verdict, the
 * opt-out reason in the Spot verdict (or its absence). Any update is not enough: pods starting
 * anywhere change the client weights, and so the recommendation, of every workload with a Service.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { objectPath } from '../../../operator/kube/client.ts';
import { RESOURCES } from '../../../operator/kube/resources.ts';
import { recommendationName } from '../../../recommender/recommend.ts';
import type { SeededImage } from '../../registry/seed.ts';
import { rng } from '../../support/random.ts';
import type { BenchApi } from './http.ts';
import type { RecommendationTracker, Seen } from './recommendations.ts';
import { NO_SPOT_NAMESPACE, type WorkloadRef } from './workloads.ts';

export type ChangeType = 'scale' | 'image' | 'annotation';
const TYPES: readonly ChangeType[] = ['scale', 'image', 'annotation'];

export interface ChangeTiming {
  type: ChangeType;
  workload: string;
  /** ms from the acknowledged write to the recommendation's update; undefined: none seen. */
  latencyMs: number | undefined;
}

export interface ChangeRun {
  timings: ChangeTiming[];
  /** Changes that could not be written (API error), or found no free workload. */
  failed: number;
  skipped: number;
  /** Changes written per second, as achieved. */
  achievedRate: number;
}

export interface ChangeOptions {
  api: BenchApi;
  tracker: RecommendationTracker;
  refs: readonly WorkloadRef[];
  images: readonly SeededImage[];
  rate: number;
  seconds: number;
  /** How long to wait for a change's recommendation before counting it as not updated. */
  drainMs: number;
  say: (line: string) => void;
}

interface State {
  ref: WorkloadRef;
  replicas: number;
  image: number;
  spotNever: boolean;
  busy: boolean;
}

/** The change to apply, and how its recommendation shows it. */
function changeFor(
  type: ChangeType,
  state: State,
  images: readonly SeededImage[],
): { patch: unknown; shows: (seen: Seen) => boolean } {
  const head = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: state.ref.name, namespace: state.ref.namespace },
  };
  switch (type) {
    case 'scale': {
      const replicas = state.replicas === 1 ? 2 : state.replicas - 1;
      state.replicas = replicas;
      return {
        patch: { ...head, spec: { replicas } },
        shows: (seen) => seen.replicas === replicas,
      };
    }
    case 'image': {
      // The next image in the list: multi-arch and amd64-only alternate.
      state.image = (state.image + 1) % images.length;
      const image = images[state.image]?.image ?? '';
      return {
        patch: { ...head, spec: { template: { spec: { containers: [{ name: 'app', image }] } } } },
        shows: (seen) => seen.images.includes(image),
      };
    }
    case 'annotation': {
      const spotNever = !state.spotNever;
      state.spotNever = spotNever;
      return {
        patch: spotNever
          ? { ...head, metadata: { ...head.metadata, annotations: { 'kopek.dev/spot': 'never' } } }
          : head,
        shows: (seen) => seen.spotReasons.includes('OptedOut') === spotNever,
      };
    }
  }
}

export async function runChanges(options: ChangeOptions): Promise<ChangeRun> {
  const { api, tracker, images, say } = options;
  const random = rng(7);
  const states: State[] = options.refs
    .filter((ref) => ref.kind === 'Deployment' && ref.analysed && !ref.hpa && !ref.spotNever)
    .map((ref) => ({ ref, replicas: ref.pods, image: ref.image, spotNever: false, busy: false }))
    .map((state) => ({ state, order: random() }))
    .sort((a, b) => a.order - b.order)
    .map(({ state }) => state);
  const total = Math.round(options.rate * options.seconds);
  const timings: ChangeTiming[] = [];
  const inFlight: Promise<void>[] = [];
  let failed = 0;
  let skipped = 0;
  let cursor = 0;
  const started = performance.now();
  let written = 0;
  let lastWriteAt = started;
  for (let k = 0; k < total; k++) {
    const due = started + (k * 1000) / options.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const type = TYPES[k % TYPES.length] ?? 'scale';
    // The next workload without a change still waiting for its recommendation (Spot is off by
    // policy in one namespace: the annotation would change nothing there).
    let state: State | undefined;
    for (let tries = 0; tries < states.length && !state; tries++) {
      const candidate = states[cursor++ % states.length];
      const pointless = type === 'annotation' && candidate?.ref.namespace === NO_SPOT_NAMESPACE;
      if (candidate && !candidate.busy && !pointless) state = candidate;
    }
    if (!state) {
      skipped++;
      continue;
    }
    const target = state;
    target.busy = true;
    const workload = `${target.ref.namespace}/${target.ref.name}`;
    const key = `${target.ref.namespace}/${recommendationName('Deployment', target.ref.name)}`;
    inFlight.push(
      (async () => {
        const { patch, shows } = changeFor(type, target, images);
        const updated = tracker.expectUpdate(key, shows);
        try {
          // A field manager per kind of change: each apply states all its manager owns (the
          // annotation's is removed by applying without it), and leaves the others' fields alone.
          await api.apply(
            objectPath(RESOURCES.deployments, target.ref.name, target.ref.namespace),
            patch,
            `kopek-bench-${type}`,
          );
        } catch (error) {
          failed++;
          tracker.forget(key);
          target.busy = false;
          say(`  change ${type} of ${workload} failed: ${String(error)}`);
          return;
        }
        const writtenAt = Date.now();
        written++;
        lastWriteAt = performance.now();
        const giveUp = new AbortController();
        const timeout = sleep(options.drainMs, undefined, { signal: giveUp.signal }).catch(
          () => undefined,
        );
        const updatedAt = await Promise.race([updated, timeout]);
        giveUp.abort();
        tracker.forget(key);
        target.busy = false;
        timings.push({
          type,
          workload,
          latencyMs: updatedAt === undefined ? undefined : Math.max(0, updatedAt - writtenAt),
        });
      })(),
    );
  }
  say(`  ${total - skipped} changes sent; waiting for their recommendations`);
  await Promise.all(inFlight);
  const writeSeconds = (lastWriteAt - started) / 1000;
  return { timings, failed, skipped, achievedRate: writeSeconds > 0 ? written / writeSeconds : 0 };
}

/** The q-quantile (0–1) of `values`, nearest rank. */
export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
