import { readFileSync } from 'node:fs';
import { SNAPSHOT_PRICES } from '../recommender/pricing.ts';
import { ApplyController } from './apply/controller.ts';
import { checkAws, formatOutcomes } from './aws/check.ts';
import { LivePrices } from './aws/live-prices.ts';
import { ClusterCache } from './cache.ts';
import { systemClock, untilAborted, type Clock, type Timer } from './clock.ts';
import { ConfigError, parseRunConfig, RUN_USAGE, type OperatorConfig } from './config.ts';
import { RegistryImageSource, type ImagePlatformSource } from './images.ts';
import { KubeApiError, KubeClient, type KubeApi } from './kube/client.ts';
import { inClusterConnection, loadKubeConfig, type KubeConnection } from './kube/kubeconfig.ts';
import { RESOURCES } from './kube/resources.ts';
import { LeaderElector } from './leader.ts';
import { releaseWhenFragmented, setMemoryFlags } from './memory.ts';
import { createLogger, errorMessage, type Logger } from './log.ts';
import { createMetrics, startMetricsServer, type Metrics } from './metrics.ts';
import { MetricsAuthorizer } from './metrics-auth.ts';
import { metricsTls } from './metrics-tls.ts';
import { fixedPrices } from './prices.ts';
import { RecommendationController } from './recommendations/controller.ts';
import { RegistryClient } from './registry/client.ts';
import { trafficTelemetry } from './traffic/config.ts';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface RunningOperator {
  /** Where /metrics, /healthz and /readyz are served (https:// unless --metrics-secure=false). */
  metricsUrl: string;
  /** The metrics server's certificate (PEM), for clients that verify it; absent over plain HTTP. */
  metricsCertificate?: string;
  controller: RecommendationController;
  cache: ClusterCache;
  /** Resolves when the operator has stopped: 0 after stop(), 3 after a failure. */
  done: Promise<number>;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Where image platforms come from; default: the registries themselves. */
  imagePlatforms?: ImagePlatformSource;
  /** The Kubernetes API; default: an HTTP client from the configured kubeconfig. */
  client?: KubeApi;
  metrics?: Metrics;
  clock?: Clock;
}

function podNamespace(): string | undefined {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The API server and credentials: --kubeconfig's current context, or the pod's ServiceAccount. */
function kubeConnection(config: OperatorConfig): KubeConnection {
  return config.kubeconfig ? loadKubeConfig(config.kubeconfig) : inClusterConnection();
}

function kubeClient(config: OperatorConfig, metrics: Metrics): KubeClient {
  return new KubeClient(kubeConnection(config), {
    observe: (verb, resource, status, seconds) => {
      metrics.kubeRequests.inc({ verb, resource, code: String(status) });
      if (seconds !== undefined) metrics.kubeRequestDuration.observe({ verb, resource }, seconds);
    },
  });
}

/**
 * Fails fast, as controller-runtime does, when the Lease's namespace does not exist: outside a
 * cluster the default (kopek) often does not, and the election would retry forever. A 403 (no
 * right to read namespaces) is not proof of absence: the election itself will say what fails.
 */
async function requireLeaseNamespace(client: KubeApi, namespace: string): Promise<void> {
  try {
    await client.get(RESOURCES.namespaces, namespace);
  } catch (error) {
    if (!(error instanceof KubeApiError && error.status === 404)) return;
    throw new Error(
      `leader election needs the namespace ${namespace} for its Lease, and it does not exist: ` +
        `create it (kubectl create namespace ${namespace}), name another with ` +
        '--leader-election-namespace NS, or run a single replica with --leader-elect=false',
      { cause: error },
    );
  }
}

/**
 * How long a stop waits for the reconciles under way, and for each later step (lease release,
 * rebuild, watches, price fetch, metrics server): a SIGTERM ends kopek well within the 30 s the
 * kubelet grants by default, however busy it was.
 */
const STOP_WORKERS_MS = 10_000;
const STOP_STEP_MS = 5_000;

/**
 * Waits for `step` (nothing when undefined) at most `ms`; past that, logs what is left behind
 * and goes on. A failure within the time is thrown; a later one is logged.
 */
async function stopWithin(
  step: Promise<unknown> | undefined,
  ms: number,
  what: string,
  clock: Clock,
  log: Logger,
): Promise<void> {
  if (!step) return;
  let timer: Timer | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = clock.setTimeout(() => {
      resolve('late');
    }, ms);
  });
  let outcome: 'done' | 'late';
  try {
    outcome = await Promise.race([step.then(() => 'done' as const), late]);
  } finally {
    timer?.cancel();
  }
  if (outcome === 'done') return;
  log.warn('stopping without waiting any longer', { for: what, waitedMs: ms });
  step.catch((error: unknown) => {
    log.warn('failed while stopping', { step: what, error: errorMessage(error) });
  });
}

