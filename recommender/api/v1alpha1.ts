/**
 * TypeScript types of the kopek.dev/v1alpha1 API. crds/ is the source of truth; these types
 * mirror it and a test keeps them honest (the examples under crds/examples parse into them and
 * the API server accepts them). Money is a decimal string in USD, never a float.
 */

export const GROUP = 'kopek.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Decimal string in USD with at most two decimals, e.g. "288.75". */
export type USD = string;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

// ---- SavingsPolicy (cluster-scoped) ----

export type PolicyMode = 'Recommend' | 'Apply';
export type Placement = 'Preferred' | 'Required';
export type Optimization = 'Spot' | 'Arm64' | 'CrossZone';
export const OPTIMIZATIONS: readonly Optimization[] = ['Spot', 'Arm64', 'CrossZone'];

export interface SpotPolicy {
  enabled?: boolean;
  minReplicas?: number;
  maxTerminationGracePeriodSeconds?: number;
  placement?: Placement;
}

export interface Arm64Policy {
  enabled?: boolean;
  placement?: Placement;
}

export interface CrossZonePolicy {
  enabled?: boolean;
  minMonthlySavingsUSD?: USD;
}

export interface ApplyPolicy {
  actions?: Optimization[];
  requireApproval?: boolean;
  maxConcurrent?: number;
  /** Go duration, e.g. "1h". */
  cooldown?: string;
  /** Go duration, e.g. "10m". */
  progressTimeout?: string;
  rollbackOnFailure?: boolean;
  allowGitOpsManaged?: boolean;
}

export interface SavingsPolicySpec {
  mode?: PolicyMode;
  priority?: number;
  namespaceSelector?: LabelSelector;
  workloadSelector?: LabelSelector;
  spot?: SpotPolicy;
  arm64?: Arm64Policy;
  crossZone?: CrossZonePolicy;
  apply?: ApplyPolicy;
}

export interface WorkloadSavings {
  namespace: string;
  kind: string;
  name: string;
  potentialMonthlySavingsUSD?: USD;
}

export interface SavingsPolicyStatus {
  observedGeneration?: number;
  matchedWorkloads?: number;
  monthlyCostUSD?: USD;
  potentialMonthlySavingsUSD?: USD;
  topWorkloads?: WorkloadSavings[];
  conditions?: Condition[];
}

export interface SavingsPolicy {
  apiVersion: typeof API_VERSION;
  kind: 'SavingsPolicy';
  metadata: ObjectMeta;
  spec: SavingsPolicySpec;
  status?: SavingsPolicyStatus;
}

// ---- WorkloadRecommendation (namespaced, short name wrec) ----

export type WorkloadKind =
  'Deployment' | 'StatefulSet' | 'DaemonSet' | 'ReplicaSet' | 'Job' | 'CronJob' | 'Rollout';

export interface TargetRef {
  apiVersion: 'apps/v1' | 'batch/v1' | 'argoproj.io/v1alpha1';
  kind: WorkloadKind;
  name: string;
}

export interface WorkloadRecommendationSpec {
  targetRef: TargetRef;
  approve?: Optimization[];
}

export type Verdict =
  'Recommended' | 'Possible' | 'NotRecommended' | 'AlreadyOptimized' | 'NotApplicable' | 'Unknown';

/**
 * What a reason does to the verdict. Blocks: rules the change out. Requires: a change is
 * needed first (makes the verdict Possible). Lowers / Raises: moves the score. Info: context.
 */
export type ReasonEffect = 'Blocks' | 'Requires' | 'Lowers' | 'Raises' | 'Info';

export interface Reason {
  /** Stable, machine-readable code, e.g. "TooFewReplicas". */
  code: string;
  message: string;
  effect: ReasonEffect;
}

export interface OptimizationResult {
  verdict: Verdict;
  /** 0 (does not suit at all) to 100. */
  score: number;
  monthlySavingsUSD: USD;
  reasons?: Reason[];
}

