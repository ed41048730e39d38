import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isLogLevel, type LogLevel } from './log.ts';
import { parseTrafficConfig, type TrafficConfig } from './traffic/config.ts';
import { TRAFFIC_FLAGS, TRAFFIC_USAGE } from './traffic/flags.ts';

/** `kopek run` settings, from flags first, then KOPEK_* environment variables, then defaults. */
export interface OperatorConfig {
  /** Path of a kubeconfig; absent: in-cluster ServiceAccount credentials. */
  kubeconfig?: string;
  metricsHost: string;
  metricsPort: number;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  identity: string;
  workers: number;
  logLevel: LogLevel;
  minRebuildIntervalMs: number;
  watchIdleTimeoutMs: number;
  relistIntervalMs: number;
  resyncIntervalMs: number;
  /**
   * How long the workloads with a Service wait to follow a move of the cluster's client pods per
   * zone (their cross-zone client weights) caused by other workloads' pods.
   */
  clientRefreshIntervalMs: number;
  registryTimeoutMs: number;
  readPullSecrets: boolean;
  /** host:port registries served over plain HTTP. */
  insecureRegistries: string[];
  /** Apply mode may change workloads (policies in mode Apply, approved changes). */
  enableApply: boolean;
  /** Apply mode sends its changes as server-side dry runs and logs them; nothing is stored. */
  dryRun: boolean;
  /** How long an applied change's new pods must stay Ready before it counts as Succeeded. */
  applySettleMs: number;
  /** Cross-zone traffic from Prometheus; absent without --prometheus-url. */
  traffic?: TrafficConfig;
  /** Fetch prices from the AWS APIs (when credentials exist) instead of only the snapshot. */
  livePrices: boolean;
  priceRefreshIntervalMs: number;
  /** Region to price; absent: the nodes' topology.kubernetes.io/region. */
  region?: string;
  /** HTTPS and a TokenReview + SubjectAccessReview per scrape of /metrics; false: plain HTTP, open. */
  metricsSecure: boolean;
  /** Directory with tls.crt and tls.key for the metrics server; absent: a self-signed one made at start. */
  metricsCertDir?: string;
  /** How long an answer about a scrape's token is reused. */
  metricsAuthCacheTtlMs: number;
  /** V8's memory saver mode: less resident memory for more CPU (runCommand sets it). */
  memorySaver: boolean;
  /** How far V8's heap may grow past what a full collection kept, in percent; 0: V8 decides. */
  heapGrowingPercent: number;
  /** Compact V8's heap when a full collection left it fragmented (runCommand watches). */
  compactFragmentedHeap: boolean;
}

