/**
 * What an apply changes: the suggested patch for the approved actions (recommender/patch.ts,
 * the same patch people see in status.suggestedPatch), computed over the live object's fields
 * rather than the cached ones and applied to them. kopek therefore applies exactly what it
 * suggests, and never drops an entry someone added since the cache last saw the workload.
 */
import type { Optimization } from '../api/v1alpha1.ts';
import type { CrossZonePlan } from '../cross-zone.ts';
import type {
  Affinity,
  PodTemplateFacts,
  Toleration,
  TopologySpreadFacts,
  WorkloadFacts,
} from '../facts.ts';
import { suggestPatch } from '../patch.ts';
import { mergePodSpec, mergeService } from './merge.ts';
import type { PlacementState, PodPlacement, ServicePlacement } from './placement.ts';

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The template facts the patch reads, taken from the live pod spec instead of the cache. */
function liveTemplate(template: PodTemplateFacts, live: PodPlacement): PodTemplateFacts {
  const nodeSelector = isObj(live.nodeSelector)
    ? Object.fromEntries(
        Object.entries(live.nodeSelector).filter(
          (entry): entry is [string, string] => typeof entry[1] === 'string',
        ),
      )
    : {};
  const nodeAffinity = isObj(live.affinity) ? live.affinity.nodeAffinity : undefined;
  const affinity: Affinity | undefined = isObj(nodeAffinity) ? { nodeAffinity } : undefined;
  const tolerations = Array.isArray(live.tolerations) ? (live.tolerations as Toleration[]) : [];
  const topologySpread = Array.isArray(live.topologySpreadConstraints)
    ? (live.topologySpreadConstraints as Obj[]).map((c): TopologySpreadFacts => ({
        topologyKey: String(c.topologyKey),
        maxSkew: Number(c.maxSkew),
        whenUnsatisfiable: String(c.whenUnsatisfiable),
      }))
    : [];
  const { affinity: _cached, ...rest } = template;
  return {
    ...rest,
    nodeSelector,
    ...(affinity ? { affinity } : {}),
    tolerations,
    topologySpread,
  };
}

export interface PlanInput {
  facts: WorkloadFacts;
  actions: readonly Optimization[];
  /** The cross-zone plan of the recommendation, when CrossZone is applied. */
  crossZone?: CrossZonePlan;
  /** The live fields now. */
  live: PlacementState;
}

/**
 * The state after applying `actions`: the live state with the suggested patch for exactly those
 * actions applied. Services the plan names but that do not exist are left out.
 */
export function plannedState(input: PlanInput): PlacementState {
  const { facts, actions, live } = input;
  const template = liveTemplate(facts.template, live.podSpec);
  const crossZone = actions.includes('CrossZone') ? input.crossZone : undefined;
  const patch = suggestPatch(
    { ...facts, template },
    {
      spot: actions.includes('Spot'),
      arm64: actions.includes('Arm64'),
      ...(crossZone ? { crossZone } : {}),
    },
  );
  const spec = isObj(patch?.podTemplate?.spec) ? patch.podTemplate.spec : undefined;
  const services: ServicePlacement[] = live.services.map((service) => {
    const fix = patch?.services?.find((s) => s.name === service.name);
    return fix ? mergeService(service, fix.patch) : structuredClone(service);
  });
  return {
    podSpec: spec ? mergePodSpec(live.podSpec, spec) : structuredClone(live.podSpec),
    services,
  };
}
