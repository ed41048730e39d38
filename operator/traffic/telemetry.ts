/**
 * Cross-zone traffic from Prometheus, refreshed on a timer: which source to read (the one the
 * flag names, or the best whose series exist), one query for it per refresh, and the last
 * answer — a measurement, or why there is none — for the controller's next facts. A failure
 * (down, slow, an error, partial data) gives an error the reasons repeat; the estimate is used
 * until a refresh succeeds again. Nothing here throws to the caller.
 */
import type { TrafficInput } from '../../recommender/traffic.ts';
import { systemClock, type Clock, type Timer } from '../clock.ts';
import { errorMessage, silentLogger, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { PrometheusError, type PrometheusClient, type VectorSample } from './prometheus.ts';
import {
  SOURCES,
  detectedSources,
  detectionQuery,
  withWindow,
  type TrafficSourceId,
} from './sources.ts';

export type SourceChoice = 'auto' | TrafficSourceId;

/** What the recommendation controller reads: the latest answer, refreshed while leading. */
export interface TrafficSource {
  current(): TrafficInput | undefined;
  /** First refresh done when it resolves; then calls onUpdate after every refresh. */
  start(onUpdate: () => void): Promise<void>;
  stop(): void;
}

export interface TrafficTelemetryOptions {
  prometheus: PrometheusClient;
  source: SourceChoice;
  /** Prometheus duration, e.g. "7d". */
  window: string;
  /** PromQL replacing a source's default query. */
  queries?: Partial<Record<TrafficSourceId, string>>;
  refreshIntervalMs?: number;
  /** How long a detected source is trusted before looking again (default 1 h). */
  detectionTtlMs?: number;
  log?: Logger;
  metrics?: Metrics;
  clock?: Clock;
}

/** What one refresh did: for the log, the metrics and the demo's report. */
export interface RefreshReport {
  source?: TrafficSourceId;
  queries: number;
  seconds: number;
  rows?: number;
  error?: string;
}

export class TrafficTelemetry implements TrafficSource {
  private readonly options: TrafficTelemetryOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private input: TrafficInput | undefined;
  private detected: { id: TrafficSourceId; at: number } | undefined;
  private timer: Timer | undefined;
  private refreshing: Promise<RefreshReport> | undefined;
  /** The latest refresh, once one has run. */
  lastRefresh: RefreshReport | undefined;

  constructor(options: TrafficTelemetryOptions) {
    this.options = options;
    this.log = options.log ?? silentLogger;
    this.clock = options.clock ?? systemClock;
  }

  /** The latest answer; undefined before the first refresh. */
  current(): TrafficInput | undefined {
    return this.input;
  }

  /** Refreshes now, then every interval, calling onUpdate after each refresh. */
  async start(onUpdate: () => void): Promise<void> {
    this.stop();
    await this.refresh();
    onUpdate();
    this.timer = this.clock.setInterval(
      () => {
        void this.refresh().then(onUpdate);
      },
      this.options.refreshIntervalMs ?? 15 * 60_000,
    );
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One refresh; a refresh already running is joined, never doubled. */
  refresh(): Promise<RefreshReport> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async timed(
    source: TrafficSourceId | 'detect',
    expr: string,
    report: RefreshReport,
  ): Promise<VectorSample[]> {
    const started = performance.now();
    report.queries++;
    const { metrics } = this.options;
    try {
      const answer = await this.options.prometheus.query(expr);
      if (answer.warnings.length > 0)
        throw new PrometheusError(`partial data: ${answer.warnings.slice(0, 3).join('; ')}`);
      metrics?.trafficQueries.inc({ source, result: 'success' });
      return answer.samples;
    } catch (error) {
      metrics?.trafficQueries.inc({ source, result: 'error' });
      throw error;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      report.seconds += seconds;
      metrics?.trafficQueryDuration.observe({ source }, seconds);
    }
  }

  private async chooseSource(report: RefreshReport): Promise<TrafficSourceId> {
    const { source, detectionTtlMs = 3_600_000 } = this.options;
    if (source !== 'auto') return source;
    if (this.detected !== undefined && this.clock.now() - this.detected.at < detectionTtlMs)
      return this.detected.id;
    const [best] = detectedSources(await this.timed('detect', detectionQuery(), report));
    if (best === undefined) {
      throw new PrometheusError(
        'Prometheus has none of the series of Grafana Beyla (beyla_network_inter_zone_bytes_total, or beyla_network_flow_bytes_total with src_zone), Istio (istio_request_bytes_sum, istio_tcp_sent_bytes_total, ...) or Kubecost (kubecost_pod_network_egress_bytes_total)',
      );
    }
    if (this.detected?.id !== best) this.log.info('traffic source detected', { source: best });
    this.detected = { id: best, at: this.clock.now() };
    return best;
  }

  private async doRefresh(): Promise<RefreshReport> {
    const report: RefreshReport = { queries: 0, seconds: 0 };
    const { metrics, window } = this.options;
    try {
      const id = await this.chooseSource(report);
      report.source = id;
      const definition = SOURCES[id];
      const query = withWindow(this.options.queries?.[id] ?? definition.query, window);
      const samples = await this.timed(id, query, report);
      this.input = definition.measurement(samples, window);
      report.rows = samples.length;
      // An empty answer may mean the source went away: look again next time.
      if (samples.length === 0) this.detected = undefined;
      metrics?.trafficRefreshes.inc({ result: 'measured' });
      this.log.debug('traffic refreshed', { ...report });
    } catch (error) {
      const message = errorMessage(error);
      report.error = message;
      this.detected = undefined;
      this.input = { error: message };
      metrics?.trafficRefreshes.inc({ result: 'error' });
      metrics?.sourceErrors.inc({ source: 'prometheus' });
      this.log.warn('could not read traffic from Prometheus; using the estimate', {
        error: message,
      });
    }
    this.lastRefresh = report;
    return report;
  }
}