export const RUN_USAGE = `Usage: kopek run [flags]

Runs the operator: watches the cluster, keeps a WorkloadRecommendation per workload, and serves
Prometheus metrics. Each flag can also be set by the environment variable in brackets.

  --kubeconfig PATH               kubeconfig to use [KUBECONFIG]; default: in-cluster credentials
  --metrics-bind-address ADDR     host:port for /metrics, /healthz, /readyz, e.g. [::]:8080 for IPv6 [KOPEK_METRICS_BIND_ADDRESS] (default 0.0.0.0:8080)
  --metrics-secure BOOL           serve over HTTPS and let only scrapers the API server allows (TokenReview, then SubjectAccessReview for get on /metrics) read /metrics; /healthz and /readyz stay open; false: plain HTTP, open to anyone who reaches the port, for local use [KOPEK_METRICS_SECURE] (default true)
  --metrics-cert-dir DIR          tls.crt and tls.key for the metrics server, e.g. a mounted cert-manager Secret, re-read every minute [KOPEK_METRICS_CERT_DIR] (default: a self-signed certificate made at start)
  --metrics-auth-cache-ttl DURATION  reuse the API server's answer about a scrape's token this long [KOPEK_METRICS_AUTH_CACHE_TTL] (default 1m)
  --leader-elect BOOL             hold a Lease so only one replica works [KOPEK_LEADER_ELECT] (default true)
  --leader-election-namespace NS  namespace of the Lease [KOPEK_LEADER_ELECTION_NAMESPACE] (default: the pod's namespace, else kopek);
                                  it must exist: if it does not, kopek run exits 2 and says so
  --leader-election-id NAME       name of the Lease [KOPEK_LEADER_ELECTION_ID] (default kopek)
  --identity NAME                 this replica's name in the Lease [KOPEK_IDENTITY] (default: hostname + random suffix)
  --workers N                     concurrent reconciles, 1-64 [KOPEK_WORKERS] (default 4)
  --log-level LEVEL               debug, info, warn or error [KOPEK_LOG_LEVEL] (default info)
  --memory-saver BOOL             run V8's garbage collector in its memory saver mode: it collects more often and returns freed pages to the system, for less resident memory and more CPU [KOPEK_MEMORY_SAVER] (default false)
  --heap-growing-percent N        let V8's heap grow at most this many percent past what its last full collection kept before it collects again, 0-100; lower: less resident memory for more CPU; 0: V8's own factor (it chose 30 under a 512 MiB limit) [KOPEK_HEAP_GROWING_PERCENT] (default 20)
  --compact-fragmented-heap BOOL  when a full collection leaves V8's old generation fragmented, compact it and return the unused pages to the system, at most every 30 s; less resident memory for a pause of 0.3-0.5 s at 5,000 workloads (up to 2.1 s on two busy cores) [KOPEK_COMPACT_FRAGMENTED_HEAP] (default true)
  --batch-interval DURATION       least time between two recomputations of all facts [KOPEK_BATCH_INTERVAL] (default 1s)
  --watch-idle-timeout DURATION   reconnect a watch silent for this long [KOPEK_WATCH_IDLE_TIMEOUT] (default 150s)
  --relist-interval DURATION      full relist of every cache this often [KOPEK_RELIST_INTERVAL] (default 1h)
  --resync-interval DURATION      recompute every recommendation this often without events [KOPEK_RESYNC_INTERVAL] (default 10m)
  --client-refresh-interval DURATION
                                  when pods start or stop elsewhere, update the cross-zone client weights of the workloads with a Service after this long, in one batch; the workloads that changed themselves are updated at once [KOPEK_CLIENT_REFRESH_INTERVAL] (default 1m)
  --registry-timeout DURATION     per request to an image registry [KOPEK_REGISTRY_TIMEOUT] (default 10s)
  --read-pull-secrets BOOL        use the imagePullSecrets pods name to read private images [KOPEK_READ_PULL_SECRETS] (default false; needs get on secrets)
  --insecure-registries LIST      comma-separated host:port registries served over plain HTTP [KOPEK_INSECURE_REGISTRIES]
  --live-prices BOOL              read prices from the AWS Pricing API and EC2 (Spot prices, instance types, placement scores) with the default AWS credential chain (IRSA, EKS Pod Identity, environment, profile); without credentials the embedded snapshot is used [KOPEK_LIVE_PRICES] (default true)
  --price-refresh-interval DURATION
                                  fetch live prices again this often; failed calls keep the last good data [KOPEK_PRICE_REFRESH_INTERVAL] (default 12h)
  --region REGION                 AWS region to price [KOPEK_REGION] (default: the nodes' topology.kubernetes.io/region)
  --check-aws                     make each AWS call once, print OK or the error for each, and exit (0 all OK, 2 some failed)
  --enable-apply BOOL             let SavingsPolicies in mode Apply change workloads (needs patch RBAC) [KOPEK_ENABLE_APPLY] (default false)
  --dry-run BOOL                  Apply mode sends every change as a server-side dry run and logs it [KOPEK_DRY_RUN] (default false)
  --apply-settle-period DURATION  new pods must stay Ready this long before a change succeeds [KOPEK_APPLY_SETTLE_PERIOD] (default 2m)

${TRAFFIC_USAGE}

Durations are like 500ms, 10s, 5m, 1h. Exit codes: 0 stopped by a signal (SIGTERM, SIGINT),
1 invalid flags or environment, 2 could not start (kubeconfig unreadable, metrics port taken),
3 failed while running.`;

export class ConfigError extends Error {}

