import { factsFromObjects } from '../../recommender/facts-from-objects.ts';
import type { ImagePlatformsFact, WorkloadFacts } from '../../recommender/facts.ts';
import { applyTraffic, type TrafficInput } from '../../recommender/traffic.ts';
import type { ClusterCache } from '../cache.ts';
import { canonicalJson } from '../canonical.ts';
import { imageRequests, type ImagePlatformSource } from '../images.ts';
import type { Projected } from '../kube/projections.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import { errorMessage, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { workloadKey } from './keys.ts';

export interface RebuildResult {
  /** Workload keys whose facts changed, appeared or went since the last rebuild. */
  changed: string[];
  /** Some image's platforms could not be read: rebuild again later to retry. */
  lookupFailed: boolean;
}

/**
 * Every analysed workload's facts, rebuilt from the caches. The canonical JSON of each
 * workload's facts is kept so that a rebuild reports exactly the workloads whose facts changed:
 * only those are reconciled.
 */
export class WorkloadFactsCache {
  private facts = new Map<string, WorkloadFacts>();
  private factsJson = new Map<string, string>();

  get(key: string): WorkloadFacts | undefined {
    return this.facts.get(key);
  }

  has(key: string): boolean {
    return this.facts.has(key);
  }

  keys(): IterableIterator<string> {
    return this.facts.keys();
  }

  /** Forgets what was compared, so the next rebuild reports every workload as changed. */
  forgetComparisons(): void {
    this.factsJson = new Map();
  }

  async rebuild(
    cache: ClusterCache,
    sources: {
      imagePlatforms?: ImagePlatformSource | undefined;
      /** The latest traffic measurement (or why there is none); undefined without a source. */
      traffic?: TrafficInput | undefined;
      metrics: Metrics;
      log: Logger;
    },
  ): Promise<RebuildResult> {
    const objects: Projected[] = [];
    for (const name of Object.keys(RESOURCES) as ResourceName[])
      if (name !== 'workloadrecommendations') objects.push(...cache.list(name));
    let imagePlatforms: Record<string, ImagePlatformsFact> = {};
    if (sources.imagePlatforms) {
      try {
        imagePlatforms = await sources.imagePlatforms.resolve(imageRequests(objects));
      } catch (error) {
        sources.metrics.sourceErrors.inc({ source: 'registry' });
        sources.log.warn('could not look up image platforms', { error: errorMessage(error) });
      }
    }
    const built = factsFromObjects(objects, {
      imagePlatforms,
      ...(cache.kubernetesMinor !== undefined ? { kubernetesMinor: cache.kubernetesMinor } : {}),
    });
    if (sources.traffic !== undefined) {
      const measured = applyTraffic(built.facts, sources.traffic);
      built.facts = measured.facts;
      built.warnings.push(...measured.warnings);
    }
    const facts = new Map<string, WorkloadFacts>();
    const factsJson = new Map<string, string>();
    const changed: string[] = [];
    for (const workload of built.facts) {
      const key = workloadKey(workload.namespace, workload.kind, workload.name);
      const json = canonicalJson(workload);
      facts.set(key, workload);
      factsJson.set(key, json);
      if (this.factsJson.get(key) !== json) changed.push(key);
    }
    for (const key of this.factsJson.keys()) if (!facts.has(key)) changed.push(key);
    this.facts = facts;
    this.factsJson = factsJson;
    for (const warning of built.warnings) sources.log.debug('facts', { warning });
    return {
      changed,
      lookupFailed: Object.values(imagePlatforms).some((fact) => 'error' in fact),
    };
  }
}