/** Starts the operator in this process (the `kopek run` command and the tests use it). */
export async function startOperator(
  config: OperatorConfig,
  options: StartOptions = {},
): Promise<RunningOperator> {
  const log = options.log ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics ?? createMetrics();
  const client = options.client ?? kubeClient(config, metrics);
  const imagePlatforms =
    options.imagePlatforms ??
    new RegistryImageSource({
      registry: new RegistryClient({
        timeoutMs: config.registryTimeoutMs,
        insecureRegistries: config.insecureRegistries,
        // Forgotten before the controller's 30 s retry, so a registry that is back is seen.
        failureTtlMs: 20_000,
        clock,
      }),
      kube: client,
      log,
      metrics,
      readPullSecrets: config.readPullSecrets,
      clock,
    });
  // The cache tells the controller of every change; the controller reads the cache.
  const cache = new ClusterCache({
    client,
    log,
    metrics,
    clock,
    informer: {
      idleTimeoutMs: config.watchIdleTimeoutMs,
      relistIntervalMs: config.relistIntervalMs,
    },
    onChange: (resource, object, previous) => {
      controller.onChange(resource, object, previous);
      apply.onChange(resource, object);
    },
  });
  // Recommendations start from the snapshot; live prices replace it in the background.
  const livePrices = config.livePrices
    ? new LivePrices({
        base: SNAPSHOT_PRICES,
        ...(config.region !== undefined ? { region: config.region } : {}),
        nodeLabels: () => [...cache.list('nodes')].map((node) => node.metadata.labels ?? {}),
        refreshIntervalMs: config.priceRefreshIntervalMs,
        log,
        metrics,
        onChange: () => {
          controller.recomputeAll();
        },
      })
    : undefined;
  const prices = livePrices ?? fixedPrices(SNAPSHOT_PRICES);
  const controller = new RecommendationController({
    client,
    cache,
    log,
    metrics,
    clock,
    prices,
    workers: config.workers,
    minRebuildIntervalMs: config.minRebuildIntervalMs,
    resyncIntervalMs: config.resyncIntervalMs,
    clientRefreshIntervalMs: config.clientRefreshIntervalMs,
    imagePlatforms,
    ...(config.traffic
      ? { traffic: trafficTelemetry(config.traffic, { log, metrics, clock }) }
      : {}),
  });
  // Runs with the recommendation controller, under the same lease. Without --enable-apply it
  // changes nothing: approvals are answered ApplyDisabled.
  const apply = new ApplyController({
    client,
    cache,
    log,
    metrics,
    clock,
    facts: (ref) => controller.factsOf(ref),
    prices: () => prices.book(),
    applyEnabled: config.enableApply,
    dryRun: config.dryRun,
    settleMs: config.applySettleMs,
  });
  const work = (signal: AbortSignal): Promise<unknown> =>
    Promise.all([controller.run(signal), apply.run(signal)]);
  const elector = config.leaderElect
    ? new LeaderElector({
        client,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        log,
        clock,
        onLeadershipChange: (leading) => {
          metrics.leader.set({ name: config.leaderElectionId }, leading ? 1 : 0);
        },
      })
    : undefined;
  metrics.leader.set({ name: config.leaderElectionId }, elector ? 0 : 1);

  if (config.leaderElect) await requireLeaseNamespace(client, config.leaderElectionNamespace);
  await cache.start();
  livePrices?.start(cache.waitForSync());
  const tls = config.metricsSecure
    ? await metricsTls(config.metricsCertDir, config.metricsHost, clock, log)
    : undefined;
  const authorizer = new MetricsAuthorizer({
    client,
    clock,
    log,
    ttlMs: config.metricsAuthCacheTtlMs,
  });
  const server = await startMetricsServer(
    metrics,
    {
      ready: () => {
        if (!cache.synced) return { ok: false, detail: 'caches are still syncing' };
        return {
          ok: true,
          detail: `caches synced; ${!elector || elector.isLeader ? 'leading' : 'standing by'}`,
        };
      },
    },
    config.metricsHost,
    config.metricsPort,
    () => {
      controller.updateMetrics();
      apply.updateMetrics();
      livePrices?.updateMetrics();
    },
    tls && {
      tls: tls.pair,
      authorize: (header) => authorizer.authorize(header),
    },
  );
  const certificateWatch = tls?.watch((pair) => {
    if ('setSecureContext' in server) server.setSecureContext(pair);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.metricsPort;
  const host =
    config.metricsHost === '0.0.0.0'
      ? '127.0.0.1'
      : config.metricsHost === '::'
        ? '[::1]'
        : config.metricsHost.includes(':')
          ? `[${config.metricsHost}]`
          : config.metricsHost;
  const metricsUrl = `${tls ? 'https' : 'http'}://${host}:${port}`;
  log.info('kopek started', {
    metrics: `${metricsUrl}/metrics`,
    metricsAuthentication: tls !== undefined,
    identity: config.identity,
    leaderElection: config.leaderElect,
  });

  const stopping = new AbortController();
  const done = (async (): Promise<number> => {
    let code = 0;
    try {
      if (!elector) {
        const working = work(stopping.signal);
        await untilAborted(working, stopping.signal);
        await stopWithin(working, STOP_WORKERS_MS, 'the reconciles under way', clock, log);
      } else {
        // Work only while holding the lease. When a renewal fails past the deadline, stop every
        // worker at once, then stand for election again with the caches still warm: an API
        // server outage must not need a restart, and no write happens without the lease.
        while (await elector.acquire(stopping.signal)) {
          const working = new AbortController();
          const onStop = (): void => {
            working.abort();
          };
          stopping.signal.addEventListener('abort', onStop, { once: true });
          const run = work(working.signal);
          await elector.holdUntilLost(stopping.signal);
          working.abort();
          await stopWithin(run, STOP_WORKERS_MS, 'the reconciles under way', clock, log);
          stopping.signal.removeEventListener('abort', onStop);
        }
        // Only now that no worker writes any more, so a standby can take over at once.
        await stopWithin(elector.release(), STOP_STEP_MS, 'the lease release', clock, log);
      }
    } catch (error) {
      log.error('operator failed', { error: errorMessage(error) });
      code = 3;
    }
    apply.stop();
    certificateWatch?.cancel();
    const serverClosed = new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    // A scraper's keep-alive connection would hold close() open: idle ones go now, busy ones
    // when the step's time is up.
    server.closeIdleConnections();
    await Promise.all([
      stopWithin(controller.stop(), STOP_STEP_MS, 'the facts rebuild under way', clock, log),
      stopWithin(cache.stop(), STOP_STEP_MS, 'the watches', clock, log),
      stopWithin(livePrices?.stop(), STOP_STEP_MS, 'the price fetch under way', clock, log),
      stopWithin(serverClosed, STOP_STEP_MS, 'the metrics requests under way', clock, log),
    ]);
    server.closeAllConnections();
    return code;
  })();

  return {
    metricsUrl,
    ...(tls ? { metricsCertificate: tls.pair.cert } : {}),
    controller,
    cache,
    done,
    stop: async () => {
      stopping.abort();
      await done;
    },
  };
}

/** Where `kopek run` prints its help and flag errors (its logs go to stderr as JSON). */
export interface RunOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** `kopek run`: exit codes 0 (stopped by a signal), 1 (bad configuration), 2 (could not start), 3 (failed). */
export async function runCommand(
  args: readonly string[],
  output: RunOutput = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  },
): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    output.stdout(`${RUN_USAGE}\n`);
    return 0;
  }
  const check = args.includes('--check-aws');
  let config: OperatorConfig;
  try {
    config = parseRunConfig(
      args.filter((arg) => arg !== '--check-aws'),
      process.env,
      podNamespace(),
    );
  } catch (error) {
    if (error instanceof ConfigError) {
      output.stderr(`kopek run: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  if (check) return checkAwsCommand(config, log, output);
  log.info('V8 memory flags set', { flags: setMemoryFlags(config) });
  let operator: RunningOperator;
  try {
    operator = await startOperator(config, { log });
  } catch (error) {
    log.error('kopek could not start', { error: errorMessage(error) });
    return 2;
  }
  const stopReleasing = config.compactFragmentedHeap
    ? releaseWhenFragmented({ log })
    : (): void => undefined;
  const onSignal = (signal: string): void => {
    log.info('stopping', { signal });
    stopReleasing();
    void operator.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return operator.done.finally(stopReleasing);
}

/** `kopek run --check-aws`: each AWS call once; 0 when all are OK, 2 when one failed. */
async function checkAwsCommand(
  config: OperatorConfig,
  log: Logger,
  output: RunOutput,
): Promise<number> {
  let nodeLabels: Record<string, string>[] = [];
  try {
    const nodes = await new KubeClient(kubeConnection(config)).listPage<{
      metadata: { labels?: Record<string, string> };
    }>(RESOURCES.nodes, { limit: 500 });
    nodeLabels = nodes.items.map((node) => node.metadata.labels ?? {});
  } catch (error) {
    if (config.region === undefined) {
      output.stderr(
        `kopek run --check-aws: cannot read the nodes to find the region (${errorMessage(error)}); pass --region\n`,
      );
      return 2;
    }
  }
  const outcomes = await checkAws({
    ...(config.region !== undefined ? { region: config.region } : {}),
    nodeLabels,
    log,
  });
  output.stdout(`${formatOutcomes(outcomes)}\n`);
  return outcomes.every((outcome) => outcome.ok !== false) ? 0 : 2;
}
