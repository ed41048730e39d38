/**
 * SavingsPolicy: which one applies to a workload (highest priority among those whose selectors
 * match; ties broken by name) and its thresholds with the CRD's defaults filled in.
 */
import type { LabelSelector, SavingsPolicy, SavingsPolicySpec } from './api/v1alpha1.ts';
import type { ResolvedPolicy } from './facts.ts';

/** The CRD's defaults; also what applies when no SavingsPolicy exists at all. */
export const DEFAULT_POLICY: ResolvedPolicy = {
  mode: 'Recommend',
  spot: {
    enabled: true,
    minReplicas: 2,
    maxTerminationGracePeriodSeconds: 90,
    placement: 'Preferred',
  },
  arm64: { enabled: true, placement: 'Preferred' },
  crossZone: { enabled: true, minMonthlySavingsUSD: 10 },
  apply: {
    actions: [],
    requireApproval: true,
    maxConcurrent: 1,
    cooldownSeconds: 3600,
    progressTimeoutSeconds: 600,
    rollbackOnFailure: true,
    allowGitOpsManaged: false,
  },
};

/**
 * Seconds of a duration as the CRD writes them (`^([0-9]{1,6}(s|m|h))+$`, e.g. "1h30m");
 * undefined for anything else.
 */
export function durationSeconds(text: string | undefined): number | undefined {
  if (text === undefined || !/^(\d{1,6}[smh])+$/.test(text)) return undefined;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const [, amount = '0', u = 's'] of text.matchAll(/(\d+)([smh])/g))
    total += Number(amount) * (unit[u] ?? 0);
  return total;
}

/** spec.apply with the CRD's defaults. */
function resolveApply(apply: SavingsPolicySpec['apply']): ResolvedPolicy['apply'] {
  const d = DEFAULT_POLICY.apply;
  return {
    actions: apply?.actions ?? d.actions,
    requireApproval: apply?.requireApproval ?? d.requireApproval,
    maxConcurrent: apply?.maxConcurrent ?? d.maxConcurrent,
    cooldownSeconds: durationSeconds(apply?.cooldown) ?? d.cooldownSeconds,
    progressTimeoutSeconds: durationSeconds(apply?.progressTimeout) ?? d.progressTimeoutSeconds,
    rollbackOnFailure: apply?.rollbackOnFailure ?? d.rollbackOnFailure,
    allowGitOpsManaged: apply?.allowGitOpsManaged ?? d.allowGitOpsManaged,
  };
}

/** Fills in a SavingsPolicy spec's defaults. */
export function resolvePolicy(spec: SavingsPolicySpec | undefined, name?: string): ResolvedPolicy {
  const d = DEFAULT_POLICY;
  const minSavings = Number(spec?.crossZone?.minMonthlySavingsUSD);
  const resolved: ResolvedPolicy = {
    mode: spec?.mode ?? d.mode,
    spot: {
      enabled: spec?.spot?.enabled ?? d.spot.enabled,
      minReplicas: spec?.spot?.minReplicas ?? d.spot.minReplicas,
      maxTerminationGracePeriodSeconds:
        spec?.spot?.maxTerminationGracePeriodSeconds ?? d.spot.maxTerminationGracePeriodSeconds,
      placement: spec?.spot?.placement ?? d.spot.placement,
    },
    arm64: {
      enabled: spec?.arm64?.enabled ?? d.arm64.enabled,
      placement: spec?.arm64?.placement ?? d.arm64.placement,
    },
    crossZone: {
      enabled: spec?.crossZone?.enabled ?? d.crossZone.enabled,
      minMonthlySavingsUSD: Number.isFinite(minSavings)
        ? minSavings
        : d.crossZone.minMonthlySavingsUSD,
    },
    apply: resolveApply(spec?.apply),
  };
  if (name !== undefined) resolved.name = name;
  return resolved;
}

/** Kubernetes label-selector semantics; an absent selector matches everything. */
export function matchesSelector(
  selector: LabelSelector | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const value = labels[req.key];
    const values = req.values ?? [];
    const ok =
      req.operator === 'In'
        ? value !== undefined && values.includes(value)
        : req.operator === 'NotIn'
          ? value === undefined || !values.includes(value)
          : req.operator === 'Exists'
            ? value !== undefined
            : value === undefined;
    if (!ok) return false;
  }
  return true;
}

/**
 * The SavingsPolicy in force for a workload: the highest `priority` whose namespaceSelector
 * matches the namespace's labels and whose workloadSelector matches the workload's labels (ties:
 * the first name in alphabetical order). No match → the built-in defaults (recommend only).
 */
export function selectPolicy(
  policies: readonly SavingsPolicy[],
  namespaceLabels: Readonly<Record<string, string>>,
  workloadLabels: Readonly<Record<string, string>>,
): ResolvedPolicy {
  let best: SavingsPolicy | undefined;
  for (const p of policies) {
    if (!matchesSelector(p.spec.namespaceSelector, namespaceLabels)) continue;
    if (!matchesSelector(p.spec.workloadSelector, workloadLabels)) continue;
    const prio = p.spec.priority ?? 0;
    const bestPrio = best?.spec.priority ?? 0;
    if (
      best === undefined ||
      prio > bestPrio ||
      (prio === bestPrio && p.metadata.name < best.metadata.name)
    ) {
      best = p;
    }
  }
  return best === undefined ? DEFAULT_POLICY : resolvePolicy(best.spec, best.metadata.name);
}
