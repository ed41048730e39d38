/**
 * WorkloadFacts: everything the recommender knows about one workload, as plain data. The
 * operator (from its caches) and the CLI (from a kubectl dump) build these with
 * facts-from-objects.ts; the recommender turns them into a recommendation and reads nothing
 * else.
 */
import type { Optimization, Placement, WorkloadKind } from './api/v1alpha1.ts';

/** Node labels kopek reads. */
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_INSTANCE_TYPE = 'node.kubernetes.io/instance-type';
export const LABEL_ARCH = 'kubernetes.io/arch';
export const LABEL_KARPENTER_CAPACITY = 'karpenter.sh/capacity-type';
export const LABEL_EKS_CAPACITY = 'eks.amazonaws.com/capacityType';

/** Workload annotations kopek reads. */
export const ANNOTATION_IGNORE = 'kopek.dev/ignore';
export const ANNOTATION_SPOT = 'kopek.dev/spot';
export const ANNOTATION_ARM64 = 'kopek.dev/arm64';
export const ANNOTATION_DO_NOT_DISRUPT = 'karpenter.sh/do-not-disrupt';
export const ANNOTATION_SAFE_TO_EVICT = 'cluster-autoscaler.kubernetes.io/safe-to-evict';
export const ANNOTATION_TOPOLOGY_MODE = 'service.kubernetes.io/topology-mode';

export type CapacityType = 'spot' | 'on-demand';
/** Which capacity-type label a cluster's nodes carry: Karpenter's or EKS managed node groups'. */
export type CapacityLabelScheme = 'karpenter' | 'eks';