const FLAGS: Record<string, string> = {
  kubeconfig: 'KUBECONFIG',
  'metrics-bind-address': 'KOPEK_METRICS_BIND_ADDRESS',
  'metrics-secure': 'KOPEK_METRICS_SECURE',
  'metrics-cert-dir': 'KOPEK_METRICS_CERT_DIR',
  'metrics-auth-cache-ttl': 'KOPEK_METRICS_AUTH_CACHE_TTL',
  'leader-elect': 'KOPEK_LEADER_ELECT',
  'leader-election-namespace': 'KOPEK_LEADER_ELECTION_NAMESPACE',
  'leader-election-id': 'KOPEK_LEADER_ELECTION_ID',
  identity: 'KOPEK_IDENTITY',
  workers: 'KOPEK_WORKERS',
  'log-level': 'KOPEK_LOG_LEVEL',
  'memory-saver': 'KOPEK_MEMORY_SAVER',
  'heap-growing-percent': 'KOPEK_HEAP_GROWING_PERCENT',
  'compact-fragmented-heap': 'KOPEK_COMPACT_FRAGMENTED_HEAP',
  'batch-interval': 'KOPEK_BATCH_INTERVAL',
  'watch-idle-timeout': 'KOPEK_WATCH_IDLE_TIMEOUT',
  'relist-interval': 'KOPEK_RELIST_INTERVAL',
  'resync-interval': 'KOPEK_RESYNC_INTERVAL',
  'client-refresh-interval': 'KOPEK_CLIENT_REFRESH_INTERVAL',
  'registry-timeout': 'KOPEK_REGISTRY_TIMEOUT',
  'read-pull-secrets': 'KOPEK_READ_PULL_SECRETS',
  'insecure-registries': 'KOPEK_INSECURE_REGISTRIES',
  'enable-apply': 'KOPEK_ENABLE_APPLY',
  'dry-run': 'KOPEK_DRY_RUN',
  'apply-settle-period': 'KOPEK_APPLY_SETTLE_PERIOD',
  ...TRAFFIC_FLAGS,
  'live-prices': 'KOPEK_LIVE_PRICES',
  'price-refresh-interval': 'KOPEK_PRICE_REFRESH_INTERVAL',
  region: 'KOPEK_REGION',
};

/** Milliseconds of a duration like 500ms, 10s, 5m, 1h or 1h30m. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text) return undefined;
  return parts.reduce(
    (total, [, amount = '0', unit = 's']) => total + Number(amount) * (units[unit] ?? 0),
    0,
  );
}

/** An AWS region name from a flag or variable, undefined when unset; throws ConfigError otherwise. */
function awsRegion(text: string | undefined, source: string): string | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(text))
    throw new ConfigError(`${source} must be an AWS region name like us-east-1, got "${text}"`);
  return text;
}

