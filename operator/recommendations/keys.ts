/**
 * Work-queue keys of the recommendation controller: a workload (`wl/<namespace>/<kind>/<name>`)
 * or a SavingsPolicy's status (`policy/<name>`).
 */

export interface WorkloadRef {
  namespace: string;
  kind: string;
  name: string;
}

export function workloadKey(namespace: string, kind: string, name: string): string {
  return `wl/${namespace}/${kind}/${name}`;
}

export function policyKey(name: string): string {
  return `policy/${name}`;
}

export type ParsedKey =
  { type: 'workload'; workload: WorkloadRef } | { type: 'policy'; name: string };

export function parseKey(key: string): ParsedKey {
  if (key.startsWith('policy/')) return { type: 'policy', name: key.slice('policy/'.length) };
  const [, namespace = '', kind = '', ...rest] = key.split('/');
  return { type: 'workload', workload: { namespace, kind, name: rest.join('/') } };
}

/** The workload a WorkloadRecommendation is about, from its spec.targetRef. */
export function targetOf(wrec: {
  metadata: { namespace?: string | undefined };
  spec?: unknown;
}): WorkloadRef | undefined {
  const target = (wrec.spec as { targetRef?: { kind?: unknown; name?: unknown } } | undefined)
    ?.targetRef;
  const namespace = wrec.metadata.namespace;
  if (typeof target?.kind !== 'string' || typeof target.name !== 'string' || !namespace)
    return undefined;
  return { namespace, kind: target.kind, name: target.name };
}
