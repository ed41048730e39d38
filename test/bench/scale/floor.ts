#!/usr/bin/env node
/**
 * The floor of kopek's cold start: the least any implementation over the same HTTP stack must
 * do. A paged LIST (limit 500, each page parsed) of every resource kopek watches, then a
 * server-side apply of `count` WorkloadRecommendations and of their status (as kopek writes
 * them: two requests each, `concurrency` at a time, like kopek's workers). Run as a child process
 * so its time includes starting Node and importing the HTTP stack, as kopek's does.
 *
 *   node test/bench/scale/floor.ts '{"kubeconfig":…,"namespace":…,"count":…,"concurrency":4}'
 *
 * Prints one line of JSON: {listSeconds, listedObjects, applySeconds, applied}.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { collectionPath, objectPath } from '../../../operator/kube/client.ts';
import { loadKubeConfig } from '../../../operator/kube/kubeconfig.ts';
import { RESOURCES, type ResourceName } from '../../../operator/kube/resources.ts';
import { inParallel } from '../../support/parallel.ts';
import { BenchApi } from './http.ts';

export interface FloorOptions {
  kubeconfig: string;
  namespace: string;
  count: number;
  concurrency: number;
  /** Resources to list (kopek's, less those the API server does not serve). */
  resources: ResourceName[];
  /** Ask for credentials and make a new connection pool before every request (what one pool saves). */
  agentPerRequest?: boolean;
}

export interface FloorResult {
  listSeconds: number;
  listedObjects: number;
  applySeconds: number;
  applied: number;
  concurrency: number;
}

/** A realistic status: the example of a Deployment with every optimization recommended. */
const EXAMPLE = fileURLToPath(
  new URL('../../../crds/examples/workloadrecommendation-checkout.yaml', import.meta.url),
);

/**
 * A Deployment's WorkloadRecommendation and then its status, each server-side applied as kopek
 * applies them (field manager `kopek`).
 */
export async function applyRecommendation(
  api: BenchApi,
  name: string,
  namespace: string,
  status: unknown,
): Promise<void> {
  const metadata = { name, namespace };
  const head = { apiVersion: 'kopek.dev/v1alpha1', kind: 'WorkloadRecommendation' };
  const path = objectPath(RESOURCES.workloadrecommendations, name, namespace);
  await api.apply(
    path,
    {
      ...head,
      metadata: { ...metadata, labels: { 'app.kubernetes.io/managed-by': 'kopek' } },
      spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name } },
    },
    'kopek',
  );
  await api.apply(`${path}/status`, { ...head, metadata, status }, 'kopek');
}

export async function runFloor(options: FloorOptions): Promise<FloorResult> {
  const api = new BenchApi(loadKubeConfig(options.kubeconfig), {
    agentPerRequest: options.agentPerRequest ?? false,
  });
  const listStarted = performance.now();
  const counts = await Promise.all(
    options.resources.map(
      async (name) => (await api.listAll(collectionPath(RESOURCES[name]))).length,
    ),
  );
  const listedObjects = counts.reduce((a, b) => a + b, 0);
  const listSeconds = (performance.now() - listStarted) / 1000;

  const example = parse(readFileSync(EXAMPLE, 'utf8')) as { status: Record<string, unknown> };
  const applyStarted = performance.now();
  await inParallel(
    Array.from({ length: options.count }, (_, i) => `deployment-floor-${i}`),
    options.concurrency,
    async (name) => {
      await applyRecommendation(api, name, options.namespace, example.status);
    },
  );
  const applySeconds = (performance.now() - applyStarted) / 1000;
  await api.close();
  return {
    listSeconds,
    listedObjects,
    applySeconds,
    applied: options.count,
    concurrency: options.concurrency,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const options = JSON.parse(process.argv[2] ?? '{}') as FloorOptions;
  const result = await runFloor(options);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
