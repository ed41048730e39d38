import type { SavingsPolicy, SavingsPolicyStatus } from '../../recommender/api/v1alpha1.ts';
import { sumUSD } from '../../recommender/pricing.ts';
import type { ClusterCache } from '../cache.ts';
import { canonicalJson } from '../canonical.ts';
import type { Clock } from '../clock.ts';
import { withStableTransitions } from '../conditions.ts';
import type { KubeApi } from '../kube/client.ts';
import { RESOURCES } from '../kube/resources.ts';
import { rfc3339 } from '../time.ts';
import type { KeptResult, WorkloadResults } from './results.ts';
import { FIELD_MANAGER } from './workload.ts';

/** How many workloads a SavingsPolicy's status lists by savings. */
const TOP_WORKLOADS = 20;

export interface PolicyReconcileContext {
  client: KubeApi;
  cache: ClusterCache;
  results: WorkloadResults;
  clock: Clock;
}

/** A SavingsPolicy's status: the workloads it governs, their totals and the top savers. */
export async function reconcilePolicy(ctx: PolicyReconcileContext, name: string): Promise<void> {
  const policy = ctx.cache.get('savingspolicies', name) as SavingsPolicy | undefined;
  if (!policy) return;
  const matched = [...ctx.results.values()].filter((result) => result.policy === name);
  const status = withStableTransitions(
    policyStatus(matched, rfc3339(new Date(ctx.clock.now()))),
    policy.status,
    policy.metadata.generation,
  );
  if (canonicalJson(policy.status ?? {}) === canonicalJson(status)) return;
  await ctx.client.applyUnread(
    RESOURCES.savingspolicies,
    { apiVersion: policy.apiVersion, kind: policy.kind, metadata: { name }, status },
    { fieldManager: FIELD_MANAGER, subresource: 'status', force: true },
  );
}

function policyStatus(matched: readonly KeptResult[], now: string): SavingsPolicyStatus {
  const savings = (result: KeptResult): number =>
    Number(result.status.potentialMonthlySavingsUSD ?? 0);
  const top = [...matched]
    .sort(
      (a, b) =>
        savings(b) - savings(a) ||
        `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
    )
    .slice(0, TOP_WORKLOADS)
    .map((result) => ({
      namespace: result.namespace,
      kind: result.kind,
      name: result.name,
      potentialMonthlySavingsUSD: result.status.potentialMonthlySavingsUSD ?? '0',
    }));
  return {
    matchedWorkloads: matched.length,
    monthlyCostUSD: sumUSD(matched.map((result) => result.status.monthlyCostUSD)),
    potentialMonthlySavingsUSD: sumUSD(
      matched.map((result) => result.status.potentialMonthlySavingsUSD),
    ),
    topWorkloads: top,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Analysed',
        message: `${matched.length} workload${matched.length === 1 ? '' : 's'} analysed under this policy.`,
        lastTransitionTime: now,
      },
    ],
  };
}
