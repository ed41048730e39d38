/**
 * The change a person commits to Git for a workload that Apply mode leaves alone (Argo CD or
 * Flux manage it) or that nobody lets kopek patch: the same choice of actions as Apply mode
 * (`decide`) without the policy, approval and GitOps gates, and the same planned state
 * (`plannedState`) over the fields as they are in the dumped objects. What `kopek patch` prints
 * is therefore what Apply mode would patch.
 */
import {
  OPTIMIZATIONS,
  type ActionSavings,
  type Optimization,
  type Verdict,
} from '../api/v1alpha1.ts';
import type { WorkloadFacts } from '../facts.ts';
import type { PriceBook } from '../pricing.ts';
import { listOf } from '../reasons.ts';
import { SUPPORTED_ACTIONS, decide } from './eligibility.ts';
import {
  podSpecOf,
  readPodPlacement,
  readServicePlacement,
  sameState,
  type PlacementState,
} from './placement.ts';
import { plannedState } from './plan.ts';
import { evaluateActions, expectedSavings } from './savings.ts';

type Obj = Record<string, unknown>;

export interface CommitInput {
  facts: WorkloadFacts;
  prices: PriceBook;
  /** The workload object as dumped (kubectl get -o yaml). */
  workload: Obj;
  /** The Services of its namespace as dumped, by name. */
  services: ReadonlyMap<string, Obj>;
  /** The actions asked for (--action); every action by default. */
  actions?: readonly Optimization[];
}

export type CommitPlan =
  | {
      actions: Optimization[];
      previous: PlacementState;
      planned: PlacementState;
      savings: ActionSavings[];
    }
  /** Nothing to commit, and why. */
  | { nothing: string };

/** Why the requested actions that are not actionable are not, e.g. "Spot is NotRecommended". */
function verdictsOf(
  requested: readonly Optimization[],
  verdicts: Readonly<Record<Optimization, Verdict>>,
): string {
  return requested.map((a) => `${a} is ${verdicts[a]}`).join(', ');
}

/** The change to commit for one workload, or why there is none. */
export function planCommit(input: CommitInput): CommitPlan {
  const { facts, prices, workload } = input;
  const requested = input.actions ?? OPTIMIZATIONS;
  const evaluation = evaluateActions(facts, prices);
  // Apply mode's own choice, with the gates that do not concern a change made through Git off:
  // the policy's mode and action list, approval, Apply being enabled, GitOps, past attempts.
  const decision = decide({
    facts: {
      ...facts,
      policy: {
        ...facts.policy,
        mode: 'Apply',
        apply: {
          ...facts.policy.apply,
          actions: [...requested],
          requireApproval: false,
          allowGitOpsManaged: true,
        },
      },
    },
    actionable: evaluation.actionable,
    approved: [],
    applyEnabled: true,
    now: 0,
  });
  if ('refusal' in decision) {
    if (decision.refusal.code !== 'NothingToApply') return { nothing: decision.refusal.message };
    const supported = SUPPORTED_ACTIONS[facts.kind];
    const asked = requested.filter((a) => supported.includes(a));
    return {
      nothing:
        asked.length === 0
          ? `kopek changes only ${listOf(supported)} on a ${facts.kind}`
          : `nothing to change: ${verdictsOf(asked, evaluation.verdicts)}`,
    };
  }
  const podSpec = podSpecOf(facts.kind, workload);
  if (podSpec === undefined) return { nothing: 'the dumped object has no pod template' };
  const crossZone = decision.actions.includes('CrossZone') ? evaluation.crossZone : undefined;
  const present = (crossZone?.services ?? []).flatMap((s) => {
    const service = input.services.get(s.name);
    return service === undefined ? [] : [readServicePlacement(service)];
  });
  const previous: PlacementState = {
    podSpec: readPodPlacement(podSpec),
    services: present,
  };
  // CrossZone changes nothing when it needs no spread and none of its Services is in the dump.
  const actions = decision.actions.filter(
    (a) => a !== 'CrossZone' || present.length > 0 || crossZone?.spreadOverZones === true,
  );
  if (actions.length === 0)
    return { nothing: 'CrossZone changes only Services that are not in the dump' };
  const planned = plannedState({ facts, actions, crossZone: evaluation.crossZone, live: previous });
  if (sameState(previous, planned))
    return { nothing: `it already does what ${listOf(actions)} would change` };
  return {
    actions,
    previous,
    planned,
    savings: expectedSavings(facts, prices, actions, evaluation),
  };
}
