/**
 * The traffic telemetry settings `kopek run` and `kopek analyze` share (flags in flags.ts):
 * validation into a TrafficConfig (undefined without --prometheus-url), and the reader.
 */
import { parseDuration } from '../config.ts';
import { TRAFFIC_FLAGS } from './flags.ts';
import { PrometheusClient } from './prometheus.ts';
import { TRAFFIC_SOURCES, windowSeconds, type TrafficSourceId } from './sources.ts';
import { TrafficTelemetry, type SourceChoice } from './telemetry.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';

export interface TrafficConfig {
  prometheusUrl: string;
  bearerTokenFile?: string;
  caFile?: string;
  timeoutMs: number;
  source: SourceChoice;
  /** Prometheus duration, e.g. "7d". */
  window: string;
  refreshIntervalMs: number;
  queries: Partial<Record<TrafficSourceId, string>>;
}

/**
 * The traffic settings from flag values (`get` answers a flag's value, or undefined), or
 * undefined without --prometheus-url. `fail` throws the caller's usage error with the message.
 */
export function parseTrafficConfig(
  get: (flag: string) => string | undefined,
  fail: (message: string) => never,
): TrafficConfig | undefined {
  const url = get('prometheus-url');
  const others = Object.keys(TRAFFIC_FLAGS).filter(
    (flag) => flag !== 'prometheus-url' && get(flag) !== undefined,
  );
  if (url === undefined || url === '') {
    if (others.length > 0) fail(`--${others[0] ?? ''} needs --prometheus-url`);
    return undefined;
  }
  try {
    new PrometheusClient({ url });
  } catch (error) {
    fail(`--prometheus-url: ${(error as Error).message}`);
  }
  const positive = (ms: number | undefined) => (ms !== undefined && ms > 0 ? ms : undefined);
  const duration = (flag: string, fallback: number): number => {
    const text = get(flag);
    if (text === undefined || text === '') return fallback;
    return (
      positive(parseDuration(text)) ??
      fail(`--${flag} must be a duration like 10s, 5m or 1h, got "${text}"`)
    );
  };
  const source = get('traffic-source') ?? 'auto';
  if (source !== 'auto' && !TRAFFIC_SOURCES.includes(source as TrafficSourceId))
    fail(`--traffic-source must be auto, ${TRAFFIC_SOURCES.join(', ')}, got "${source}"`);
  const window = get('traffic-window') ?? '7d';
  if (windowSeconds(window) === undefined)
    fail(`--traffic-window must be a Prometheus duration like 1h, 1d or 7d, got "${window}"`);
  const config: TrafficConfig = {
    prometheusUrl: url,
    timeoutMs: duration('prometheus-timeout', 30_000),
    source: source as SourceChoice,
    window,
    refreshIntervalMs: duration('traffic-refresh-interval', 15 * 60_000),
    queries: {},
  };
  for (const id of TRAFFIC_SOURCES) {
    const query = get(`traffic-query-${id}`);
    if (query !== undefined && query.trim() !== '') config.queries[id] = query;
  }
  const token = get('prometheus-bearer-token-file');
  const ca = get('prometheus-ca-file');
  if (token) config.bearerTokenFile = token;
  if (ca) config.caFile = ca;
  return config;
}

/** The telemetry reader a configuration describes. */
export function trafficTelemetry(
  config: TrafficConfig,
  options: { log?: Logger; metrics?: Metrics; clock?: Clock } = {},
): TrafficTelemetry {
  const prometheus = new PrometheusClient({
    url: config.prometheusUrl,
    timeoutMs: config.timeoutMs,
    ...(config.bearerTokenFile !== undefined ? { bearerTokenFile: config.bearerTokenFile } : {}),
    ...(config.caFile !== undefined ? { caFile: config.caFile } : {}),
  });
  return new TrafficTelemetry({
    prometheus,
    source: config.source,
    window: config.window,
    queries: config.queries,
    refreshIntervalMs: config.refreshIntervalMs,
    ...options,
  });
}
