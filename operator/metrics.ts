import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ComputedGauge, expositionChunks } from './exposition.ts';

/** How long a scrape may wait for its scraper to read before it is dropped. */
const STALLED_SCRAPE_MS = 60_000;

/**
 * Answers a scrape with the exposition text, writing each chunk as it is made and waiting for
 * the socket between them, so the text is never held whole (3.8 MB at 5,000 workloads).
 */
async function writeExposition(registry: Registry, response: ServerResponse): Promise<void> {
  const chunks = expositionChunks(registry);
  // Made before the status line: a failure here still answers 500.
  let next = await chunks.next();
  response.writeHead(200, { 'content-type': registry.contentType });
  // A scraper that stops reading would keep this scrape's series forever.
  response.setTimeout(STALLED_SCRAPE_MS, () => response.destroy());
  while (next.done !== true) {
    // The scraper went away (while a chunk was made, or the socket drained): stop making them.
    if (response.destroyed) {
      await chunks.return(undefined);
      return;
    }
    // As bytes: a string waiting in the socket's queue would stay on V8's heap meanwhile.
    if (!response.write(Buffer.from(next.value))) await drainedOrClosed(response);
    next = await chunks.next();
  }
  response.end();
}

function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
    // Closed before the listeners were added: no event is coming.
    if (response.destroyed) done();
  });
}

