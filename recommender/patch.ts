/**
 * Suggested patches: exactly what a person would apply for the recommended changes. The pod
 * template part is a strategic-merge patch over spec.template. Kubernetes merges nodeSelector
 * (a map: `null` deletes a key) and topologySpreadConstraints (merge key topologyKey), but
 * replaces nodeSelectorTerms, preferred scheduling terms and tolerations as whole lists — so
 * those are written out in full, the template's own entries kept.
 */
import type { SuggestedPatch } from './api/v1alpha1.ts';
import type { CrossZonePlan } from './cross-zone.ts';
import {
  LABEL_ARCH,
  LABEL_EKS_CAPACITY,
  LABEL_KARPENTER_CAPACITY,
  LABEL_ZONE,
  type CapacityLabelScheme,
  type NodeSelectorRequirement,
  type NodeSelectorTerm,
  type PreferredSchedulingTerm,
  type Taint,
  type Toleration,
  type WorkloadFacts,
} from './facts.ts';
import {
  ARCH_KEYS,
  CAPACITY_KEYS,
  LABEL_HOSTNAME,
  hardConstraint,
  needsNodeSpread,
  normalizeCapacity,
} from './scheduling.ts';

/** Which changes to write a patch for. */
export interface PatchRequest {
  spot?: boolean;
  /** Off Spot: it runs there although kopek does not recommend Spot for it. */
  onDemand?: boolean;
  /** Off arm64: it runs there although an image lacks arm64. */
  amd64?: boolean;
  arm64?: boolean;
  crossZone?: CrossZonePlan;
}

const SPOT_VALUE: Record<CapacityLabelScheme, { key: string; value: string }> = {
  karpenter: { key: LABEL_KARPENTER_CAPACITY, value: 'spot' },
  eks: { key: LABEL_EKS_CAPACITY, value: 'SPOT' },
};

function schemes(facts: WorkloadFacts): CapacityLabelScheme[] {
  const s = facts.cluster.capacityLabelSchemes;
  return s.length > 0 ? [...s].sort() : ['eks', 'karpenter'];
}

/** Drops expressions on `keys` whose values do not allow `wanted` (the pins being removed). */
function dropPins(
  exprs: readonly NodeSelectorRequirement[],
  keys: readonly string[],
  wanted: string,
  norm: (v: string) => string,
): NodeSelectorRequirement[] {
  return exprs.filter((e) => {
    if (!keys.includes(e.key)) return true;
    const values = (e.values ?? []).map(norm);
    if (e.operator === 'In') return values.includes(wanted);
    if (e.operator === 'NotIn') return !values.includes(wanted);
    return e.operator !== 'DoesNotExist';
  });
}

function tolerationFor(t: Taint): Toleration {
  const out: Toleration = {
    key: t.key,
    operator: t.value === undefined ? 'Exists' : 'Equal',
    effect: t.effect,
  };
  if (t.value !== undefined) out.value = t.value;
  return out;
}

function sameToleration(a: Toleration, b: Toleration): boolean {
  return (
    a.key === b.key && a.operator === b.operator && a.value === b.value && a.effect === b.effect
  );
}

function isIdentity(x: unknown, y: unknown): boolean {
  return JSON.stringify(x) === JSON.stringify(y);
}

interface Working {
  nodeSelector: Record<string, string | null>;
  required: NodeSelectorTerm[] | undefined;
  preferred: PreferredSchedulingTerm[];
  tolerations: Toleration[];
}

/**
 * Clears what keeps the pods from `wanted` on labels `keys`: nodeSelector entries and required
 * expressions that exclude it, and every preference on those labels.
 */
function clearPins(
  facts: WorkloadFacts,
  w: Working,
  keys: readonly string[],
  wanted: string,
  norm: (v: string) => string,
): void {
  for (const key of keys) {
    const v = facts.template.nodeSelector[key];
    if (v !== undefined && norm(v) !== wanted) w.nodeSelector[key] = null;
  }
  if (w.required !== undefined) {
    w.required = w.required.map((t) => ({
      ...t,
      matchExpressions: dropPins(t.matchExpressions ?? [], keys, wanted, norm),
    }));
  }
  w.preferred = w.preferred.filter(
    (p) => !(p.preference.matchExpressions ?? []).some((e) => keys.includes(e.key)),
  );
}

