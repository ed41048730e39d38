/**
 * Live AWS prices for the operator (and `kopek analyze --live-prices`): a PriceSource that
 * starts on the embedded snapshot, fetches the cluster region's prices in the background,
 * refreshes them every interval, and keeps the last good data of each call when a later one
 * fails. When the prices it hands out change, it says so (onChange) and the controller
 * recomputes; recommendations whose money did not move are not rewritten.
 */
import type { WorkloadFacts } from '../../recommender/facts.ts';
import { FALLBACK_REGION, type PriceBook } from '../../recommender/pricing.ts';
import { onArm64 } from '../../recommender/savings.ts';
import type { Logger } from '../log.ts';
import { setPendingWork, type Metrics } from '../metrics.ts';
import type { PriceCondition, PriceSource } from '../prices.ts';
import { getInstanceTypes, getOnDemandPrices, getPlacementScores, getSpotPrices } from './calls.ts';
import {
  clusterSpotPrice,
  livePriceBook,
  placementRequests,
  type LivePriceData,
  type NodeShape,
} from './prices.ts';
import {
  AWS_CALLS,
  IAM_ACTIONS,
  classifyAwsError,
  createAwsClients,
  describeAwsError,
  type AwsCall,
  type AwsClients,
  type AwsFailure,
} from './sdk.ts';

const LABEL_REGION = 'topology.kubernetes.io/region';
const LABEL_ZONE = 'topology.kubernetes.io/zone';
const LABEL_INSTANCE_TYPE = 'node.kubernetes.io/instance-type';
const LABEL_ARCH = 'kubernetes.io/arch';

/** What one call did in a refresh. */
export type CallOutcome =
  | { call: AwsCall; ok: true; detail: string }
  | { call: AwsCall; ok: false; failure: AwsFailure; message: string }
  | { call: AwsCall; ok: 'skipped'; detail: string };

export interface LivePricesOptions {
  /** The book to start from and lay live figures over (the embedded snapshot). */
  base: PriceBook;
  /** The region to price (--region); default: the nodes' topology.kubernetes.io/region. */
  region?: string;
  /** Node labels, read at each refresh for region, zones, instance types and architectures. */
  nodeLabels: () => readonly Readonly<Record<string, string>>[];
  refreshIntervalMs: number;
  log: Logger;
  metrics?: Metrics;
  /** Called after the prices or placement scores changed. */
  onChange?: () => void;
  /** Makes the clients for a region; default: the SDK with its default credential chain. */
  clients?: (region: string) => Promise<AwsClients>;
  now?: () => Date;
}

const mostCommon = (values: readonly (string | undefined)[]): string | undefined => {
  const counts = new Map<string, number>();
  for (const v of values) if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
};

export class LivePrices implements PriceSource {
  private readonly options: LivePricesOptions;
  private current: PriceBook;
  private data: LivePriceData | undefined;
  private scores = new Map<string, number>();
  private fingerprint = '';
  /** When the on-demand prices in use were fetched (ms), for kopek_prices_age_seconds. */
  private fetchedAt: number | undefined;
  private readonly denied = new Set<AwsCall>();
  private deniedBefore = '';
  private noCredentialsReported = false;
  private clients: AwsClients | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<CallOutcome[]> | undefined;
  /** Started, and the first fetch waits for the caches. */
  private firstFetchDue = false;

  constructor(options: LivePricesOptions) {
    this.options = options;
    this.current = options.base;
  }

  book(): PriceBook {
    return this.current;
  }

  spotPlacementScore(facts: WorkloadFacts): number | undefined {
    if (facts.pods.length === 0) return undefined;
    return this.scores.get(facts.pods.every((pod) => onArm64(pod.node)) ? 'arm64' : 'amd64');
  }

  condition(): PriceCondition | undefined {
    if (this.denied.size === 0) return undefined;
    const actions = [...this.denied].map((call) => IAM_ACTIONS[call]).sort();
    return {
      type: 'LivePrices',
      status: 'False',
      reason: 'AccessDenied',
      message:
        `AWS denied kopek's role ${actions.join(', ')}; add ${actions.length === 1 ? 'it' : 'them'} ` +
        `to its IAM policy. Until then those figures come from the ${this.current.source === 'Live' ? 'last live data or the ' : ''}embedded snapshot.`,
    };
  }

  age(now: number): { source: 'live' | 'snapshot'; seconds: number } {
    if (this.current.source === 'Live' && this.fetchedAt !== undefined)
      return { source: 'live', seconds: Math.max(0, (now - this.fetchedAt) / 1000) };
    return {
      source: 'snapshot',
      seconds: Math.max(0, (now - Date.parse(this.options.base.asOf)) / 1000),
    };
  }