/** Parses flags (`--name value` or `--name=value`) and the environment; throws ConfigError with a clear message. */
export function parseRunConfig(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  podNamespace?: string,
): OperatorConfig {
  const values = parseFlags(args);
  const get = (flag: string): string | undefined => {
    const variable = FLAGS[flag];
    return values[flag] ?? (variable ? env[variable] : undefined) ?? undefined;
  };
  const source = (flag: string): string =>
    values[flag] !== undefined ? `--${flag}` : (FLAGS[flag] ?? flag);

  const duration = (flag: string, fallback: number): number => {
    const text = get(flag);
    if (text === undefined || text === '') return fallback;
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0)
      throw new ConfigError(
        `${source(flag)} must be a duration like 500ms, 10s or 5m, got "${text}"`,
      );
    return ms;
  };

  const bind = get('metrics-bind-address') ?? '0.0.0.0:8080';
  const bindMatch = /^(.*):(\d{1,5})$/.exec(bind);
  const port = Number(bindMatch?.[2]);
  if (!bindMatch || port > 65535)
    throw new ConfigError(
      `${source('metrics-bind-address')} must be host:port (e.g. 0.0.0.0:8080, or :0 for any free port), got "${bind}"`,
    );

  const boolean = (flag: string, fallback: boolean): boolean => {
    const text = (get(flag) ?? String(fallback)).toLowerCase();
    if (text !== 'true' && text !== 'false')
      throw new ConfigError(`${source(flag)} must be true or false, got "${text}"`);
    return text === 'true';
  };

  const workersText = get('workers') ?? '4';
  const workers = Number(workersText);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw new ConfigError(
      `${source('workers')} must be a whole number from 1 to 64, got "${workersText}"`,
    );

  const heapGrowingText = get('heap-growing-percent') ?? '20';
  const heapGrowingPercent = Number(heapGrowingText);
  if (!/^\d+$/.test(heapGrowingText) || heapGrowingPercent > 100)
    throw new ConfigError(
      `${source('heap-growing-percent')} must be a whole number from 0 to 100, got "${heapGrowingText}"`,
    );

  const logLevel = get('log-level') ?? 'info';
  if (!isLogLevel(logLevel))
    throw new ConfigError(
      `${source('log-level')} must be debug, info, warn or error, got "${logLevel}"`,
    );

  const region = awsRegion(get('region'), source('region'));

  const kubeconfig = get('kubeconfig');
  const config: OperatorConfig = {
    // "[::]:8080" binds IPv6; the brackets only delimit the address.
    metricsHost:
      bindMatch[1] === '' ? '0.0.0.0' : (bindMatch[1] ?? '0.0.0.0').replace(/^\[(.*)\]$/, '$1'),
    metricsPort: port,
    leaderElect: boolean('leader-elect', true),
    leaderElectionNamespace: get('leader-election-namespace') ?? podNamespace ?? 'kopek',
    leaderElectionId: get('leader-election-id') ?? 'kopek',
    identity: get('identity') ?? `${hostname()}-${randomBytes(3).toString('hex')}`,
    workers,
    logLevel,
    minRebuildIntervalMs: duration('batch-interval', 1000),
    watchIdleTimeoutMs: duration('watch-idle-timeout', 150_000),
    relistIntervalMs: duration('relist-interval', 3_600_000),
    resyncIntervalMs: duration('resync-interval', 600_000),
    clientRefreshIntervalMs: duration('client-refresh-interval', 60_000),
    registryTimeoutMs: duration('registry-timeout', 10_000),
    readPullSecrets: boolean('read-pull-secrets', false),
    enableApply: boolean('enable-apply', false),
    dryRun: boolean('dry-run', false),
    applySettleMs: duration('apply-settle-period', 120_000),
    insecureRegistries: (get('insecure-registries') ?? '')
      .split(',')
      .map((host) => host.trim())
      .filter(Boolean),
    livePrices: boolean('live-prices', true),
    priceRefreshIntervalMs: duration('price-refresh-interval', 12 * 3_600_000),
    metricsSecure: boolean('metrics-secure', true),
    metricsAuthCacheTtlMs: duration('metrics-auth-cache-ttl', 60_000),
    memorySaver: boolean('memory-saver', false),
    heapGrowingPercent,
    compactFragmentedHeap: boolean('compact-fragmented-heap', true),
  };
  if (region !== undefined) config.region = region;
  const certDir = get('metrics-cert-dir');
  if (certDir) config.metricsCertDir = certDir;
  if (kubeconfig) config.kubeconfig = kubeconfig.split(':')[0] ?? kubeconfig;
  const traffic = parseTrafficConfig(get, (message) => {
    throw new ConfigError(message);
  });
  if (traffic) config.traffic = traffic;
  return config;
}

/** Every flag takes a value (booleans too: `--leader-elect=false`, as controller-runtime's do). */
function parseFlags(args: readonly string[]): Record<string, string | undefined> {
  try {
    const { values } = parseArgs({
      args: [...args],
      options: Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' }])),
      strict: true,
      allowPositionals: false,
    });
    return values;
  } catch (error) {
    const code = (error as { code?: string }).code;
    const flag = /'(-[^' ,]+)/.exec(error instanceof Error ? error.message : '')?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw new ConfigError(`unknown flag ${flag}; see kopek run --help`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
      throw new ConfigError(`flag ${flag} needs a value`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      throw new ConfigError(
        `unexpected argument; kopek run takes only flags (see kopek run --help)`,
      );
    throw error;
  }
}
