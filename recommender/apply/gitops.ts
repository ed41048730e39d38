/**
 * Workloads a GitOps controller owns: its next sync would undo kopek's change (or fight it), so
 * kopek leaves them to a person with Git unless the policy says allowGitOpsManaged.
 */
import type { ReadyCondition } from '../recommend.ts';
import type { WorkloadFacts } from '../facts.ts';

/** Marks that a GitOps controller manages an object: [where, key, who]. */
const MARKS: readonly ['annotation' | 'label', string, string][] = [
  ['annotation', 'argocd.argoproj.io/tracking-id', 'Argo CD'],
  ['label', 'argocd.argoproj.io/instance', 'Argo CD'],
  ['label', 'kustomize.toolkit.fluxcd.io/name', 'Flux'],
  ['label', 'helm.toolkit.fluxcd.io/name', 'Flux'],
];

/**
 * Who manages the workload through Git, with the mark that says so, e.g. "Argo CD (annotation
 * argocd.argoproj.io/tracking-id)"; undefined when no mark is present. Argo CD's legacy label
 * tracking on app.kubernetes.io/instance is not a mark: Helm sets that label on everything.
 */
export function gitOpsManager(
  labels: Readonly<Record<string, string>>,
  annotations: Readonly<Record<string, string>>,
): string | undefined {
  for (const [where, key, who] of MARKS) {
    const values = where === 'label' ? labels : annotations;
    if (values[key] !== undefined) return `${who} (${where} ${key})`;
  }
  return undefined;
}

/**
 * The Ready condition of a workload that Apply mode would change but may not because Git
 * manages it: its message says so and what to do instead. Other conditions come back as given.
 */
export function withGitOpsNote(condition: ReadyCondition, facts: WorkloadFacts): ReadyCondition {
  const { policy } = facts;
  if (
    policy.mode !== 'Apply' ||
    policy.apply.allowGitOpsManaged ||
    policy.apply.actions.length === 0
  )
    return condition;
  const manager = gitOpsManager(facts.labels, facts.annotations);
  if (manager === undefined || condition.reason !== 'Recommended') return condition;
  return {
    ...condition,
    message: `${condition.message} Managed by ${manager}: kopek does not patch it in Apply mode; commit the suggested patch (status.suggestedPatch) to Git instead.`,
  };
}
