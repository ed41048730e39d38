import { ApplyController, type ApplyControllerOptions } from '../apply/controller.ts';
import { ClusterCache } from '../cache.ts';
import { RESOURCES } from '../kube/resources.ts';
import type { ImagePlatformSource } from '../images.ts';
import { createLogger, type Logger, type LogLevel } from '../log.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { RecommendationController } from '../recommendations/controller.ts';
import type { TrafficSource } from '../traffic/telemetry.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { fixedPrices, type PriceSource } from '../prices.ts';
import { FakeKube } from './fake-kube.ts';
import { ManualClock } from './manual-clock.ts';

/** A log that tests can read: every line kept as parsed JSON. */
export function memoryLog(
  level: LogLevel = 'debug',
): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  return Object.assign(log, { lines });
}

export interface FakeOperator {
  kube: FakeKube;
  clock: ManualClock;
  metrics: Metrics;
  log: ReturnType<typeof memoryLog>;
  cache: ClusterCache;
  controller: RecommendationController;
  /** Apply mode's controller, when started with `apply`. */
  apply?: ApplyController;
  /** How many times the controller returned V8's freed pages (counted, not done, here). */
  readonly memoryReleases: number;
  /** Takes the lease (runs the controllers) when started as a standby. */
  lead(): void;
  /** Steps the clock in small steps until `done` holds (or fails after `maxMs` of fake time). */
  until(done: () => boolean, maxMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The recommendation controller on the in-memory API and a manual clock, leading from the
 * start (or standing by until `lead()`, with `standby`), as unit tests drive it: put objects
 * into `kube`, step `clock`, read what was written.
 */
export async function startFakeOperator(
  options: {
    kube?: FakeKube;
    clock?: ManualClock;
    prices?: PriceSource;
    traffic?: TrafficSource;
    /** The registry the recommendation controller asks for image platforms. */
    imagePlatforms?: ImagePlatformSource;
    /** Also runs Apply mode's controller with these settings. */
    apply?: Pick<ApplyControllerOptions, 'applyEnabled' | 'dryRun' | 'settleMs'>;
    /** Caches only, as a replica without the lease, until `lead()`. */
    standby?: boolean;
  } = {},
): Promise<FakeOperator> {
  const kube = options.kube ?? new FakeKube();
  const clock = options.clock ?? new ManualClock();
  const metrics = createMetrics();
  const log = memoryLog();
  const prices = options.prices ?? fixedPrices(SNAPSHOT_PRICES);
  const cache = new ClusterCache({
    client: kube,
    log,
    metrics,
    clock,
    onChange: (resource, object, previous) => {
      controller.onChange(resource, object, previous);
      apply?.onChange(resource, object);
    },
  });
  let memoryReleases = 0;
  const controller = new RecommendationController({
    client: kube,
    cache,
    log,
    metrics,
    clock,
    prices,
    workers: 2,
    releaseMemory: () => {
      memoryReleases++;
    },
    ...(options.traffic ? { traffic: options.traffic } : {}),
    ...(options.imagePlatforms ? { imagePlatforms: options.imagePlatforms } : {}),
  });
  const apply = options.apply
    ? new ApplyController({
        client: kube,
        cache,
        log,
        metrics,
        clock,
        facts: (ref) => controller.factsOf(ref),
        prices: () => prices.book(),
        ...options.apply,
      })
    : undefined;
  await cache.start();
  const running = new AbortController();
  let run: Promise<unknown> = Promise.resolve();
  const lead = (): void => {
    run = Promise.all([controller.run(running.signal), apply?.run(running.signal)]);
  };
  if (!options.standby) lead();
  const until = async (done: () => boolean, maxMs = 120_000): Promise<void> => {
    for (let waited = 0; !done(); waited += 50) {
      if (waited > maxMs) throw new Error(`not done after ${maxMs} ms of fake time`);
      await clock.advance(50);
    }
  };
  return {
    kube,
    clock,
    metrics,
    log,
    cache,
    controller,
    ...(apply ? { apply } : {}),
    get memoryReleases() {
      return memoryReleases;
    },
    lead,
    until,
    stop: async () => {
      running.abort();
      await run;
      await controller.stop();
      apply?.stop();
      await cache.stop();
    },
  };
}

/** A Deployment as a person would write it: `replicas` pods of one container. */
export function deployment(
  namespace: string,
  name: string,
  options: { replicas?: number; annotations?: Record<string, string> } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace,
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    spec: {
      replicas: options.replicas ?? 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name,
              image: `registry.example/${name}:1`,
              resources: { requests: { cpu: '500m', memory: '512Mi' } },
              readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
            },
          ],
        },
      },
    },
  };
}

/** Where tests find what kopek wrote for a Deployment. */
export function recommendationOf(
  kube: FakeKube,
  namespace: string,
  name: string,
): Record<string, unknown> | undefined {
  return kube.object(RESOURCES.workloadrecommendations, `deployment-${name}`, namespace);
}