const sameValue = (v: string): string => v;

function applySpot(facts: WorkloadFacts, w: Working): void {
  // Pins and preferences for on-demand go; a preference for Spot (per label scheme) comes in.
  clearPins(facts, w, CAPACITY_KEYS, 'spot', normalizeCapacity);
  const targets = schemes(facts).map((s) => SPOT_VALUE[s]);
  if (facts.policy.spot.placement === 'Required') {
    const base = w.required !== undefined && w.required.length > 0 ? w.required : [{}];
    w.required = base.flatMap((t) =>
      targets.map((s) => ({
        ...t,
        matchExpressions: [
          ...(t.matchExpressions ?? []).filter((e) => !CAPACITY_KEYS.includes(e.key)),
          { key: s.key, operator: 'In', values: [s.value] },
        ],
      })),
    );
  } else {
    for (const s of targets) {
      w.preferred.push({
        weight: 100,
        preference: { matchExpressions: [{ key: s.key, operator: 'In', values: [s.value] }] },
      });
    }
  }
  const wanted: Toleration[] = [
    ...targets.map((s) => ({
      key: s.key,
      operator: 'Equal',
      value: s.value,
      effect: 'NoSchedule',
    })),
    ...facts.cluster.spotNodeTaints.map(tolerationFor),
  ];
  for (const t of wanted)
    if (!w.tolerations.some((x) => sameToleration(x, t))) w.tolerations.push(t);
}

/**
 * Keeps the pods off Spot nodes: Spot pins and preferences go, and every required term gets
 * `NotIn [spot]` for each capacity label, which nodes without the label (on-demand) also pass.
 */
function applyOnDemand(facts: WorkloadFacts, w: Working): void {
  clearPins(facts, w, CAPACITY_KEYS, 'on-demand', normalizeCapacity);
  const offSpot = Object.values(SPOT_VALUE).map((s): NodeSelectorRequirement => ({
    key: s.key,
    operator: 'NotIn',
    values: [s.value],
  }));
  const base = w.required !== undefined && w.required.length > 0 ? w.required : [{}];
  w.required = base.map((t) => ({
    ...t,
    matchExpressions: [
      ...(t.matchExpressions ?? []).filter((e) => !offSpot.some((o) => isIdentity(o, e))),
      ...offSpot,
    ],
  }));
}

/**
 * Spot without arm64 keeps the pods on the architectures they run on today: Spot pools often
 * mix amd64 and arm64 nodes, and an image built for one architecture crashes on the other.
 * Nothing to add when the template already constrains the architecture, or when every
 * architecture of the cluster already runs the pods.
 */
function keepArchitectures(facts: WorkloadFacts, w: Working): void {
  if (hardConstraint(facts.template, ARCH_KEYS) !== undefined) return;
  const running = [
    ...new Set(facts.pods.flatMap((p) => (p.node?.arch === undefined ? [] : [p.node.arch]))),
  ].sort();
  if (running.length === 0 || facts.cluster.architectures.every((a) => running.includes(a))) return;
  const pin: NodeSelectorRequirement = { key: LABEL_ARCH, operator: 'In', values: running };
  const base = w.required !== undefined && w.required.length > 0 ? w.required : [{}];
  w.required = base.map((t) => ({ ...t, matchExpressions: [...(t.matchExpressions ?? []), pin] }));
}

function applyArm64(facts: WorkloadFacts, w: Working): void {
  clearPins(facts, w, ARCH_KEYS, 'arm64', sameValue);
  if (facts.policy.arm64.placement === 'Required') {
    w.nodeSelector[LABEL_ARCH] = 'arm64';
  } else {
    w.preferred.push({
      weight: 100,
      preference: { matchExpressions: [{ key: LABEL_ARCH, operator: 'In', values: ['arm64'] }] },
    });
  }
  const wanted: Toleration[] = [
    { key: LABEL_ARCH, operator: 'Equal', value: 'arm64', effect: 'NoSchedule' },
    ...facts.cluster.arm64NodeTaints.map(tolerationFor),
  ];
  for (const t of wanted)
    if (!w.tolerations.some((x) => sameToleration(x, t))) w.tolerations.push(t);
}

