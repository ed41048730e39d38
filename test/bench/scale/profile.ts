#!/usr/bin/env node
/**
 * Reads what `node --cpu-prof` and a heap snapshot wrote and says where the time and the memory
 * go: the top frames by self and by total time, and the dominator tree of the heap (what keeps
 * the most memory alive, and through which fields).
 *
 *   node test/bench/scale/profile.ts FILE.cpuprofile|FILE.heapsnapshot ...
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MiB = 2 ** 20;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  /** µs from the previous sample (the first: from startTime). */
  timeDeltas?: number[];
}

function where(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  const path = frame.url.startsWith('file://')
    ? relative(ROOT, fileURLToPath(frame.url))
    : frame.url;
  return `${name} ${path}:${frame.lineNumber + 1}`;
}

export interface FrameTime {
  frame: string;
  selfMs: number;
  totalMs: number;
}

/** A span of the monotonic clock, in µs (V8's profile timestamps and `process.hrtime` share it). */
export interface TimeWindow {
  startUs: number;
  endUs: number;
}

/** Hits per node of the samples taken inside `window`. */
function hitsIn(profile: CpuProfile, window: TimeWindow): Map<number, number> {
  const hits = new Map<number, number>();
  let at = profile.startTime;
  (profile.samples ?? []).forEach((id, i) => {
    at += profile.timeDeltas?.[i] ?? 0;
    if (at >= window.startUs && at <= window.endUs) hits.set(id, (hits.get(id) ?? 0) + 1);
  });
  return hits;
}

/**
 * Self and total (inclusive, recursion counted once) time per function, largest first; with a
 * window, only the samples taken inside it.
 */
export function cpuFrames(
  profile: CpuProfile,
  window?: TimeWindow,
): { wallMs: number; frames: FrameTime[] } {
  const windowHits = window ? hitsIn(profile, window) : undefined;
  const hitCount = (node: ProfileNode): number =>
    windowHits ? (windowHits.get(node.id) ?? 0) : (node.hitCount ?? 0);
  const wallMs = window
    ? (Math.min(window.endUs, profile.endTime) - Math.max(window.startUs, profile.startTime)) / 1000
    : (profile.endTime - profile.startTime) / 1000;
  const hits = profile.nodes.reduce((n, node) => n + hitCount(node), 0);
  const msPerHit = hits > 0 ? wallMs / hits : 0;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Set(profile.nodes.flatMap((node) => node.children ?? []));
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  // Depth-first with the frames on the stack, so a node's hits count once for each distinct frame above it.
  const onStack = new Map<string, number>();
  const visit = (node: ProfileNode): number => {
    const frame = where(node.callFrame);
    onStack.set(frame, (onStack.get(frame) ?? 0) + 1);
    let subtree = hitCount(node);
    self.set(frame, (self.get(frame) ?? 0) + subtree);
    for (const child of node.children ?? []) {
      const next = byId.get(child);
      if (next) subtree += visit(next);
    }
    const depth = onStack.get(frame) ?? 1;
    if (depth === 1) {
      onStack.delete(frame);
      total.set(frame, (total.get(frame) ?? 0) + subtree);
    } else onStack.set(frame, depth - 1);
    return subtree;
  };
  for (const node of profile.nodes) if (!parents.has(node.id)) visit(node);
  const frames = [...self.keys()].map((frame) => ({
    frame,
    selfMs: (self.get(frame) ?? 0) * msPerHit,
    totalMs: (total.get(frame) ?? 0) * msPerHit,
  }));
  return { wallMs, frames };
}

export function summarizeCpuProfile(path: string, top = 25, window?: TimeWindow): string {
  const { wallMs, frames } = cpuFrames(
    JSON.parse(readFileSync(path, 'utf8')) as CpuProfile,
    window,
  );
  const line = (f: FrameTime, ms: number): string =>
    `  ${(ms / 1000).toFixed(2).padStart(8)} s ${((100 * ms) / wallMs).toFixed(1).padStart(5)}%  ${f.frame}`;
  return [
    `CPU profile ${path}: ${(wallMs / 1000).toFixed(1)} s of wall time sampled${window ? ' (a window of it)' : ''}`,
    'Top frames by self time:',
    ...[...frames]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top)
      .map((f) => line(f, f.selfMs)),
    'Top frames by total time (including callees):',
    ...[...frames]
      .filter((f) => !f.frame.startsWith('(root)'))
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, top)
      .map((f) => line(f, f.totalMs)),
  ].join('\n');
}

