/**
 * The scale benchmark runs kopek in a memory cgroup with the chart's limit: Node must size its
 * heap from that limit, as in the pod, and a process past it must be seen as OOM-killed. Needs
 * root (cgroups); elsewhere the benchmark runs without a limit and says so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  chartMemoryLimit,
  MemoryCgroup,
  parseMemoryQuantity,
} from '../bench/scale/memory-limit.ts';

const MiB = 2 ** 20;
const heapLimitScript =
  "process.stdout.write(String(require('v8').getHeapStatistics().heap_size_limit))";
const isRoot = process.getuid?.() === 0;

describe('memory limits', () => {
  it('reads Kubernetes quantities and the chart limit', () => {
    expect(parseMemoryQuantity('512Mi')).toBe(512 * MiB);
    expect(parseMemoryQuantity('1.5Gi')).toBe(1.5 * 1024 * MiB);
    expect(parseMemoryQuantity('500M')).toBe(500_000_000);
    expect(parseMemoryQuantity('1048576')).toBe(MiB);
    expect(() => parseMemoryQuantity('512 MB')).toThrow(/not a memory quantity/);
    expect(chartMemoryLimit()).toBe(512 * MiB);
    expect(chartMemoryLimit('resources:\n  limits:\n    memory: 1Gi\n')).toBe(1024 * MiB);
    expect(() => chartMemoryLimit('resources: {}\n')).toThrow(/no resources.limits.memory/);
  });

  describe.runIf(isRoot)('a memory cgroup (as root)', () => {
    const made: MemoryCgroup[] = [];
    afterEach(() => {
      for (const cgroup of made.splice(0)) cgroup.remove();
    });

    it('makes Node size its heap from the limit, as in a pod', () => {
      const outside = Number(execFileSync(process.execPath, ['-e', heapLimitScript]));
      const cgroup = MemoryCgroup.create(`kopek-test-${process.pid}-heap`, 512 * MiB);
      made.push(cgroup);
      const wrapped = cgroup.wrap(process.execPath, ['-e', heapLimitScript]);
      const inside = Number(execFileSync(wrapped.command, wrapped.args));
      // Node takes about half a limit this size for its heap.
      expect(inside).toBeGreaterThan(200 * MiB);
      expect(inside).toBeLessThan(320 * MiB);
      expect(outside).toBeGreaterThan(inside);
      expect(cgroup.oomKills()).toBe(0);
    });

    it('counts the OOM kill of a process past the limit', () => {
      const cgroup = MemoryCgroup.create(`kopek-test-${process.pid}-oom`, 64 * MiB);
      made.push(cgroup);
      // Buffers outside the V8 heap, so the kernel, not V8, stops it.
      const wrapped = cgroup.wrap(process.execPath, [
        '-e',
        'const kept = []; for (;;) kept.push(Buffer.alloc(16 * 1024 * 1024, 1));',
      ]);
      const run = spawnSync(wrapped.command, wrapped.args);
      expect(run.signal).toBe('SIGKILL');
      expect(cgroup.oomKills()).toBe(1);
    });
  });
});
