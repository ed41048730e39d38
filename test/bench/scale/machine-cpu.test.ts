import { describe, expect, it } from 'vitest';
import { cpuSnapshot, cpuSplit, formatCpuSplit, type CpuSnapshot } from './machine-cpu.ts';

function snapshot(
  at: number,
  idleSeconds: number,
  processes: [number, string, number][],
): CpuSnapshot {
  return {
    at,
    idleSeconds,
    byProcess: new Map(processes.map(([pid, name, seconds]) => [`${pid}/100`, { name, seconds }])),
  };
}

describe("the machine's CPU split", () => {
  it('adds up each name over its processes, counts new ones from zero and sorts by time', () => {
    const before = snapshot(1_000, 50, [
      [1, 'etcd', 10],
      [2, 'node', 5],
      [3, 'node', 1],
    ]);
    const after = snapshot(11_000, 53, [
      [1, 'etcd', 12.5],
      [2, 'node', 8],
      [3, 'node', 2],
      [4, 'kube-apiserver', 9], // started during the phase
    ]);
    const split = cpuSplit(before, after);
    expect(split).toMatchObject({
      wallSeconds: 10,
      idleSeconds: 3,
      bySeconds: [
        ['kube-apiserver', 9],
        ['node', 4],
        ['etcd', 2.5],
      ],
    });
    expect(formatCpuSplit(split, 2)).toBe(
      `kube-apiserver 9.0 s, node 4.0 s, 1 more 2.5 s; idle 3.0 s of ${split.cores} × 10.0 s`,
    );
  });

  it('reads this process from /proc under the name it is given', () => {
    const before = cpuSnapshot(new Map([[process.pid, 'bench']]));
    // Busy until this process has used 0.3 s of CPU, however loaded the machine is.
    const start = process.cpuUsage();
    for (let used = 0; used < 300_000;) {
      const { user, system } = process.cpuUsage(start);
      used = user + system;
    }
    const split = cpuSplit(before, cpuSnapshot(new Map([[process.pid, 'bench']])));
    expect(Object.fromEntries(split.bySeconds).bench).toBeGreaterThan(0.2);
    expect(split.wallSeconds).toBeGreaterThan(0.29);
  });
});
