/**
 * kopek as production runs it: `kopek run` in a process of its own, with the chart's
 * ServiceAccount, and what the benchmark reads from outside it: memory and CPU from /proc
 * (which a busy event loop cannot delay), heap and request counters from /metrics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Component, waitUntil } from '../../cluster/process.ts';
import { freePort } from '../../support/ports.ts';
import { childrenOf } from '../../support/proc.ts';
import { processCpu } from './machine-cpu.ts';
import type { MemoryCgroup } from './memory-limit.ts';

export interface KopekProcess {
  component: Component;
  metricsUrl: string;
  /** When the process was started (ms since the epoch). */
  startedAt: number;
  /** The Node process itself (the component's pid is its guard shell). */
  pid: number;
  logPath: string;
}

export interface StartKopekOptions {
  kubeconfig: string;
  registryHost: string;
  dir: string;
  /** The `kopek` CLI to run: compiled as the image runs it, or the TypeScript sources. */
  cli: string;
  /** Flags for Node itself, e.g. --cpu-prof. */
  nodeFlags?: readonly string[];
  /** Added to the environment kopek inherits, e.g. MALLOC_ARENA_MAX. */
  env?: Readonly<Record<string, string>>;
  /** The memory cgroup to start kopek in, as its pod's limit would. */
  memoryCgroup?: MemoryCgroup;
}

export async function startKopek(options: StartKopekOptions): Promise<KopekProcess> {
  const port = await freePort();
  const logPath = join(options.dir, 'kopek.log');
  const node = {
    command: process.execPath,
    args: [
      ...(options.nodeFlags ?? []),
      options.cli,
      'run',
      '--kubeconfig',
      options.kubeconfig,
      '--metrics-bind-address',
      `127.0.0.1:${port}`,
      // The benchmark scrapes /metrics itself, over plain HTTP.
      '--metrics-secure=false',
      '--leader-election-namespace',
      'kopek',
      '--insecure-registries',
      options.registryHost,
    ],
  };
  const component = new Component({
    name: 'kopek',
    ...(options.memoryCgroup ? options.memoryCgroup.wrap(node.command, node.args) : node),
    logPath,
    env: { ...process.env, ...options.env },
  });
  const startedAt = Date.now();
  component.start();
  let pid: number | undefined;
  await waitUntil(
    component,
    'started Node',
    () => {
      pid = childrenOf(component.pid ?? 0)[0];
      return Promise.resolve(pid !== undefined);
    },
    10_000,
  );
  return {
    component,
    metricsUrl: `http://127.0.0.1:${port}`,
    startedAt,
    pid: pid ?? 0,
    logPath,
  };
}

/** Resident memory now and its high-water mark, in bytes (0 once the process is gone). */
export function residentMemory(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string): number =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib('VmRSS'), peak: kib('VmHWM') };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** CPU seconds (user + system) the process has used so far (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  return processCpu(pid)?.seconds ?? 0;
}

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (what the benchmark reads of it). */
export function parseMetrics(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key = '', value = ''] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key] = value;
    out.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return out;
}

export async function scrape(metricsUrl: string, timeoutMs = 10_000): Promise<Series[]> {
  const response = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  return parseMetrics(await response.text());
}

export function sum(
  series: readonly Series[],
  name: string,
  where: (s: Series) => boolean = () => true,
): number {
  return series.filter((s) => s.name === name && where(s)).reduce((total, s) => total + s.value, 0);
}

export interface MemoryStats {
  peakRss: number;
  peakHeap: number;
  rss: number;
  heap: number;
}

/**
 * Samples the process: resident memory from /proc every second, heap used from /metrics every
 * `heapEverySeconds` (rendering /metrics costs kopek CPU: per-workload series). A /metrics that
 * does not answer within the interval (event loop busy) is a missed heap sample.
 */
export class MemorySampler {
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;
  private readonly window: MemoryStats = { peakRss: 0, peakHeap: 0, rss: 0, heap: 0 };
  readonly overall: MemoryStats = { peakRss: 0, peakHeap: 0, rss: 0, heap: 0 };
  missedHeapSamples = 0;
  private readonly kopek: KopekProcess;