/** Pins the pods to amd64 nodes: arm64 pins and preferences go. */
function applyAmd64(facts: WorkloadFacts, w: Working): void {
  clearPins(facts, w, ARCH_KEYS, 'amd64', sameValue);
  w.nodeSelector[LABEL_ARCH] = 'amd64';
}

/** The nodeAffinity part of the patch, or undefined when nothing changed. */
function nodeAffinityPatch(facts: WorkloadFacts, w: Working): Record<string, unknown> | undefined {
  const na = facts.template.affinity?.nodeAffinity;
  const out: Record<string, unknown> = {};
  const origRequired = na?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  // A term left without expressions would match every node: drop it; no terms left → delete.
  const required = w.required?.filter(
    (t) => (t.matchExpressions ?? []).length + (t.matchFields ?? []).length > 0,
  );
  if (!isIdentity(required, origRequired)) {
    out.requiredDuringSchedulingIgnoredDuringExecution =
      required === undefined || required.length === 0 ? null : { nodeSelectorTerms: required };
  }
  const origPreferred = na?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  if (!isIdentity(w.preferred, origPreferred)) {
    out.preferredDuringSchedulingIgnoredDuringExecution = w.preferred;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A soft spread of the workload's pods over `topologyKey`, unless the template has one. */
function spreadPatch(facts: WorkloadFacts, topologyKey: string): Record<string, unknown>[] {
  if (facts.template.topologySpread.some((s) => s.topologyKey === topologyKey)) return [];
  return [
    {
      maxSkew: 1,
      topologyKey,
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { ...facts.selector } },
    },
  ];
}

/**
 * The suggested patch for the requested changes, or undefined when there is nothing to change.
 * Pure and deterministic: the same facts and request always give the same patch.
 */
export function suggestPatch(
  facts: WorkloadFacts,
  request: PatchRequest,
): SuggestedPatch | undefined {
  const t = facts.template;
  const w: Working = {
    nodeSelector: {},
    required:
      t.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms.map(
        (x) => ({
          ...x,
          matchExpressions: [...(x.matchExpressions ?? [])],
        }),
      ),
    preferred: [
      ...(t.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []),
    ],
    tolerations: [...t.tolerations],
  };
  if (request.spot === true) applySpot(facts, w);
  else if (request.onDemand === true) applyOnDemand(facts, w);
  if (request.spot === true && request.arm64 !== true) keepArchitectures(facts, w);
  if (request.arm64 === true) applyArm64(facts, w);
  else if (request.amd64 === true) applyAmd64(facts, w);

  const spec: Record<string, unknown> = {};
  if (Object.keys(w.nodeSelector).length > 0) {
    spec.nodeSelector = Object.fromEntries(
      Object.entries(w.nodeSelector).sort(([a], [b]) => a.localeCompare(b)),
    );
  }
  const nodeAffinity = nodeAffinityPatch(facts, w);
  if (nodeAffinity !== undefined) spec.affinity = { nodeAffinity };
  if (!isIdentity(w.tolerations, t.tolerations)) spec.tolerations = w.tolerations;
  // Spot with every replica on one node spreads them over nodes (ReplicasOnOneNode).
  const spreads = [
    ...(request.spot === true && needsNodeSpread(facts) ? spreadPatch(facts, LABEL_HOSTNAME) : []),
    ...(request.crossZone?.spreadOverZones === true ? spreadPatch(facts, LABEL_ZONE) : []),
  ];
  if (spreads.length > 0) spec.topologySpreadConstraints = spreads;

  const patch: SuggestedPatch = {};
  if (Object.keys(spec).length > 0) patch.podTemplate = { spec };
  const services = request.crossZone?.services ?? [];
  if (services.length > 0)
    patch.services = services.slice(0, 32).map((s) => ({ name: s.name, patch: s.patch }));
  return Object.keys(patch).length > 0 ? patch : undefined;
}
