import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import {
  recommend,
  recommendationName,
  toWorkloadRecommendation,
} from '../../recommender/recommend.ts';
import type { ClusterCache } from '../cache.ts';
import { canonicalDigest, canonicalJson } from '../canonical.ts';
import type { Clock } from '../clock.ts';
import { withStableTransitions } from '../conditions.ts';
import type { KubeApi } from '../kube/client.ts';
import { comparableStatus, storedStatusDigest } from '../kube/projections.ts';
import { RESOURCES } from '../kube/resources.ts';
import type { Logger } from '../log.ts';
import type { PriceSource } from '../prices.ts';
import { rfc3339 } from '../time.ts';
import { KubeApiError } from '../kube/client.ts';
import { WORKLOAD_RESOURCES } from './dirty.ts';
import type { WorkloadFactsCache } from './facts.ts';
import { workloadKey, type WorkloadRef } from './keys.ts';
import type { WorkloadResults } from './results.ts';

export const FIELD_MANAGER = 'kopek';
/** The label that marks what kopek made; kopek deletes only recommendations carrying it. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'kopek' };

export interface WorkloadReconcileContext {
  client: KubeApi;
  cache: ClusterCache;
  facts: WorkloadFactsCache;
  results: WorkloadResults;
  prices: PriceSource;
  clock: Clock;
  log: Logger;
  /** Queues a SavingsPolicy whose status totals changed. */
  enqueuePolicy: (name: string) => void;
  /**
   * Told what the reconcile decided, when it decides: before each write (`write`), or that the
   * recommendation is current (`none`); the first call is the decision. Not told when it stops on
   * stale facts.
   */
  decided?: (outcome: 'write' | 'none') => void;
}

/**
 * Reconciles one workload's recommendation:
 * 1. no facts (the workload is gone, ignored, or in a system namespace) → delete the
 *    recommendation kopek made for it, and forget its result;
 * 2. facts older than the cached workload (it is being deleted, or is gone or replaced and the
 *    rebuild that says so is pending) → write nothing: the garbage collector deletes what the
 *    workload owns, and that rebuild queues the workload again;
 * 3. recommend from the latest facts and prices;
 * 4. server-side-apply the main object only when kopek's fields differ from what is stored;
 * 5. apply the status only when it differs, keeping each condition's lastTransitionTime while
 *    its status holds — so at steady state nothing is written. A recommendation deleted
 *    meanwhile (the garbage collector, a person) is not an error: its deletion queues the
 *    workload again.
 */
export async function reconcileWorkload(
  ctx: WorkloadReconcileContext,
  workload: WorkloadRef,
): Promise<void> {
  const { namespace, kind, name } = workload;
  const key = workloadKey(namespace, kind, name);
  const wrecName = recommendationName(kind, name);
  const stored = ctx.cache.get('workloadrecommendations', `${namespace}/${wrecName}`);
  // Its status as cached: the conditions and what Apply wrote; a digest of the rest.
  const existing = stored as WorkloadRecommendation | undefined;
  const facts = ctx.facts.get(key);

  if (!facts) {
    await forgetWorkload(ctx, key, existing);
    return;
  }

  const resource = WORKLOAD_RESOURCES[kind];
  const live = resource && ctx.cache.get(resource, `${namespace}/${name}`);
  if (resource && (!live || live.metadata.uid !== facts.uid || live.metadata.deletionTimestamp))
    return;

  const spotPlacementScore = ctx.prices.spotPlacementScore(facts);
  const status = recommend(
    spotPlacementScore === undefined ? facts : { ...facts, spotPlacementScore },
    ctx.prices.book(),
  );
  const now = rfc3339(new Date(ctx.clock.now()));
  const desired = toWorkloadRecommendation(facts, status, now);
  // A price-source condition (a missing AWS permission) shows on every recommendation.
  const pricesCondition = ctx.prices.condition();
  if (pricesCondition)
    desired.status?.conditions?.push({ ...pricesCondition, lastTransitionTime: now });
  const changedPolicies = ctx.results.set(key, {
    namespace,
    kind,
    name,
    policy: facts.policy.name,
    status,
  });
  for (const policy of changedPolicies) ctx.enqueuePolicy(policy);

  let generation = existing?.metadata.generation;
  if (!existing || canonicalJson(ownedMain(existing)) !== canonicalJson(ownedMain(desired))) {
    ctx.decided?.('write');
    const applied = await ctx.client.apply<WorkloadRecommendation>(
      RESOURCES.workloadrecommendations,
      mainPart(desired),
      { fieldManager: FIELD_MANAGER, force: true },
    );
    generation = applied.metadata.generation;
    ctx.log.info(existing ? 'updated recommendation' : 'created recommendation', {
      namespace,
      name: wrecName,
    });
  }
  const desiredStatus = withStableTransitions(desired.status ?? {}, existing?.status, generation);
  if (storedStatusDigest(stored) === canonicalDigest(comparableStatus(desiredStatus))) {
    ctx.decided?.('none');
    return;
  }
  ctx.decided?.('write');
  try {
    await ctx.client.applyUnread(
      RESOURCES.workloadrecommendations,
      {
        apiVersion: desired.apiVersion,
        kind: desired.kind,
        metadata: { name: wrecName, namespace },
        status: desiredStatus,
      },
      { fieldManager: FIELD_MANAGER, subresource: 'status', force: true },
    );
  } catch (error) {
    if (!(error instanceof KubeApiError && error.status === 404)) throw error;
    ctx.log.info('recommendation deleted while its status was written; its deletion requeues it', {
      namespace,
      name: wrecName,
    });
    return;
  }
  ctx.log.debug('wrote recommendation status', { namespace, name: wrecName });
}

/** Forgets a workload kopek no longer analyses and deletes the recommendation kopek made for it. */
async function forgetWorkload(
  ctx: WorkloadReconcileContext,
  key: string,
  existing: WorkloadRecommendation | undefined,
): Promise<void> {
  for (const policy of ctx.results.delete(key)) ctx.enqueuePolicy(policy);
  const managed = existing?.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kopek';
  ctx.decided?.(managed ? 'write' : 'none');
  if (!existing || !managed) return;
  const { name, namespace } = existing.metadata;
  await ctx.client.delete(RESOURCES.workloadrecommendations, name, namespace);
  ctx.log.info('deleted recommendation: its workload is gone or no longer analysed', {
    namespace,
    name,
  });
}

/** The object without status: what the main server-side apply sets. */
function mainPart(wrec: WorkloadRecommendation): Omit<WorkloadRecommendation, 'status'> {
  const { status: _, ...main } = wrec;
  return main;
}

/** The fields of the main object kopek owns, for comparison with what is stored. */
function ownedMain(wrec: WorkloadRecommendation): unknown {
  return {
    labels: Object.fromEntries(
      Object.entries(wrec.metadata.labels ?? {}).filter(([key]) => key in MANAGED_BY),
    ),
    ownerReferences: (wrec.metadata.ownerReferences ?? []).map(
      ({ apiVersion, kind, name, uid }) => ({ apiVersion, kind, name, uid }),
    ),
    targetRef: wrec.spec.targetRef,
  };
}
