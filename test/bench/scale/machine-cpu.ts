/**
 * Where the machine's CPU went during a phase: every process's CPU time by name, and the idle
 * time, from /proc. On a small machine kopek shares its cores with the API server, etcd, the
 * controllers, KWOK and the benchmark itself; this says which of them was busy.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

const TICKS_PER_SECOND = 100;

/**
 * CPU seconds of each process at one moment, by `pid/start time` (a pid reused during a phase is
 * another process), and the machine's idle seconds since boot.
 */
export interface CpuSnapshot {
  at: number;
  idleSeconds: number;
  byProcess: Map<string, { name: string; seconds: number }>;
}

/** The phase's CPU: seconds by process name (biggest first), idle seconds, wall time × cores. */
export interface CpuSplit {
  wallSeconds: number;
  cores: number;
  idleSeconds: number;
  /** Processes that exited during the phase are missing (their time is not in /proc). */
  bySeconds: [name: string, seconds: number][];
}

/** Names some processes by role: kopek and the benchmark are both `node`. */
export type ProcessNames = ReadonlyMap<number, string>;

/** A process's command name and CPU seconds (user + system) so far; undefined once it is gone. */
export function processCpu(
  pid: number,
): { name: string; seconds: number; startTicks: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces: it is what stands between the first ( and the last ).
  const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  // Fields after the name start at state; utime, stime and starttime are its 12th, 13th, 20th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    name,
    seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
    startTicks: Number(fields[19]),
  };
}

export function cpuSnapshot(names: ProcessNames = new Map()): CpuSnapshot {
  const byProcess: CpuSnapshot['byProcess'] = new Map();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const used = processCpu(pid);
    if (used)
      byProcess.set(`${pid}/${used.startTicks}`, {
        name: names.get(pid) ?? used.name,
        seconds: used.seconds,
      });
  }
  // The first line of /proc/stat: user nice system idle iowait … in ticks, over all cores.
  const total = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/) ?? [];
  const idleSeconds = (Number(total[4] ?? 0) + Number(total[5] ?? 0)) / TICKS_PER_SECOND;
  return { at: performance.now(), idleSeconds, byProcess };
}

/** The CPU each process name used between two snapshots. */
export function cpuSplit(before: CpuSnapshot, after: CpuSnapshot): CpuSplit {
  const byName = new Map<string, number>();
  for (const [process, now] of after.byProcess) {
    // A process started during the phase counts from zero.
    const used = now.seconds - (before.byProcess.get(process)?.seconds ?? 0);
    if (used > 0) byName.set(now.name, (byName.get(now.name) ?? 0) + used);
  }
  return {
    wallSeconds: (after.at - before.at) / 1000,
    cores: availableParallelism(),
    idleSeconds: after.idleSeconds - before.idleSeconds,
    bySeconds: [...byName].sort(([, a], [, b]) => b - a),
  };
}

/** "kube-apiserver 61.2 s, etcd 20.1 s, …, 5 more 1.0 s; idle 3.1 s of 2 × 60.0 s". */
export function formatCpuSplit(split: CpuSplit, top = 7): string {
  const shown = split.bySeconds.slice(0, top);
  const rest = split.bySeconds.slice(top).reduce((sum, [, seconds]) => sum + seconds, 0);
  const parts = shown.map(([name, seconds]) => `${name} ${seconds.toFixed(1)} s`);
  if (split.bySeconds.length > top)
    parts.push(`${split.bySeconds.length - top} more ${rest.toFixed(1)} s`);
  return `${parts.join(', ')}; idle ${split.idleSeconds.toFixed(1)} s of ${split.cores} × ${split.wallSeconds.toFixed(1)} s`;
}