export interface NodeFacts {
  name: string;
  zone?: string;
  region?: string;
  instanceType?: string;
  /** "amd64", "arm64", … from kubernetes.io/arch. */
  arch?: string;
  /** From karpenter.sh/capacity-type or eks.amazonaws.com/capacityType; absent when neither. */
  capacityType?: CapacityType;
  /** Node capacity, used for the CPU/memory price split when the price book has no spec. */
  cpuCores?: number;
  memoryBytes?: number;
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

export interface NodeSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface PreferredSchedulingTerm {
  weight: number;
  preference: NodeSelectorTerm;
}

/** The pod template's affinity, in Kubernetes' own shape (only what kopek reads or patches). */
export interface Affinity {
  nodeAffinity?: {
    requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
    preferredDuringSchedulingIgnoredDuringExecution?: PreferredSchedulingTerm[];
  };
  /** Present when the template declares pod anti-affinity (spreads replicas). */
  podAntiAffinity?: {
    requiredTopologyKeys: string[];
    preferredTopologyKeys: string[];
  };
}

export interface ContainerFacts {
  name: string;
  image: string;
  /** `init` runs to completion before the others; `sidecar` is a restartable init container. */
  role: 'main' | 'init' | 'sidecar';
  cpuRequestCores?: number;
  memoryRequestBytes?: number;
  readinessProbe: boolean;
  /** Seconds a preStop hook sleeps (a `sleep` action or a `sleep N` command), when known. */
  preStopSleepSeconds?: number;
  /** Its declared containerPorts, when it declares any. */
  ports?: readonly number[];
}

export type VolumeKind = 'hostPath' | 'persistentVolumeClaim' | 'local' | 'emptyDir' | 'other';

export interface VolumeFacts {
  name: string;
  kind: VolumeKind;
  /** For persistentVolumeClaim: the claim's name. */
  claimName?: string;
  /**
   * For a claim that one node at a time mounts (ReadWriteOnce, ReadWriteOncePod) on a volume
   * tied to one zone (EBS): what says so, e.g. "PersistentVolume pv-1 is pinned to zone
   * us-east-1a". Absent when the volume is shared (EFS) or nothing is known about it.
   */
  zonalVolume?: string;
}

export interface TopologySpreadFacts {
  topologyKey: string;
  maxSkew: number;
  whenUnsatisfiable: string;
}

export interface PodTemplateFacts {
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  containers: readonly ContainerFacts[];
  /** Defaults to 30 in Kubernetes when absent. */
  terminationGracePeriodSeconds?: number;
  volumes: readonly VolumeFacts[];
  /** StatefulSet volumeClaimTemplates names. */
  volumeClaimTemplates: readonly string[];
  nodeSelector: Readonly<Record<string, string>>;
  affinity?: Affinity;
  tolerations: readonly Toleration[];
  topologySpread: readonly TopologySpreadFacts[];
  priorityClassName?: string;
}

export interface PodFacts {
  name: string;
  /** Where it runs; absent when that is not known (its node is not in the input, or it is not scheduled). */
  node?: NodeFacts | undefined;
  ready: boolean;
  /** The pod's effective requests (init containers and overhead considered). */
  cpuRequestCores: number;
  memoryRequestBytes: number;
  /** Measured usage, when a metrics source knows it; cost uses max(request, usage). */
  cpuUsageCores?: number;
  memoryUsageBytes?: number;
}

export interface PdbFacts {
  name: string;
  /** Disruptions the budget allows at the workload's effective replica count. */
  disruptionsAllowed: number;
}

export interface HpaFacts {
  name: string;
  minReplicas: number;
  maxReplicas: number;
}

export interface JobFacts {
  /** Retries after a failure; Kubernetes defaults to 6. */
  backoffLimit?: number;
  activeDeadlineSeconds?: number;
  /** How long the last (or current) run took, from the Job's start and completion times. */
  observedRunSeconds?: number;
  /** A podFailurePolicy rule ignores DisruptionTarget, so interruptions do not count as failures. */
  ignoresDisruptions?: boolean;
}

/** Platforms a registry offers for an image, or why they could not be read. */
export type ImagePlatformsFact =
  { platforms: readonly string[]; digest?: string } | { error: string };

export interface ServiceFacts {
  name: string;
  /** clusterIP: None — clients resolve pod IPs themselves. */
  headless: boolean;
  /**
   * Every port serves metrics (named `metrics`, `http-metrics`, `telemetry`, …; an unnamed port
   * counts when the Service's name ends in `-metrics`): its traffic is scrapes, not clients.
   */
  metricsOnly?: boolean;
  trafficDistribution?: string;
  /** service.kubernetes.io/topology-mode (or the older topology-aware-hints) annotation. */
  topologyMode?: string;
  /** Ready endpoints per zone, from the Service's EndpointSlices (or the pods when none). */
  readyEndpointsPerZone: Readonly<Record<string, number>>;
  /** Share of client traffic per zone (weights, any scale); estimated from client pods' zones. */
  clientWeightsByZone: Readonly<Record<string, number>>;
  /** Measured bytes per month this Service received across zones, when telemetry has it. */
  measuredCrossZoneBytesPerMonth?: number;
  /** Measured total bytes per month (any zone), to apply the estimated cross-zone share to. */
  measuredBytesPerMonth?: number;
  /**
   * measuredCrossZoneBytesPerMonth by the zone of the client end: what the fix would keep in
   * zone is the part from client zones that have ready endpoints.
   */
  measuredCrossZoneBytesByClientZone?: Readonly<Record<string, number>>;
}

/** Traffic telemetry kopek reads (see operator/traffic/). */
export type TrafficSourceName = 'Beyla' | 'Istio' | 'Kubecost';

/**
 * How a source's numbers became cross-zone bytes: zone pairs measured directly (Beyla),
 * workload edges whose cross-zone share comes from where the two workloads' pods run (Istio),
 * or each pod's own bytes sent to other zones, without the peer (Kubecost).
 */
export type TrafficMethod = 'ZonePairs' | 'WorkloadEdges' | 'PodEgress';

/** One edge of measured traffic, counted at this workload (the edge's server side). */
export interface TrafficEdgeFact {
  /** The other end; name "unknown" when telemetry could not name it. */
  peer: { namespace?: string; kind?: string; name: string };
  /** Bytes a month crossing zones over the edge, both directions. */
  crossZoneBytesPerMonth: number;
}

/** What traffic telemetry said, for every workload: its measurement, or why there is none. */
export type TrafficFact =
  | {
      source: TrafficSourceName;
      /** The window the counters' growth was read over, e.g. "7d" (scaled to a 730-hour month). */
      window: string;
      method: TrafficMethod;
      /** The workload's largest edges by cross-zone bytes (at most TRAFFIC_EDGES_KEPT). */
      edges: readonly TrafficEdgeFact[];
      /** Edges attributed to this workload in all (edges lists only the largest). */
      edgeCount: number;
      /** Its measured bytes a month in all directions and zones, when the source knows them. */
      totalBytesPerMonth?: number;
    }
  | { error: string };

/** The SavingsPolicy in force, with every default filled in. */
export interface ResolvedPolicy {
  /** The SavingsPolicy's name; absent when none matched (built-in defaults). */
  name?: string;
  mode: 'Recommend' | 'Apply';
  spot: {
    enabled: boolean;
    minReplicas: number;
    maxTerminationGracePeriodSeconds: number;
    placement: Placement;
  };
  arm64: { enabled: boolean; placement: Placement };
  crossZone: { enabled: boolean; minMonthlySavingsUSD: number };
  /** How Apply mode changes workloads (read only when mode is Apply). */
  apply: ApplySettings;
}

/** A SavingsPolicy's spec.apply with the CRD's defaults filled in; durations in seconds. */
export interface ApplySettings {
  actions: readonly Optimization[];
  requireApproval: boolean;
  maxConcurrent: number;
  cooldownSeconds: number;
  progressTimeoutSeconds: number;
  rollbackOnFailure: boolean;
  allowGitOpsManaged: boolean;
}

/** Facts about the cluster shared by every workload. */
export interface ClusterFacts {
  /** Region of the nodes (topology.kubernetes.io/region); the price lookup region. */
  region?: string;
  zones: readonly string[];
  architectures: readonly string[];
  capacityTypes: readonly CapacityType[];
  /** Capacity-type label schemes the nodes use (empty when no node carries one). */
  capacityLabelSchemes: readonly CapacityLabelScheme[];
  /** Taints on Spot nodes and on arm64 nodes (deduplicated, sorted), to tolerate in patches. */
  spotNodeTaints: readonly Taint[];
  arm64NodeTaints: readonly Taint[];
  /** Kubernetes minor version (e.g. 34 for 1.34), when known; picks the cross-zone fix. */
  kubernetesMinor?: number;
}

/** The object that controls a workload (a custom resource, another operator's object). */
export interface OwnerFacts {
  kind: string;
  name: string;
  apiVersion?: string;
}

export interface WorkloadFacts {
  kind: WorkloadKind;
  name: string;
  namespace: string;
  uid?: string;
  /**
   * Its controlling ownerReference (or its only one): that object writes the workload's spec
   * and would undo kopek's change, so changes go through it and Apply leaves the workload alone.
   */
  owner?: OwnerFacts;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  /** The workload's pod selector labels (matchLabels), used in suggested spreads. */
  selector: Readonly<Record<string, string>>;
  /** spec.replicas (Job: parallelism); DaemonSets: the number of pods. */
  replicas: number;
  hpa?: HpaFacts;
  template: PodTemplateFacts;
  job?: JobFacts;
  /** Its pods that run now (scheduled, not finished). */
  pods: readonly PodFacts[];
  pdb?: PdbFacts;
  /** Image reference (as written in the pod template) → platforms; absent when not looked up. */
  imagePlatforms: Readonly<Record<string, ImagePlatformsFact>>;
  services: readonly ServiceFacts[];
  /**
   * Measured cross-zone bytes per month of this workload that no Service of it carries (no
   * routed Service, traffic between its own pods, peers telemetry could not name).
   */
  measuredCrossZoneBytesPerMonth?: number;
  /** Traffic telemetry, when a source is configured: what it measured, or why it could not. */
  traffic?: TrafficFact;
  /** Live Spot placement score (1–10) for the types it would use, when known. */
  spotPlacementScore?: number;
  cluster: ClusterFacts;
  policy: ResolvedPolicy;
}

/** HPA minReplicas when an HPA scales the workload, else spec.replicas. */
export function effectiveReplicas(facts: WorkloadFacts): number {
  return facts.hpa?.minReplicas ?? facts.replicas;
}