  constructor(kopek: KopekProcess, heapEverySeconds = 5) {
    this.kopek = kopek;
    this.timer = setInterval(() => {
      const { rss, peak } = residentMemory(kopek.pid);
      for (const stats of [this.window, this.overall]) {
        stats.rss = rss;
        stats.peakRss = Math.max(stats.peakRss, peak);
      }
      if (this.ticks++ % heapEverySeconds === 0) void this.sampleHeap(heapEverySeconds * 1000);
    }, 1000);
    this.timer.unref();
  }

  private async sampleHeap(timeoutMs: number): Promise<void> {
    try {
      const heap = sum(
        await scrape(this.kopek.metricsUrl, timeoutMs),
        'nodejs_heap_size_used_bytes',
      );
      for (const stats of [this.window, this.overall]) {
        stats.heap = heap;
        stats.peakHeap = Math.max(stats.peakHeap, heap);
      }
    } catch {
      this.missedHeapSamples++;
    }
  }

  /** The stats since the last call (peaks of RSS are the kernel's high-water mark: whole life). */
  takeWindow(): MemoryStats {
    const taken = { ...this.window };
    this.window.peakHeap = this.window.heap;
    return taken;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Waits until kopek answers /readyz. */
export async function waitReady(kopek: KopekProcess, timeoutMs: number): Promise<void> {
  await waitUntil(
    kopek.component,
    'became ready',
    async () => (await fetch(`${kopek.metricsUrl}/readyz`)).ok,
    timeoutMs,
  );
}

/**
 * Where a process's resident memory is, from /proc/PID/smaps, in bytes: file-backed pages
 * (Node's code), glibc malloc's main arena (`[heap]`) and its other arenas, and the remaining
 * anonymous memory (V8's heap and code, thread stacks, malloc's large mmapped blocks).
 */
export interface ResidentByKind {
  file: number;
  mallocMainArena: number;
  mallocOtherArenas: number;
  /** How many arenas besides the main one (MALLOC_ARENA_MAX bounds it). */
  mallocOtherArenaCount: number;
  otherAnonymous: number;
}

/**
 * glibc maps each arena past the main one as a 64 MiB region aligned to its size, readable and
 * writable as far as it has grown and inaccessible beyond (HEAP_MAX_SIZE on 64-bit systems).
 */
const ARENA_BYTES = 64 * 1024 * 1024;

export function residentByKind(smaps: string): ResidentByKind {
  interface Mapping {
    start: number;
    end: number;
    perms: string;
    path: string;
    inode: string;
    rss: number;
  }
  const mappings: Mapping[] = [];
  for (const line of smaps.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      mappings.push({
        start: parseInt(header[1] ?? '0', 16),
        end: parseInt(header[2] ?? '0', 16),
        perms: header[3] ?? '',
        inode: header[4] ?? '0',
        path: header[5] ?? '',
        rss: 0,
      });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    const last = mappings.at(-1);
    if (rss && last) last.rss = Number(rss[1]) * 1024;
  }
  const kinds: ResidentByKind = {
    file: 0,
    mallocMainArena: 0,
    mallocOtherArenas: 0,
    mallocOtherArenaCount: 0,
    otherAnonymous: 0,
  };
  mappings.forEach((m, i) => {
    const next = mappings[i + 1];
    const arena =
      m.inode === '0' &&
      m.path === '' &&
      m.perms.startsWith('rw') &&
      m.start % ARENA_BYTES === 0 &&
      (m.end - m.start === ARENA_BYTES ||
        (next?.start === m.end &&
          next.perms.startsWith('---') &&
          next.end - m.start === ARENA_BYTES));
    if (m.inode !== '0') kinds.file += m.rss;
    else if (m.path === '[heap]') kinds.mallocMainArena += m.rss;
    else if (arena) {
      kinds.mallocOtherArenas += m.rss;
      kinds.mallocOtherArenaCount++;
    } else kinds.otherAnonymous += m.rss;
  });
  return kinds;
}

/** residentByKind of a running process, or undefined once it is gone. */
export function residentByKindOf(pid: number): ResidentByKind | undefined {
  try {
    return residentByKind(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
  } catch {
    return undefined;
  }
}
