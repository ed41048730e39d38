/**
 * Running pods → PodFacts: where each pod runs, whether it is ready, which workload it belongs
 * to, and its effective requests as the scheduler counts them.
 */
import type { PodFacts } from '../facts.ts';
import { parseQuantity } from '../quantity.ts';
import { kindList, type Index } from './index.ts';
import type { NodeInfo } from './nodes.ts';
import { workloadOfPod } from './owners.ts';
import { describe, obj, objs, str, type K8s, type Obj } from './read.ts';
import { resourceOf } from './templates.ts';

/** Every field always set (undefined when absent): one block per pod, not two. */
export interface RunningPod {
  pod: K8s;
  node: NodeInfo | undefined;
  ready: boolean;
  workload: string | undefined;
}

export function runningPods(index: Index): RunningPod[] {
  const out: RunningPod[] = [];
  for (const pod of kindList(index, 'Pod')) {
    const entry = runningPod(pod, index);
    if (entry !== undefined) out.push(entry);
  }
  return out;
}

/** One pod as a running pod, or undefined when it is finished or not scheduled. */
export function runningPod(pod: K8s, index: Index): RunningPod | undefined {
  const status = obj(pod.raw.status);
  const phase = str(status.phase);
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  const nodeName = str(obj(pod.raw.spec).nodeName);
  if (nodeName === undefined) return undefined;
  const node = index.nodes.get(nodeName);
  const ready = objs(status.conditions).some((c) => c.type === 'Ready' && c.status === 'True');
  if (node === undefined)
    index.warnings.push(
      `${describe(pod)} runs on node ${nodeName}, which is not in the input; it is not priced`,
    );
  return { pod, node, ready, workload: workloadOfPod(pod, index) };
}

/** A pod's effective requests: max(Σ main + sidecars, each init + sidecars started before it) + overhead. */
function podRequests(
  spec: Obj,
  where: () => string,
  warnings: string[],
): { cpu: number; mem: number } {
  const sum = { cpu: 0, mem: 0 };
  const sidecars = { cpu: 0, mem: 0 };
  const initPeak = { cpu: 0, mem: 0 };
  for (const c of objs(spec.initContainers)) {
    const cw = (): string => `${where()} init container ${str(c.name) ?? ''}`;
    const cpu = resourceOf(c, 'cpu', cw, warnings) ?? 0;
    const mem = resourceOf(c, 'memory', cw, warnings) ?? 0;
    if (c.restartPolicy === 'Always') {
      sidecars.cpu += cpu;
      sidecars.mem += mem;
    } else {
      initPeak.cpu = Math.max(initPeak.cpu, sidecars.cpu + cpu);
      initPeak.mem = Math.max(initPeak.mem, sidecars.mem + mem);
    }
  }
  for (const c of objs(spec.containers)) {
    const cw = (): string => `${where()} container ${str(c.name) ?? ''}`;
    sum.cpu += resourceOf(c, 'cpu', cw, warnings) ?? 0;
    sum.mem += resourceOf(c, 'memory', cw, warnings) ?? 0;
  }
  const overhead = obj(spec.overhead);
  return {
    cpu: Math.max(sum.cpu + sidecars.cpu, initPeak.cpu) + (parseQuantity(overhead.cpu) ?? 0),
    mem: Math.max(sum.mem + sidecars.mem, initPeak.mem) + (parseQuantity(overhead.memory) ?? 0),
  };
}

export function podFacts(p: RunningPod, warnings: string[]): PodFacts {
  // Described only for a warning: a kept pod's metadata is read anew at each use.
  const req = podRequests(obj(p.pod.raw.spec), () => describe(p.pod), warnings);
  return {
    name: p.pod.meta.name,
    node: p.node?.facts,
    ready: p.ready,
    cpuRequestCores: req.cpu,
    memoryRequestBytes: req.mem,
  };
}