export interface SpotResult extends OptimizationResult {
  /**
   * What moving it to on-demand adds to the monthly bill, when it runs on Spot although kopek
   * does not recommend Spot for it (the suggested patch makes that move).
   */
  moveToOnDemandMonthlyCostUSD?: USD;
}

export interface ImagePlatforms {
  container: string;
  image: string;
  digest?: string;
  /** e.g. "linux/amd64", "linux/arm64/v8". */
  platforms?: string[];
  /** Why the platforms could not be read; never credentials. */
  error?: string;
}

export interface Arm64Result extends OptimizationResult {
  images?: ImagePlatforms[];
  /**
   * What moving it to amd64 nodes adds to the monthly bill, when it runs on arm64 although an
   * image lacks arm64 (the suggested patch makes that move).
   */
  moveToAmd64MonthlyCostUSD?: USD;
}

export interface ServiceCrossZone {
  name: string;
  /** Share of traffic crossing zones, "0" to "1" with up to 4 decimals. */
  crossZoneFraction?: string;
  readyEndpointsPerZone?: Record<string, number>;
  fix?: string;
}

/** The workload at the other end of a measured edge. */
export interface EdgePeer {
  namespace?: string;
  kind?: string;
  /** "unknown" when telemetry could not name it (outside the mesh, a node, outside the cluster). */
  name: string;
}

/** One measured edge, counted once: at its server side. */
export interface CrossZoneEdge {
  peer: EdgePeer;
  monthlyCrossZoneGB: string;
  monthlyCostUSD: USD;
}

export interface CrossZoneResult extends OptimizationResult {
  source?: 'Measured' | 'Estimated';
  monthlyCrossZoneGB?: string;
  monthlyCostUSD?: USD;
  services?: ServiceCrossZone[];
  /** The largest measured edges by cross-zone bytes. */
  edges?: CrossZoneEdge[];
}

export interface PricingInfo {
  source?: 'Live' | 'Snapshot';
  region?: string;
  asOf?: string;
}

export interface PlacementInfo {
  replicas?: number;
  zones?: string[];
  instanceTypes?: string[];
  capacityTypes?: string[];
  architectures?: string[];
}

export interface SuggestedPatch {
  /** Strategic-merge patch over the workload's spec.template. */
  podTemplate?: Record<string, unknown>;
  services?: { name: string; patch: Record<string, unknown> }[];
}

/** Savings of one applied action, in USD a month. */
export interface ActionSavings {
  action: Optimization;
  monthlySavingsUSD: USD;
}

export type AppliedOutcome =
  'InProgress' | 'Succeeded' | 'RollingBack' | 'RolledBack' | 'Failed' | 'Cleared';

export interface AppliedChange {
  actions: Optimization[];
  appliedAt: string;
  /** When the outcome last changed. */
  updatedAt?: string;
  /** The fields kopek changes, before the change, as JSON (see recommender/apply/placement.ts). */
  previousState?: string;
  /** The same fields as kopek set them, as JSON. */
  appliedState?: string;
  /** The workload's metadata.generation after kopek's last change to it. */
  workloadGeneration?: number;
  outcome: AppliedOutcome;
  /** A stable code saying why, e.g. "PodsUnschedulable". */
  reason?: string;
  message?: string;
  expectedSavings?: ActionSavings[];
  realizedSavings?: ActionSavings[];
}

export interface WorkloadRecommendationStatus {
  observedGeneration?: number;
  policy?: string;
  monthlyCostUSD?: USD;
  potentialMonthlySavingsUSD?: USD;
  pricing?: PricingInfo;
  placement?: PlacementInfo;
  spot?: SpotResult;
  arm64?: Arm64Result;
  crossZone?: CrossZoneResult;
  suggestedPatch?: SuggestedPatch;
  applied?: AppliedChange;
  conditions?: Condition[];
}

export interface WorkloadRecommendation {
  apiVersion: typeof API_VERSION;
  kind: 'WorkloadRecommendation';
  metadata: ObjectMeta;
  spec: WorkloadRecommendationSpec;
  status?: WorkloadRecommendationStatus;
}
