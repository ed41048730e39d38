/**
 * Workloads another controller owns (a StatefulSet the Prometheus operator writes, a Deployment
 * of a custom resource): a patch to them would be undone by their owner, so the reasons name the
 * object to change instead, and Apply leaves them alone (apply/eligibility.ts).
 */
import type { WorkloadFacts } from './facts.ts';
import { finding, type Finding } from './reasons.ts';

/** "Prometheus monitoring/k8s (monitoring.coreos.com/v1)". */
export function ownerName(facts: WorkloadFacts): string | undefined {
  const owner = facts.owner;
  if (owner === undefined) return undefined;
  const api = owner.apiVersion === undefined ? '' : ` (${owner.apiVersion})`;
  return `${owner.kind} ${facts.namespace}/${owner.name}${api}`;
}

/** The reason that says which object to change, for workloads another controller owns. */
export function ownerFindings(facts: WorkloadFacts): Finding[] {
  const owner = ownerName(facts);
  if (owner === undefined) return [];
  return [
    finding(
      'ChangeThroughOwner',
      'Info',
      `${owner} controls this ${facts.kind} and would undo a change to it: make the suggested change in ${owner}'s spec, not in the ${facts.kind}.`,
    ),
  ];
}