  /** Fetches once `ready` resolves (the node cache is filled), then every refresh interval. */
  start(ready: Promise<void>): void {
    this.firstFetchDue = true;
    void ready.then(() => {
      this.firstFetchDue = false;
      return this.refresh();
    });
    this.timer = setInterval(() => {
      void this.refresh();
    }, this.options.refreshIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.refreshing;
    this.clients?.destroy();
    this.clients = undefined;
  }

  /**
   * kopek_pending_work{controller="prices"}: refresh is 1 while a fetch is due or running. A
   * call that failed is asked again at the next refresh, which is not pending work (as the
   * controllers' periodic resync is not).
   */
  pending(): { refresh: number } {
    return { refresh: Number(this.firstFetchDue || this.refreshing !== undefined) };
  }

  /** Sets kopek_pending_work for prices (called before each scrape). */
  updateMetrics(): void {
    if (this.options.metrics) setPendingWork(this.options.metrics, 'prices', this.pending());
  }

  /** One refresh of every call (at most one at a time); resolves with what each call did. */
  refresh(): Promise<CallOutcome[]> {
    this.refreshing ??= this.fetchAll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async clientsFor(region: string): Promise<AwsClients> {
    if (this.clients?.region === region) return this.clients;
    this.clients?.destroy();
    this.clients = await (this.options.clients ?? ((r) => createAwsClients({ region: r })))(region);
    return this.clients;
  }

  private async fetchAll(): Promise<CallOutcome[]> {
    const { log } = this.options;
    const nodes = this.options.nodeLabels();
    const region = this.options.region ?? mostCommon(nodes.map((labels) => labels[LABEL_REGION]));
    if (region === undefined) {
      log.warn(
        `live prices: no node carries ${LABEL_REGION} and no --region is set; prices come from the embedded snapshot`,
      );
      return AWS_CALLS.map((call) => ({ call, ok: 'skipped', detail: 'no region known' }));
    }
    const zones = [...new Set(nodes.flatMap((labels) => labels[LABEL_ZONE] ?? []))].sort();
    const shapes: NodeShape[] = nodes
      .filter((labels) => (labels[LABEL_REGION] ?? region) === region)
      .map((labels) => ({
        ...(labels[LABEL_INSTANCE_TYPE] !== undefined
          ? { instanceType: labels[LABEL_INSTANCE_TYPE] }
          : {}),
        ...(labels[LABEL_ARCH] !== undefined ? { arch: labels[LABEL_ARCH] } : {}),
      }));
    let clients: AwsClients;
    try {
      clients = await this.clientsFor(region);
    } catch (error) {
      // No credentials (said once), or the SDK could not load: no call can be made.
      return AWS_CALLS.map((call) => this.failed(call, error, region));
    }

    const data: LivePriceData = this.data?.region === region ? { ...this.data } : { region };
    let scores = this.data?.region === region ? this.scores : new Map<string, number>();
    const now = this.options.now?.() ?? new Date();
    const outcomes: CallOutcome[] = [];
    const attempt = async <T>(
      call: AwsCall,
      run: () => Promise<T>,
      keep: (value: T) => string,
    ): Promise<void> => {
      try {
        const value = await run();
        outcomes.push({ call, ok: true, detail: keep(value) });
        if (this.denied.delete(call))
          log.info(`live prices: ${IAM_ACTIONS[call]} is allowed again`);
        this.noCredentialsReported = false;
      } catch (error) {
        outcomes.push(this.failed(call, error, region));
      }
    };

    await attempt(
      'GetProducts',
      () => getOnDemandPrices(clients, region),
      (items) => {
        if (items.length === 0) return `no on-demand prices for ${region}; kept what was there`;
        data.onDemand = items;
        this.fetchedAt = now.getTime();
        return `${items.length} on-demand prices in ${region}`;
      },
    );
    await attempt(
      'DescribeSpotPriceHistory',
      () => getSpotPrices(clients, now, zones),
      (table) => {
        data.spot = table;
        return `Spot prices of ${table.size} instance types in ${region}`;
      },
    );
    // Sizes are asked only for the priced types kopek's snapshot has none for (new families).
    const { base } = this.options;
    const snapshotTypes = (base.onDemand.get(region) ?? base.onDemand.get(FALLBACK_REGION))?.keys();
    const priced = data.onDemand?.map((item) => item.instanceType) ?? [...(snapshotTypes ?? [])];
    const unsized = [...new Set(priced)]
      .filter((type) => !this.options.base.specs.has(type))
      .sort();
    await attempt(
      'DescribeInstanceTypes',
      () => getInstanceTypes(clients, unsized),
      (specs) => {
        data.specs = specs;
        return `sizes of ${specs.size} of the ${unsized.length} instance types the snapshot lacks`;
      },
    );
    const requests = placementRequests(shapes, this.current, region);
    if (requests.length === 0) {
      outcomes.push({ call: 'GetSpotPlacementScores', ok: 'skipped', detail: 'no nodes to score' });
    } else {
      await attempt(
        'GetSpotPlacementScores',
        () => getPlacementScores(clients, requests),
        (found) => {
          scores = found;
          return (
            requests
              .map(
                (r) => `${r.arch} ${r.instanceTypes.join(',')}: ${found.get(r.arch) ?? 'no score'}`,
              )
              .join('; ') || 'no score'
          );
        },
      );
    }

    this.apply(data, scores, zones);
    return outcomes;
  }

  /** Counts and reports a failed call; what it had fetched before stays in use. */
  private failed(call: AwsCall, error: unknown, region: string): CallOutcome {
    const { log, metrics } = this.options;
    const failure = classifyAwsError(error);
    const message = describeAwsError(error);
    metrics?.awsErrors.inc({ call, reason: failure });
    metrics?.sourceErrors.inc({ source: 'pricing' });
    if (failure === 'NoCredentials') {
      if (!this.noCredentialsReported) {
        this.noCredentialsReported = true;
        log.warn(
          'live prices: no AWS credentials (IRSA web identity, EKS Pod Identity, environment or profile); prices come from the embedded snapshot',
          { error: message },
        );
      }
      return {
        call,
        ok: false,
        failure,
        message: `no AWS credentials (IRSA web identity, EKS Pod Identity, environment or profile): ${message}`,
      };
    }
    if (failure === 'AccessDenied') {
      if (!this.denied.has(call)) {
        this.denied.add(call);
        log.warn(
          `live prices: AWS denied ${IAM_ACTIONS[call]}; add it to kopek's IAM policy (see the chart README). kopek keeps running on the last good data or the embedded snapshot`,
          { call, action: IAM_ACTIONS[call], region, error: message },
        );
      }
      return {
        call,
        ok: false,
        failure,
        message: `missing IAM permission ${IAM_ACTIONS[call]}: ${message}`,
      };
    }
    log.warn(`live prices: ${call} failed; keeping the last good data`, {
      call,
      region,
      reason: failure,
      error: message,
    });
    return { call, ok: false, failure, message };
  }

  /**
   * Builds the book from the data when prices or scores changed and swaps it in; says so
   * (onChange) then, and when a permission was lost or regained (the condition changes).
   */
  private apply(data: LivePriceData, scores: Map<string, number>, zones: readonly string[]): void {
    this.data = data;
    const fingerprint = JSON.stringify({
      region: data.region,
      onDemand: (data.onDemand ?? []).map((i) => [i.instanceType, i.hourly, i.effectiveDate]),
      spot: [...(data.spot ?? [])].map(([type, byZone]) => [type, clusterSpotPrice(byZone, zones)]),
      specs: [...(data.specs ?? [])].map(([type, s]) => [type, s.vcpu, s.memoryGiB]),
      scores: [...scores].sort(),
      zones,
    });
    const denied = [...this.denied].sort().join(',');
    const deniedChanged = denied !== this.deniedBefore;
    this.deniedBefore = denied;
    if (fingerprint !== this.fingerprint) {
      this.fingerprint = fingerprint;
      this.scores = scores;
      this.current =
        data.onDemand === undefined && data.spot === undefined && data.specs === undefined
          ? this.options.base
          : livePriceBook(this.options.base, data, zones);
      this.options.log.info('live prices updated', {
        source: this.current.source,
        region: data.region,
        onDemandPrices: data.onDemand?.length ?? 0,
        spotPrices: data.spot?.size ?? 0,
        placementScores: Object.fromEntries(scores),
      });
    } else if (!deniedChanged) {
      return;
    }
    this.options.onChange?.();
  }
}

/** The labels of the Node objects in a kubectl dump (kopek analyze), Lists included. */
export function nodeLabelsOf(objects: readonly unknown[]): Record<string, string>[] {
  return objects.flatMap((o): Record<string, string>[] => {
    const object = o as { kind?: unknown; items?: unknown; metadata?: { labels?: unknown } } | null;
    if (Array.isArray(object?.items)) return nodeLabelsOf(object.items);
    const labels = object?.metadata?.labels;
    return object?.kind === 'Node' && typeof labels === 'object' && labels !== null
      ? [labels as Record<string, string>]
      : [];
  });
}