interface HeapSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** A graph as CSR: node n's edges are firstEdge[n] … firstEdge[n + 1] - 1, leading to targets[e]. */
interface Graph {
  count: number;
  firstEdge: Uint32Array;
  targets: Uint32Array;
  /** Edges that keep their target alive (not weak ones). */
  followed: (edge: number) => boolean;
}

/** Post-order of the nodes reachable from node 0 (explicit stack: the heap graph is deep). */
function postorderFrom0(graph: Graph): {
  order: Int32Array;
  postorder: Uint32Array;
  visited: number;
} {
  const { count, firstEdge, targets, followed } = graph;
  const order = new Int32Array(count).fill(-1);
  const postorder = new Uint32Array(count);
  const stack = new Uint32Array(count);
  const cursor = new Uint32Array(count);
  const seen = new Uint8Array(count);
  let visited = 0;
  let top = 0;
  stack[top++] = 0;
  seen[0] = 1;
  cursor[0] = firstEdge[0] ?? 0;
  while (top > 0) {
    const node = stack[top - 1] ?? 0;
    const end = firstEdge[node + 1] ?? 0;
    let next = -1;
    for (let edge = cursor[node] ?? 0; edge < end && next === -1; edge++) {
      cursor[node] = edge + 1;
      const to = targets[edge] ?? 0;
      if (followed(edge) && !seen[to]) next = to;
    }
    if (next === -1) {
      top--;
      order[node] = visited;
      postorder[visited++] = node;
      continue;
    }
    seen[next] = 1;
    cursor[next] = firstEdge[next] ?? 0;
    stack[top++] = next;
  }
  return { order, postorder, visited };
}

/** Predecessors of every reached node, as CSR (first[n] … first[n + 1] - 1 into preds). */
function predecessors(graph: Graph, order: Int32Array): { first: Uint32Array; preds: Uint32Array } {
  const { count, firstEdge, targets, followed } = graph;
  const first = new Uint32Array(count + 1);
  const each = (visit: (to: number, from: number) => void): void => {
    for (let node = 0; node < count; node++) {
      if (order[node] === -1) continue;
      for (let edge = firstEdge[node] ?? 0; edge < (firstEdge[node + 1] ?? 0); edge++)
        if (followed(edge)) visit(targets[edge] ?? 0, node);
    }
  };
  each((to) => {
    first[to + 1] = (first[to + 1] ?? 0) + 1;
  });
  for (let i = 0; i < count; i++) first[i + 1] = (first[i + 1] ?? 0) + (first[i] ?? 0);
  const preds = new Uint32Array(first[count] ?? 0);
  const fill = first.slice(0, count);
  each((to, from) => {
    const at = fill[to] ?? 0;
    preds[at] = from;
    fill[to] = at + 1;
  });
  return { first, preds };
}

/**
 * Immediate dominators (-1: unreachable) by the iterative algorithm of Cooper, Harvey and
 * Kennedy over the reverse post-order from node 0.
 */
function dominators(graph: Graph): Int32Array {
  const { order, postorder, visited } = postorderFrom0(graph);
  const { first, preds } = predecessors(graph, order);
  const idom = new Int32Array(graph.count).fill(-1);
  idom[0] = 0;
  const rank = (n: number): number => order[n] ?? 0;
  const intersect = (a: number, b: number): number => {
    let x = a;
    let y = b;
    while (x !== y) {
      while (rank(x) < rank(y)) x = idom[x] ?? 0;
      while (rank(y) < rank(x)) y = idom[y] ?? 0;
    }
    return x;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let i = visited - 2; i >= 0; i--) {
      const node = postorder[i] ?? 0;
      let next = -1;
      for (let p = first[node] ?? 0; p < (first[node + 1] ?? 0); p++) {
        const pred = preds[p] ?? 0;
        if (idom[pred] !== -1) next = next === -1 ? pred : intersect(pred, next);
      }
      if (next !== -1 && idom[node] !== next) {
        idom[node] = next;
        changed = true;
      }
    }
  }
  return idom;
}

/** A heap snapshot's object graph, with what the summary reads of each node and edge. */
interface HeapGraph extends Graph {
  selfSize: (n: number) => number;
  /** The constructor's name for objects and closures, the node type otherwise. */
  label: (n: number) => string;
  /** The name of an edge from `from` to `to`, if there is one. */
  edgeName: (from: number, to: number) => string | undefined;
  /**
   * An object's constructor and its first property names (`Object{kind,meta,raw}`); undefined
   * for what is not an object.
   */
  shape: (n: number) => string | undefined;
  /**
   * The size of an object's out-of-object property block: properties added after the object was
   * made (beyond its in-object slots) live there, a second allocation for every such object (or
   * in a dictionary, for an object V8 turned slow).
   */
  propertyBlockSize: (n: number) => number;
}

