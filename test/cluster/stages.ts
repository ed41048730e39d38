/**
 * KWOK Stages that replace KWOK's built-in pod lifecycle for a test: pods start Ready, a Job's
 * pods then complete, and pods are deleted when asked (as by default), except those a test marks
 * to crash-loop or to hold on their way out. KWOK plays the pod Stages of its `--config` instead
 * of its defaults, so the ordinary ones are listed too.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

interface Selector {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

function podStage(
  name: string,
  matchExpressions: Selector[],
  next: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name },
    spec: {
      resourceRef: { apiGroup: 'v1', kind: 'Pod' },
      selector: { matchExpressions },
      ...extra,
      next,
    },
  };
}

const NOT_DELETED: Selector = { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' };
const POD_IP =
  '{{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}';

/** A scheduled pod becomes Running and Ready with every container started. */
const READY = podStage(
  'pod-ready',
  [NOT_DELETED, { key: '.status.podIP', operator: 'DoesNotExist' }],
  {
    statusTemplate: `{{ $now := Now }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, started: true, restartCount: 0, state: {running: {startedAt: {{ $now | Quote }}}}}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: ${POD_IP}
phase: Running
startTime: {{ $now | Quote }}
`,
  },
);

/**
 * The Ready and ContainersReady conditions (False, for `reason`) and the container statuses of a
 * pod none of whose containers is ready or started: each with `restartCount` and the lines of
 * `state` (its state, last state). Lines of a statusTemplate where `$now` is set.
 */
function notReadyContainers(
  reason: string,
  restartCount: string,
  state: readonly string[],
): string {
  return `- {type: Ready, status: "False", reason: ${reason}, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ${reason}, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: ${restartCount}
${state.map((line) => `  ${line}`).join('\n')}
{{ end }}`;
}

/**
 * A Job's running pod completes a second later, every container exited 0, so the Job controller
 * marks the Job Complete (a CronJob's run ends).
 */
const JOB_DONE = podStage(
  'pod-job-complete',
  [
    NOT_DELETED,
    { key: '.status.phase', operator: 'In', values: ['Running'] },
    { key: '.metadata.ownerReferences.[].kind', operator: 'In', values: ['Job'] },
  ],
  {
    statusTemplate: `{{ $now := Now }}
conditions:
${notReadyContainers('PodCompleted', '0', [
  'state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}',
])}
phase: Succeeded
`,
  },
  { delay: { durationMilliseconds: 1000 } },
);

/**
 * A pod with this label (with a value that is not empty), once deleted, stays on its way out
 * (as behind a slow kubelet) until it is deleted with no grace period.
 */
export const HOLD_ON_DELETE_LABEL = 'kopek_test_hold';

/** A pod being deleted goes at once (no kubelet to wait for), but for one a test holds. */
const DELETE = podStage(
  'pod-delete',
  [
    { key: '.metadata.deletionTimestamp', operator: 'Exists' },
    { key: `.metadata.labels.${HOLD_ON_DELETE_LABEL}`, operator: 'DoesNotExist' },
  ],
  { finalizers: { empty: true }, delete: true },
);

export interface CrashLoop {
  /** Pods with a container of this image crash-loop… */
  image: string;
  /** …on these nodes (e.g. the arm64 ones, for an image that only runs on amd64). */
  nodes: string[];
  /** Between two restarts. */
  everyMs: number;
}

/**
 * The container exits at start and the kubelet restarts it, again and again: never Ready, the
 * restart count growing by one every `everyMs`, waiting in CrashLoopBackOff as a kubelet shows it.
 * Weighted, so it wins over `pod-ready` wherever both match.
 */
function crashLoop(loop: CrashLoop, index: number): Record<string, unknown> {
  return podStage(
    `pod-crash-loop-${index}`,
    [
      NOT_DELETED,
      { key: '.spec.containers.[].image', operator: 'In', values: [loop.image] },
      { key: '.spec.nodeName', operator: 'In', values: loop.nodes },
    ],
    {
      statusTemplate: `{{ $now := Now }}
{{ $restarts := 0 }}
{{ range .status.containerStatuses }}{{ $restarts = int .restartCount }}{{ end }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
${notReadyContainers('ContainersNotReady', '{{ add1 $restarts }}', [
  'state: {waiting: {reason: CrashLoopBackOff, message: "back-off restarting failed container"}}',
  'lastState: {terminated: {exitCode: 1, reason: Error, message: "exec format error", startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}',
])}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: ${POD_IP}
phase: Running
`,
    },
    { weight: 1, delay: { durationMilliseconds: loop.everyMs } },
  );
}

/**
 * Writes a KWOK configuration with these pod Stages into `dir` and returns the flag that makes
 * KWOK play them (for `StartOptions.componentArgs.kwok`).
 */
export async function kwokPodStagesFlag(dir: string, loops: CrashLoop[]): Promise<string> {
  const path = join(dir, 'kwok-stages.yaml');
  const documents = [READY, JOB_DONE, DELETE, ...loops.map(crashLoop)];
  await writeFile(path, documents.map((d) => stringify(d)).join('---\n'));
  return `--config=${path}`;
}