/**
 * Every metric kopek exports, on a registry of its own. kopek's own series carry the `kopek_`
 * prefix and base units; work-queue and reconcile series use controller-runtime's names so
 * dashboards built for Go operators read them unchanged.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const workload = ['namespace', 'kind', 'name'] as const;
  return {
    registry,
    // ---- money and verdicts (per workload: computed from the results at each scrape) ----
    workloadMonthlyCost: new ComputedGauge({
      name: 'kopek_workload_monthly_cost_usd',
      help: "Monthly cost of a workload's pods at today's placement, in USD.",
      labelNames: workload,
      registers: [registry],
    }),
    workloadPotentialSavings: new ComputedGauge({
      name: 'kopek_workload_potential_monthly_savings_usd',
      help: 'Potential monthly savings of a workload by optimization (spot, arm64, cross_zone) and all recommended changes together (combined), in USD.',
      labelNames: [...workload, 'optimization'],
      registers: [registry],
    }),
    workloadCrossZoneCost: new ComputedGauge({
      name: 'kopek_workload_cross_zone_monthly_cost_usd',
      help: 'Monthly cost of the traffic a workload sends or receives across zones, in USD.',
      labelNames: workload,
      registers: [registry],
    }),
    workloadCrossZoneBytes: new ComputedGauge({
      name: 'kopek_workload_cross_zone_bytes_monthly',
      help: "Bytes a month of a workload's traffic across zones (measured by traffic telemetry, or a measured total times the estimated share); absent when the volume is unknown.",
      labelNames: workload,
      registers: [registry],
    }),
    workloadCrossZoneEdgeBytes: new ComputedGauge({
      name: 'kopek_workload_cross_zone_edge_bytes_monthly',
      help: 'Bytes a month crossing zones over one of the largest measured edges of a workload (counted at its server side), by peer workload.',
      labelNames: [...workload, 'peer_namespace', 'peer_kind', 'peer_name'],
      registers: [registry],
    }),
    workloadCrossZoneEdgeCost: new ComputedGauge({
      name: 'kopek_workload_cross_zone_edge_monthly_cost_usd',
      help: 'Monthly cost of the cross-zone traffic over one of the largest measured edges of a workload (counted at its server side), by peer workload, in USD.',
      labelNames: [...workload, 'peer_namespace', 'peer_kind', 'peer_name'],
      registers: [registry],
    }),
    recommendations: new Gauge({
      name: 'kopek_recommendations',
      help: 'Workload recommendations by optimization and verdict.',
      labelNames: ['optimization', 'verdict'],
      registers: [registry],
    }),
    monthlyCost: new Gauge({
      name: 'kopek_monthly_cost_usd',
      help: 'Monthly cost of all analysed workloads, in USD.',
      registers: [registry],
    }),
    potentialSavings: new Gauge({
      name: 'kopek_potential_monthly_savings_usd',
      help: 'Potential monthly savings over all analysed workloads by optimization and combined, in USD.',
      labelNames: ['optimization'],
      registers: [registry],
    }),
    nodes: new Gauge({
      name: 'kopek_nodes',
      help: 'Nodes by capacity type and architecture.',
      labelNames: ['capacity_type', 'arch'],
      registers: [registry],
    }),
    // ---- sources and cache ----
    cacheObjects: new Gauge({
      name: 'kopek_cache_objects',
      help: 'Objects in the list-watch cache.',
      labelNames: ['resource'],
      registers: [registry],
    }),
    cacheLastEventAge: new Gauge({
      name: 'kopek_cache_last_event_age_seconds',
      help: 'Seconds since the cache last heard from the API server (event, bookmark or list).',
      labelNames: ['resource'],
      registers: [registry],
    }),
    cacheRelists: new Counter({
      name: 'kopek_cache_relists_total',
      help: 'Full LISTs of a resource, by reason.',
      labelNames: ['resource', 'reason'],
      registers: [registry],
    }),
    cacheWatchRestarts: new Counter({
      name: 'kopek_cache_watch_restarts_total',
      help: 'Watches that ended and were reopened, by reason.',
      labelNames: ['resource', 'reason'],
      registers: [registry],
    }),
    cacheEvents: new Counter({
      name: 'kopek_cache_events_total',
      help: 'Watch events received, by type.',
      labelNames: ['resource', 'type'],
      registers: [registry],
    }),
    workloadRealizedSavings: new Gauge({
      name: 'kopek_workload_realized_monthly_savings_usd',
      help: 'Monthly savings of the changes Apply mode made and kept, by workload and optimization (USD).',
      labelNames: ['namespace', 'kind', 'name', 'optimization'],
      registers: [registry],
    }),
    applies: new Counter({
      name: 'kopek_applies_total',
      help: 'Changes Apply mode finished, by outcome (Succeeded, RolledBack, Failed).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    rollbacks: new Counter({
      name: 'kopek_rollbacks_total',
      help: 'Reverts Apply mode made after a failed rollout, by outcome (RolledBack, Failed).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    kubeRequests: new Counter({
      name: 'kopek_kube_requests_total',
      help: 'Requests to the Kubernetes API by verb, resource and HTTP status code.',
      labelNames: ['verb', 'resource', 'code'],
      registers: [registry],
    }),
    kubeRequestDuration: new Histogram({
      name: 'kopek_kube_request_duration_seconds',
      help: 'Seconds from sending a request to the Kubernetes API to its response headers, by verb and resource (watches not included).',
      labelNames: ['verb', 'resource'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    factsRebuildDuration: new Histogram({
      name: 'kopek_facts_rebuild_duration_seconds',
      help: "Seconds a rebuild of the workloads' facts took, by scope: marked (the workloads that changes can affect) or all (the first, a resync, the cluster's shared facts changed, traffic measured).",
      labelNames: ['scope'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    changeToWriteDelay: new Histogram({
      name: 'kopek_change_to_write_delay_seconds',
      help: "Seconds from the first watch event of a facts rebuild to the start of the write of a recommendation it changed (outcome write), or to the reconcile finding the recommendation current (outcome none): kopek's own delay (batching, rebuild, queue), not the API server's time for the write.",
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    factsRebuildWorkloads: new Counter({
      name: 'kopek_facts_rebuild_workloads_total',
      help: 'Workload facts computed by rebuilds, by scope (see kopek_facts_rebuild_duration_seconds).',
      labelNames: ['scope'],
      registers: [registry],
    }),
    sourceErrors: new Counter({
      name: 'kopek_source_errors_total',
      help: 'Failures reading a source of facts (kube, registry, pricing, prometheus).',
      labelNames: ['source'],
      registers: [registry],
    }),
    trafficQueries: new Counter({
      name: 'kopek_traffic_queries_total',
      help: 'Queries to Prometheus for cross-zone traffic, by source (detect: which source exists) and result.',
      labelNames: ['source', 'result'],
      registers: [registry],
    }),
    trafficQueryDuration: new Histogram({
      name: 'kopek_traffic_query_duration_seconds',
      help: 'Time per query to Prometheus for cross-zone traffic, by source.',
      labelNames: ['source'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    trafficRefreshes: new Counter({
      name: 'kopek_traffic_refreshes_total',
      help: 'Refreshes of cross-zone traffic from Prometheus, by result: measured, or error (the estimate is used).',
      labelNames: ['result'],
      registers: [registry],
    }),
    awsErrors: new Counter({
      name: 'kopek_aws_errors_total',
      help: 'Failed AWS calls for live prices, after the SDK retries, by call (GetProducts, DescribeSpotPriceHistory, DescribeInstanceTypes, GetSpotPlacementScores) and reason (NoCredentials, AccessDenied, Throttled, Unavailable, Failed).',
      labelNames: ['call', 'reason'],
      registers: [registry],
    }),
    pricesAge: new Gauge({
      name: 'kopek_prices_age_seconds',
      help: 'Age of the prices in use, in seconds, by source: the snapshot embedded in kopek, or live AWS prices.',
      labelNames: ['source'],
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'leader_election_master_status',
      help: 'Whether this process holds the leader lease (1) or stands by (0).',
      labelNames: ['name'],
      registers: [registry],
    }),
    // ---- controller-runtime compatible ----
    reconcileTotal: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Reconciliations by controller and result.',
      labelNames: ['controller', 'result'],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Reconciliation errors by controller.',
      labelNames: ['controller'],
      registers: [registry],
    }),
    reconcileErrorsByReason: new Counter({
      name: 'kopek_reconcile_errors_total',
      help: 'Reconciliation errors by controller and reason: the API status and reason (409 Conflict), timeout, or the connection error code (ECONNREFUSED).',
      labelNames: ['controller', 'reason'],
      registers: [registry],
    }),
    pendingWork: new Gauge({
      name: 'kopek_pending_work',
      help: 'Work a controller has yet to do, by controller and kind. workloadrecommendation: queued (keys queued or being reconciled), retrying (keys waiting out a backoff), changes (cache changes marked for the next facts rebuild; a standby holds one: rebuild all), rebuilding (1 while a rebuild is due or running), image_retry (1 while failed image lookups wait to be asked again), client_refresh (1 while a refresh of cross-zone client weights is due), watch_retry (caches waiting to list or watch again after a failure). apply: queued, retrying (as above), waiting (approved changes waiting for their turn: maxConcurrent, cooldown, a PodDisruptionBudget or a rollout already under way), rolling_out (changes kopek made whose rollout it watches), reverting (failed changes being reverted). prices: refresh (1 while live AWS prices are being fetched, the SDK retries included, or the first fetch waits for the caches). All 0: nothing more will change without a new event.',
      labelNames: ['controller', 'kind'],
      registers: [registry],
    }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Time per reconciliation by controller.',
      labelNames: ['controller'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    activeWorkers: new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Workers reconciling right now.',
      labelNames: ['controller'],
      registers: [registry],
    }),
    maxConcurrentReconciles: new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Workers of a controller.',
      labelNames: ['controller'],
      registers: [registry],
    }),
    queue: {
      depth: new Gauge({
        name: 'workqueue_depth',
        help: 'Current depth of the work queue.',
        labelNames: ['name'],
        registers: [registry],
      }),
      adds: new Counter({
        name: 'workqueue_adds_total',
        help: 'Adds handled by the work queue.',
        labelNames: ['name'],
        registers: [registry],
      }),
      retries: new Counter({
        name: 'workqueue_retries_total',
        help: 'Retries handled by the work queue.',
        labelNames: ['name'],
        registers: [registry],
      }),
      queueDuration: new Histogram({
        name: 'workqueue_queue_duration_seconds',
        help: 'Seconds an item waits in the queue before being handled.',
        labelNames: ['name'],
        buckets: [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000],
        registers: [registry],
      }),
      workDuration: new Histogram({
        name: 'workqueue_work_duration_seconds',
        help: 'Seconds handling an item takes.',
        labelNames: ['name'],
        buckets: [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000],
        registers: [registry],
      }),
      unfinishedWork: new Gauge({
        name: 'workqueue_unfinished_work_seconds',
        help: 'Seconds of work in progress not yet observed by work_duration.',
        labelNames: ['name'],
        registers: [registry],
      }),
      longestRunning: new Gauge({
        name: 'workqueue_longest_running_processor_seconds',
        help: 'Seconds the longest-running item has been in progress.',
        labelNames: ['name'],
        registers: [registry],
      }),
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
export type QueueMetrics = Metrics['queue'];

/** Sets kopek_pending_work for one controller, one series per kind. */
export function setPendingWork(
  metrics: Metrics,
  controller: string,
  work: Readonly<Record<string, number>>,
): void {
  for (const [kind, value] of Object.entries(work))
    metrics.pendingWork.set({ controller, kind }, value);
}