function heapGraph(snapshot: HeapSnapshot): HeapGraph {
  const { meta } = snapshot.snapshot;
  const nodeFields = meta.node_fields.length;
  const edgeFields = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const fType = meta.node_fields.indexOf('type');
  const fName = meta.node_fields.indexOf('name');
  const fSize = meta.node_fields.indexOf('self_size');
  const fEdges = meta.node_fields.indexOf('edge_count');
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const { nodes, edges, strings } = snapshot;
  const count = nodes.length / nodeFields;
  const firstEdge = new Uint32Array(count + 1);
  for (let n = 0; n < count; n++)
    firstEdge[n + 1] = (firstEdge[n] ?? 0) + (nodes[n * nodeFields + fEdges] ?? 0);
  const edgeCount = edges.length / edgeFields;
  const targets = new Uint32Array(edgeCount);
  for (let e = 0; e < edgeCount; e++) targets[e] = (edges[e * edgeFields + eTo] ?? 0) / nodeFields;
  const weak = edgeTypes.indexOf('weak');
  const shortcut = edgeTypes.indexOf('shortcut');
  const typeOf = (n: number): string => nodeTypes[nodes[n * nodeFields + fType] ?? 0] ?? '?';
  const nameOf = (n: number): string => strings[nodes[n * nodeFields + fName] ?? 0] ?? '';
  const property = edgeTypes.indexOf('property');
  const internal = edgeTypes.indexOf('internal');
  const edgesOf = function* (n: number): Generator<{ type: number; name: string; to: number }> {
    for (let e = firstEdge[n] ?? 0; e < (firstEdge[n + 1] ?? 0); e++)
      yield {
        type: edges[e * edgeFields + eType] ?? 0,
        name: strings[edges[e * edgeFields + eName] ?? 0] ?? '',
        to: targets[e] ?? 0,
      };
  };
  const selfSize = (n: number): number => nodes[n * nodeFields + fSize] ?? 0;
  return {
    count,
    firstEdge,
    targets,
    followed: (edge) => {
      const type = edges[edge * edgeFields + eType];
      return type !== weak && type !== shortcut;
    },
    selfSize,
    label: (n) => {
      const type = typeOf(n);
      if (type === 'object' || type === 'closure' || type === 'synthetic' || type === 'native')
        return nameOf(n).slice(0, 60) || `(${type})`;
      return `(${type})`;
    },
    edgeName: (from, to) => {
      for (let e = firstEdge[from] ?? 0; e < (firstEdge[from + 1] ?? 0); e++) {
        if (targets[e] !== to) continue;
        const type = edgeTypes[edges[e * edgeFields + eType] ?? 0];
        const name = edges[e * edgeFields + eName] ?? 0;
        return type === 'element' || type === 'hidden' ? `[${name}]` : (strings[name] ?? '');
      }
      return undefined;
    },
    shape: (n) => {
      if (typeOf(n) !== 'object') return undefined;
      const names: string[] = [];
      for (const edge of edgesOf(n))
        if (edge.type === property && edge.name !== '__proto__' && names.length < 6)
          names.push(edge.name);
      return `${nameOf(n).slice(0, 30)}{${names.join(',')}}`;
    },
    propertyBlockSize: (n) => {
      for (const edge of edgesOf(n))
        // A property block, or the dictionary of an object whose properties went slow.
        if (
          edge.type === internal &&
          edge.name === 'properties' &&
          (nameOf(edge.to) === 'system / PropertyArray' ||
            nameOf(edge.to) === '(object properties)')
        )
          return selfSize(edge.to);
      return 0;
    },
  };
}

