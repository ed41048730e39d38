/**
 * Reading a pod template's node constraints: what a nodeSelector or a required node affinity
 * allows for a label, and what the preferred terms favour.
 */
import {
  LABEL_ARCH,
  LABEL_EKS_CAPACITY,
  LABEL_KARPENTER_CAPACITY,
  type NodeSelectorRequirement,
  type PodTemplateFacts,
  type WorkloadFacts,
} from './facts.ts';

/** The node label a spread over nodes uses. */
export const LABEL_HOSTNAME = 'kubernetes.io/hostname';

/** Older clusters also used this one. */
export const LABEL_ARCH_BETA = 'beta.kubernetes.io/arch';
export const ARCH_KEYS: readonly string[] = [LABEL_ARCH, LABEL_ARCH_BETA];
export const CAPACITY_KEYS: readonly string[] = [LABEL_KARPENTER_CAPACITY, LABEL_EKS_CAPACITY];

/** Normalises capacity-type values of both schemes: "SPOT" → "spot", "ON_DEMAND" → "on-demand". */
export function normalizeCapacity(value: string): string {
  return value.toLowerCase().replace('_', '-');
}

/** What a hard constraint allows for one label (values normalised by `norm`). */
export interface HardConstraint {
  /** Values allowed; undefined when any value is. */
  allowed?: string[];
  /** Values excluded (NotIn / DoesNotExist). */
  excluded: string[];
  /** Where it comes from, for messages: "nodeSelector" or "required node affinity". */
  source: 'nodeSelector' | 'required node affinity';
}

function exprAllows(expr: NodeSelectorRequirement, norm: (v: string) => string): HardConstraint {
  const values = (expr.values ?? []).map(norm);
  if (expr.operator === 'In')
    return { allowed: values, excluded: [], source: 'required node affinity' };
  if (expr.operator === 'NotIn') return { excluded: values, source: 'required node affinity' };
  return { excluded: [], source: 'required node affinity' };
}

/**
 * The hard constraint a template puts on a node label (any of `keys`), or undefined when there
 * is none. Required node-selector terms are ORed, so a value is allowed when some term allows it.
 */
export function hardConstraint(
  template: PodTemplateFacts,
  keys: readonly string[],
  norm: (v: string) => string = (v) => v,
): HardConstraint | undefined {
  for (const key of keys) {
    const v = template.nodeSelector[key];
    if (v !== undefined) return { allowed: [norm(v)], excluded: [], source: 'nodeSelector' };
  }
  const terms =
    template.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
      ?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return undefined;
  const perTerm = terms.map((t) => {
    const exprs = (t.matchExpressions ?? []).filter((e) => keys.includes(e.key));
    if (exprs.length === 0) return undefined;
    // Expressions within one term are ANDed: intersect what they allow.
    let allowed: string[] | undefined;
    const excluded: string[] = [];
    for (const e of exprs) {
      const c = exprAllows(e, norm);
      if (c.allowed !== undefined) {
        const prev = allowed;
        allowed = prev === undefined ? c.allowed : c.allowed.filter((v) => prev.includes(v));
      }
      excluded.push(...c.excluded);
    }
    return { allowed, excluded };
  });
  // One unconstrained term leaves the label free.
  if (perTerm.some((t) => t === undefined)) return undefined;
  const allowed = new Set<string>();
  let anyOpen = false;
  const excluded = new Set<string>();
  for (const t of perTerm) {
    if (t === undefined) continue;
    if (t.allowed === undefined) anyOpen = true;
    else for (const v of t.allowed) if (!t.excluded.includes(v)) allowed.add(v);
    for (const v of t.excluded) excluded.add(v);
  }
  const out: HardConstraint = { excluded: [...excluded].sort(), source: 'required node affinity' };
  if (!anyOpen) out.allowed = [...allowed].sort();
  return out;
}

/** True when the constraint lets a node with `value` in (undefined constraint: yes). */
export function allows(c: HardConstraint | undefined, value: string): boolean {
  if (c === undefined) return true;
  if (c.excluded.includes(value)) return false;
  return c.allowed === undefined || c.allowed.includes(value);
}

/** Values the preferred node-affinity terms favour for a label (positive weights, `In`). */
export function preferredValues(
  template: PodTemplateFacts,
  keys: readonly string[],
  norm: (v: string) => string = (v) => v,
): string[] {
  const out = new Set<string>();
  for (const term of template.affinity?.nodeAffinity
    ?.preferredDuringSchedulingIgnoredDuringExecution ?? []) {
    if (term.weight <= 0) continue;
    for (const e of term.preference.matchExpressions ?? []) {
      if (keys.includes(e.key) && e.operator === 'In')
        for (const v of e.values ?? []) out.add(norm(v));
    }
  }
  return [...out].sort();
}

/** Topology keys the template spreads its replicas over (spread constraints, anti-affinity). */
export function spreadKeys(template: PodTemplateFacts): string[] {
  const keys = new Set<string>(template.topologySpread.map((s) => s.topologyKey));
  for (const k of template.affinity?.podAntiAffinity?.requiredTopologyKeys ?? []) keys.add(k);
  for (const k of template.affinity?.podAntiAffinity?.preferredTopologyKeys ?? []) keys.add(k);
  return [...keys].sort();
}

/** The one node that all of a workload's running pods (two or more) share, if they share one. */
export function onlyNode(facts: WorkloadFacts): string | undefined {
  const nodes = new Set(facts.pods.map((p) => p.node?.name).filter((n) => n !== undefined));
  return facts.pods.length >= 2 && nodes.size === 1 ? [...nodes][0] : undefined;
}

/**
 * Every running replica shares one node and nothing in the template spreads them over nodes:
 * the Spot patch adds a spread over kubernetes.io/hostname.
 */
export function needsNodeSpread(facts: WorkloadFacts): boolean {
  return onlyNode(facts) !== undefined && !spreadKeys(facts.template).includes(LABEL_HOSTNAME);
}