export interface HealthState {
  /** Ready: caches synced and either leading or standing by as a healthy follower. */
  ready(): { ok: boolean; detail: string };
}

/**
 * How /metrics is protected: TLS and a check of each scrape's bearer token (see
 * metrics-auth.ts). Without it (`--metrics-secure=false`) everything is plain HTTP and open.
 */
export interface MetricsSecurity {
  tls: { cert: string; key: string };
  authorize(authorization: string | undefined): Promise<{ status: number; message: string }>;
}

/**
 * Serves /metrics, /healthz (the process answers) and /readyz on `host:port`. With `security`,
 * over HTTPS, and /metrics only to scrapers the API server allows; /healthz and /readyz stay
 * open on the same port for the kubelet's probes.
 */
export async function startMetricsServer(
  metrics: Metrics,
  health: HealthState,
  host: string,
  port: number,
  beforeScrape: () => void,
  security?: MetricsSecurity,
): Promise<Server | HttpsServer> {
  const serveMetrics = (response: ServerResponse): void => {
    beforeScrape();
    writeExposition(metrics.registry, response).catch((error: unknown) => {
      // Once the text has begun, a cut connection is how the scraper learns it failed.
      if (response.headersSent) {
        response.destroy();
        return;
      }
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(String(error));
    });
  };
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      if (!security) {
        serveMetrics(response);
        return;
      }
      security.authorize(request.headers.authorization).then(
        (decision) => {
          if (decision.status === 200) {
            serveMetrics(response);
            return;
          }
          response.writeHead(decision.status, {
            'content-type': 'text/plain',
            ...(decision.status === 401 ? { 'www-authenticate': 'Bearer realm="kopek"' } : {}),
          });
          response.end(`${decision.message}\n`);
        },
        (error: unknown) => {
          response.writeHead(500, { 'content-type': 'text/plain' });
          response.end(`could not check the scrape: ${String(error)}\n`);
        },
      );
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok\n');
    } else if (path === '/readyz') {
      const state = health.ready();
      response.writeHead(state.ok ? 200 : 503, { 'content-type': 'text/plain' });
      response.end(`${state.detail}\n`);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not found: try /metrics, /healthz or /readyz\n');
    }
  };
  const server = security
    ? createHttpsServer({ cert: security.tls.cert, key: security.tls.key }, handle)
    : createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