/** Retained sizes over the dominator tree, and each node's children in it. */
function retainedSizes(graph: HeapGraph): {
  retained: Float64Array;
  children: Map<number, number[]>;
} {
  const { count } = graph;
  const idom = dominators(graph);
  const retained = new Float64Array(count);
  for (let n = 0; n < count; n++) retained[n] = graph.selfSize(n);
  // Children after parents in reverse post-order is not at hand; sum up by depth instead.
  const depth = new Int32Array(count).fill(-1);
  depth[0] = 0;
  const depthOf = (n: number): number => {
    const chain: number[] = [];
    let x = n;
    while ((depth[x] ?? -1) === -1) {
      chain.push(x);
      x = idom[x] ?? 0;
      if (x === -1) return -1;
    }
    let d = depth[x] ?? 0;
    for (let i = chain.length - 1; i >= 0; i--) depth[chain[i] ?? 0] = ++d;
    return depth[n] ?? 0;
  };
  const reachable: number[] = [];
  for (let n = 0; n < count; n++) if ((idom[n] ?? -1) !== -1 && depthOf(n) >= 0) reachable.push(n);
  reachable.sort((a, b) => (depth[b] ?? 0) - (depth[a] ?? 0));
  for (const n of reachable)
    if (n !== 0) retained[idom[n] ?? 0] = (retained[idom[n] ?? 0] ?? 0) + (retained[n] ?? 0);
  const children = new Map<number, number[]>();
  for (const n of reachable) {
    if (n === 0) continue;
    const parent = idom[n] ?? 0;
    const list = children.get(parent) ?? [];
    list.push(n);
    children.set(parent, list);
  }
  return { retained, children };
}

export function summarizeHeapSnapshot(
  path: string,
  options: { top?: number; depth?: number } = {},
): string {
  const graph = heapGraph(JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot);
  const { count, firstEdge, label } = graph;

  // Self size by constructor, and of objects by shape with their property blocks.
  let totalSize = 0;
  const byClass = new Map<string, { size: number; count: number }>();
  const byShape = new Map<string, { size: number; count: number; blocks: number }>();
  for (let n = 0; n < count; n++) {
    const size = graph.selfSize(n);
    totalSize += size;
    const key = label(n);
    const entry = byClass.get(key) ?? { size: 0, count: 0 };
    entry.size += size;
    entry.count++;
    byClass.set(key, entry);
    const shape = graph.shape(n);
    if (shape === undefined) continue;
    const blocks = graph.propertyBlockSize(n);
    const ofShape = byShape.get(shape) ?? { size: 0, count: 0, blocks: 0 };
    ofShape.size += size + blocks;
    ofShape.blocks += blocks;
    ofShape.count++;
    byShape.set(shape, ofShape);
  }

  const { retained, children } = retainedSizes(graph);
  const threshold = Math.max(MiB, totalSize * 0.01);
  const lines: string[] = [];
  const walk = (n: number, level: number): void => {
    const kids = (children.get(n) ?? []).filter((c) => (retained[c] ?? 0) >= threshold);
    kids.sort((a, b) => (retained[b] ?? 0) - (retained[a] ?? 0));
    for (const c of kids.slice(0, 8)) {
      const via = graph.edgeName(n, c);
      const entries = (firstEdge[c + 1] ?? 0) - (firstEdge[c] ?? 0);
      lines.push(
        `  ${((retained[c] ?? 0) / MiB).toFixed(1).padStart(8)} MiB ${'  '.repeat(level)}${via !== undefined ? `${via} → ` : '… → '}${label(c)} (${entries} refs)`,
      );
      if (level < (options.depth ?? 10)) walk(c, level + 1);
    }
  };
  walk(0, 0);
  const top = options.top ?? 20;
  return [
    `Heap snapshot ${path}: ${(totalSize / MiB).toFixed(1)} MiB in ${count.toLocaleString('en-US')} objects`,
    'Top constructors by self size:',
    ...[...byClass]
      .sort(([, a], [, b]) => b.size - a.size)
      .slice(0, top)
      .map(
        ([name, { size, count: n }]) =>
          `  ${(size / MiB).toFixed(1).padStart(8)} MiB ${n.toLocaleString('en-US').padStart(10)} × ${name}`,
      ),
    'Top objects by shape (constructor and first properties; size with their property blocks, which properties added after an object was made take):',
    ...[...byShape]
      .sort(([, a], [, b]) => b.size - a.size)
      .slice(0, top)
      .map(
        ([shape, { size, count: n, blocks }]) =>
          `  ${(size / MiB).toFixed(1).padStart(8)} MiB ${n.toLocaleString('en-US').padStart(10)} × ${shape}${blocks > 0 ? ` (property blocks ${(blocks / MiB).toFixed(1)} MiB)` : ''}`,
      ),
    `Top retainers (dominator tree, objects retaining ≥ ${(threshold / MiB).toFixed(1)} MiB; "a → b": field a of the dominator holds b):`,
    ...lines,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const path of process.argv.slice(2)) {
    console.log(
      path.endsWith('.heapsnapshot') ? summarizeHeapSnapshot(path) : summarizeCpuProfile(path),
    );
  }
}
