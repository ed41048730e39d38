/**
 * Runs kopek under a memory limit as its pod does: a memory cgroup of its own with the chart's
 * limit. Node sizes its heap from the cgroup's limit when it starts (a 512 MiB limit gives a
 * heap limit of ~260 MiB against ~4 GiB on this machine without one), so a process started
 * outside one collects garbage on another schedule and shows another peak than the pod would.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartDefaults } from '../../support/chart-values.ts';

const UNITS: Record<string, number> = {
  '': 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  k: 1000,
  M: 1000 ** 2,
  G: 1000 ** 3,
};

/** A Kubernetes memory quantity (512Mi, 1G, 268435456) in bytes. */
export function parseMemoryQuantity(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(text.trim());
  const unit = UNITS[match?.[2] ?? ''];
  if (!match || unit === undefined)
    throw new Error(`"${text}" is not a memory quantity such as 512Mi`);
  return Math.round(Number(match[1]) * unit);
}

/** The chart's default memory limit for the kopek container, in bytes. */
export function chartMemoryLimit(valuesYaml?: string): number {
  const limit = chartDefaults(valuesYaml).memoryLimit;
  if (limit === undefined) throw new Error('the chart sets no resources.limits.memory');
  return parseMemoryQuantity(limit);
}

/** A `--memory-limit` flag's value: a quantity (512Mi), `chart` (the chart's limit) or `none`. */
export type MemoryLimitOption = number | 'chart' | 'none';

export function parseMemoryLimitOption(text: string): MemoryLimitOption {
  return text === 'none' || text === 'chart' ? text : parseMemoryQuantity(text);
}

/**
 * The memory cgroup a kopek process runs in for `asked`, or why it runs without one: `none`
 * asked for none, and `chart` runs without one where no cgroup can be made (not root); a limit
 * asked for by size must be had.
 */
export function kopekMemoryCgroup(
  name: string,
  asked: MemoryLimitOption,
): { cgroup: MemoryCgroup } | { none: string } {
  if (asked === 'none') return { none: '--memory-limit none' };
  const bytes = asked === 'chart' ? chartMemoryLimit() : asked;
  try {
    return { cgroup: MemoryCgroup.create(name, bytes) };
  } catch (error) {
    if (asked !== 'chart') throw error;
    return { none: error instanceof Error ? error.message : String(error) };
  }
}

/** A memory cgroup holding one process, cgroup v2 or v1, whichever this machine mounts. */
export class MemoryCgroup {
  readonly dir: string;
  readonly version: 1 | 2;
  readonly limitBytes: number;

  private constructor(dir: string, version: 1 | 2, limitBytes: number) {
    this.dir = dir;
    this.version = version;
    this.limitBytes = limitBytes;
  }

  /** Creates the cgroup, or says why it cannot (not root, no memory controller). */
  static create(name: string, limitBytes: number): MemoryCgroup {
    const v2 = '/sys/fs/cgroup';
    const v1 = '/sys/fs/cgroup/memory';
    const hasV2Memory =
      existsSync(join(v2, 'cgroup.subtree_control')) &&
      readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('memory');
    const [root, version] = hasV2Memory
      ? ([v2, 2] as const)
      : existsSync(join(v1, 'memory.limit_in_bytes'))
        ? ([v1, 1] as const)
        : ([undefined, 1] as const);
    if (root === undefined)
      throw new Error('no memory cgroup controller is mounted (cgroup v2 with memory, or v1)');
    const dir = join(root, name);
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, version === 2 ? 'memory.max' : 'memory.limit_in_bytes'),
        String(limitBytes),
      );
    } catch (error) {
      throw new Error(
        `cannot create the memory cgroup ${dir} (it needs root): ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    return new MemoryCgroup(dir, version, limitBytes);
  }

  /**
   * A command that runs `command args…` inside the cgroup: a shell that moves itself in and
   * then becomes the command, so the process starts (and sizes its heap) inside the limit.
   */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] } {
    return {
      command: 'sh',
      args: [
        '-c',
        `echo $$ > ${join(this.dir, 'cgroup.procs')} && exec "$@"`,
        'in-cgroup',
        command,
        ...args,
      ],
    };
  }

  /** How many times the kernel's OOM killer killed a process of the cgroup. */
  oomKills(): number {
    const text = readFileSync(
      join(this.dir, this.version === 2 ? 'memory.events' : 'memory.oom_control'),
      'utf8',
    );
    return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0);
  }

  /** Removes the cgroup (it must be empty: its process has exited). */
  remove(): void {
    try {
      rmdirSync(this.dir);
    } catch {
      // still in use or already gone
    }
  }
}
