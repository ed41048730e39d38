import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantile } from './changes.ts';
import { readFileSync } from 'node:fs';
import { parseMetrics, residentByKind, sum } from './kopek-process.ts';
import { bucketQuantile, changeLatencies } from './run.ts';
import { cpuFrames, summarizeHeapSnapshot } from './profile.ts';
import { parseTimeReport } from './timed.ts';

const dir = mkdtempSync(join(tmpdir(), 'kopek-measure-test-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('cpuFrames', () => {
  it('counts self time per function, and total time once per function even when it recurses', () => {
    const frame = (functionName: string) => ({ functionName, url: '', lineNumber: 0 });
    const { wallMs, frames } = cpuFrames({
      startTime: 0,
      endTime: 10_000, // µs: 10 ms over 10 samples
      nodes: [
        { id: 1, callFrame: frame('(root)'), hitCount: 0, children: [2, 5] },
        { id: 2, callFrame: frame('rebuild'), hitCount: 1, children: [3] },
        { id: 3, callFrame: frame('walk'), hitCount: 2, children: [4] },
        { id: 4, callFrame: frame('walk'), hitCount: 3 },
        { id: 5, callFrame: frame('(garbage collector)'), hitCount: 4 },
      ],
    });
    const byName = new Map(frames.map((f) => [f.frame, f]));
    expect(wallMs).toBe(10);
    expect(byName.get('walk')).toEqual({ frame: 'walk', selfMs: 5, totalMs: 5 });
    expect(byName.get('rebuild')).toEqual({ frame: 'rebuild', selfMs: 1, totalMs: 6 });
    expect(byName.get('(garbage collector)')?.selfMs).toBe(4);
  });
});

describe('cpuFrames in a window', () => {
  it('counts only the samples taken inside the window, timed from its length', () => {
    const frame = (functionName: string) => ({ functionName, url: '', lineNumber: 0 });
    const { wallMs, frames } = cpuFrames(
      {
        startTime: 1_000,
        endTime: 11_000,
        nodes: [
          { id: 1, callFrame: frame('(root)'), hitCount: 0, children: [2, 3] },
          { id: 2, callFrame: frame('coldStart'), hitCount: 6 },
          { id: 3, callFrame: frame('change'), hitCount: 4 },
        ],
        // One sample each ms from 2,000 µs: coldStart six times, then change four times.
        samples: [2, 2, 2, 2, 2, 2, 3, 3, 3, 3],
        timeDeltas: [1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000],
      },
      { startUs: 7_500, endUs: 11_000 },
    );
    const byName = new Map(frames.map((f) => [f.frame, f]));
    expect(wallMs).toBe(3.5);
    expect(byName.get('change')?.selfMs).toBe(3.5);
    expect(byName.get('coldStart')?.selfMs).toBe(0);
  });
});

describe('summarizeHeapSnapshot', () => {
  /** A heap snapshot file with V8's field layout around these nodes, edges and strings. */
  const writeSnapshot = (
    name: string,
    graph: { nodes: number[]; edges: number[]; strings: string[] },
  ): string => {
    const path = join(dir, name);
    const snapshot = {
      meta: {
        node_fields: [
          'type',
          'name',
          'id',
          'self_size',
          'edge_count',
          'trace_node_id',
          'detachedness',
        ],
        node_types: [
          [
            'hidden',
            'array',
            'string',
            'object',
            'code',
            'closure',
            'regexp',
            'number',
            'native',
            'synthetic',
          ],
        ],
        edge_fields: ['type', 'name_or_index', 'to_node'],
        edge_types: [['context', 'element', 'property', 'internal', 'hidden', 'shortcut', 'weak']],
      },
    };
    writeFileSync(path, JSON.stringify({ snapshot, ...graph }));
    return path;
  };
  it('finds what retains the memory through the dominator tree, ignoring weak references', () => {
    const MiB = 2 ** 20;
    const strings = [
      '',
      '(GC roots)',
      'Holder',
      'List',
      'Index',
      'Big',
      'items',
      'index',
      'next',
      'ref',
      'Other',
    ];
    const s = (text: string): number => strings.indexOf(text);
    // Nodes: type(3 = object), name, id, self_size, edge_count, trace_node_id, detachedness.
    const node = (name: string, size: number, edges: number): number[] => [
      3,
      s(name),
      0,
      size,
      edges,
      0,
      0,
    ];
    const nodes = [
      ...node('(GC roots)', 0, 3), // 0
      ...node('Holder', 100, 2), // 1: holds List and Index
      ...node('List', 100, 1), // 2
      ...node('Index', 100, 1), // 3
      ...node('Big', 3 * MiB, 0), // 4: reached from List and Index, so dominated by Holder
      ...node('Other', 100, 0), // 5
    ];
    const F = 7;
    // Edges: type (2 = property, 6 = weak), name, to_node (index × fields).
    const edges = [
      [2, s('ref'), 1 * F],
      [2, s('ref'), 5 * F],
      [6, s('ref'), 4 * F], // weak: does not keep Big alive
      [2, s('items'), 2 * F],
      [2, s('index'), 3 * F],
      [2, s('next'), 4 * F],
      [2, s('next'), 4 * F],
    ].flat();
    const path = writeSnapshot('test.heapsnapshot', { nodes, edges, strings });
    const summary = summarizeHeapSnapshot(path);
    expect(summary).toContain('Heap snapshot');
    expect(summary).toMatch(/3\.0 MiB\s+1 × Big/);
    const retainers = summary.slice(summary.indexOf('Top retainers'));
    // Holder retains everything under it (3 MiB + 300 B); Big hangs under Holder, reached through no single field.
    expect(retainers).toMatch(
      /\n\s+3\.0 MiB ref → Holder \(2 refs\)\n\s+3\.0 MiB\s+… → Big \(0 refs\)/,
    );
    expect(retainers).not.toContain('Other');
  });

  it('counts objects by shape, with the property blocks of fields added after they were made', () => {
    const MiB = 2 ** 20;
    const strings = [
      '',
      '(GC roots)',
      'Object',
      'system / PropertyArray',
      'kind',
      'meta',
      'properties',
      'x',
    ];
    const s = (text: string): number => strings.indexOf(text);
    const F = 7;
    // type, name, id, self_size, edge_count, trace_node_id, detachedness (0 = hidden, 3 = object).
    const nodes = [
      [3, s('(GC roots)'), 0, 0, 2, 0, 0],
      [3, s('Object'), 0, MiB, 3, 0, 0], // Object{kind,meta}, with a property block
      [0, s('system / PropertyArray'), 0, 2 * MiB, 0, 0, 0],
      [3, s('Object'), 0, MiB / 2, 1, 0, 0], // Object{x}, without one
    ].flat();
    // type (2 = property, 3 = internal), name, to_node.
    const edges = [
      [2, s('x'), 1 * F],
      [2, s('x'), 3 * F],
      [2, s('kind'), 3 * F],
      [2, s('meta'), 3 * F],
      [3, s('properties'), 2 * F],
      [2, s('x'), 3 * F],
    ].flat();
    const path = writeSnapshot('shapes.heapsnapshot', { nodes, edges, strings });
    const summary = summarizeHeapSnapshot(path);
    const shapes = summary.slice(
      summary.indexOf('Top objects by shape'),
      summary.indexOf('Top retainers'),
    );
    expect(shapes).toMatch(/3\.0 MiB\s+1 × Object\{kind,meta\} \(property blocks 2\.0 MiB\)/);
    expect(shapes).toMatch(/0\.5 MiB\s+1 × Object\{x\}\n/);
  });
});

describe('parsers', () => {
  it('reads GNU time -v reports', () => {
    expect(
      parseTimeReport(
        '\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02.50\n\tMaximum resident set size (kbytes): 2048\n',
      ),
    ).toEqual({ seconds: 62.5, maxRssBytes: 2 * 2 ** 20 });
    expect(() => parseTimeReport('Command terminated by signal 9')).toThrow(
      'not a GNU time -v report',
    );
  });

  it('reads the Prometheus text format', () => {
    const series = parseMetrics(
      [
        '# HELP kopek_kube_requests_total Requests',
        'kopek_kube_requests_total{verb="apply",resource="workloadrecommendations",code="200"} 12',
        'kopek_kube_requests_total{verb="get",resource="leases",code="200"} 3',
        'nodejs_heap_size_used_bytes 1.5e+07',
      ].join('\n'),
    );
    expect(sum(series, 'kopek_kube_requests_total')).toBe(15);
    expect(sum(series, 'kopek_kube_requests_total', (s) => s.labels.verb === 'apply')).toBe(12);
    expect(sum(series, 'nodejs_heap_size_used_bytes')).toBe(15_000_000);
  });

  it('counts a change whose recommendation was never updated as slower than any', () => {
    const timings = [
      { type: 'scale' as const, workload: 'a', latencyMs: 100 },
      { type: 'scale' as const, workload: 'b', latencyMs: undefined },
      { type: 'image' as const, workload: 'c', latencyMs: undefined },
    ];
    const latencies = changeLatencies({ timings, failed: 0, skipped: 0, achievedRate: 1 });
    // Two of three never updated: the median is one of them, not the one that was.
    expect(latencies.p50Ms).toBe(Number.POSITIVE_INFINITY);
    expect(latencies.byType.scale).toEqual({
      count: 2,
      p50Ms: 100,
      p99Ms: Number.POSITIVE_INFINITY,
      notUpdated: 1,
    });
  });

  it('takes nearest-rank quantiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(quantile(values, 1)).toBe(100);
    expect(quantile([], 0.5)).toBeUndefined();
  });
});

describe('bucketQuantile', () => {
  it('interpolates within the bucket that holds the rank, as histogram_quantile does', () => {
    // 10 observations: 4 up to 0.1 s, 4 more up to 0.5 s, 2 more up to 1 s, none above.
    const buckets = [
      { le: 0.1, count: 4 },
      { le: 0.5, count: 8 },
      { le: 1, count: 10 },
      { le: Infinity, count: 10 },
    ];
    expect(bucketQuantile(buckets, 0.5)).toBeCloseTo(0.2, 9);
    expect(bucketQuantile(buckets, 0.99)).toBeCloseTo(0.975, 9);
    expect(bucketQuantile([...buckets].reverse(), 0.25)).toBeCloseTo(0.0625, 9);
    // Above the highest finite bound: that bound, as Prometheus reports it.
    expect(
      bucketQuantile(
        [
          { le: 1, count: 1 },
          { le: Infinity, count: 3 },
        ],
        0.9,
      ),
    ).toBe(1);
    expect(bucketQuantile([{ le: Infinity, count: 0 }], 0.5)).toBeUndefined();
  });
});

describe('residentByKind', () => {
  const mapping = (range: string, perms: string, inode: number, path: string, rssKb: number) =>
    `${range} ${perms} 00000000 00:00 ${inode}${path ? `   ${path}` : ''}\nSize: 4 kB\nRss: ${rssKb} kB\nPss: 1 kB\n`;

  it('tells malloc arenas from files and other anonymous memory', () => {
    const smaps = [
      mapping('55d4a0000000-55d4a4000000', 'r-xp', 1234, '/usr/bin/node', 30_000),
      mapping('55d4a8000000-55d4a9000000', 'rw-p', 0, '[heap]', 9_000),
      // an arena: 64 MiB aligned, grown to 16 MiB, the rest reserved
      mapping('7f0c04000000-7f0c05000000', 'rw-p', 0, '', 12_000),
      mapping('7f0c05000000-7f0c08000000', '---p', 0, '', 0),
      // an arena grown to its whole 64 MiB
      mapping('7f0c08000000-7f0c0c000000', 'rw-p', 0, '', 50_000),
      // anonymous memory that is not aligned like an arena (V8's pages, a thread's stack)
      mapping('7f0c0c100000-7f0c0c140000', 'rw-p', 0, '', 256),
      // aligned, but the reservation after it is not an arena's 64 MiB
      mapping('7f0c10000000-7f0c10100000', 'rw-p', 0, '', 1_000),
      mapping('7f0c10100000-7f0c10200000', '---p', 0, '', 0),
      mapping('7ffd00000000-7ffd00021000', 'rw-p', 0, '[stack]', 100),
    ].join('');
    expect(residentByKind(smaps)).toEqual({
      file: 30_000 * 1024,
      mallocMainArena: 9_000 * 1024,
      mallocOtherArenas: 62_000 * 1024,
      mallocOtherArenaCount: 2,
      otherAnonymous: 1_356 * 1024,
    });
  });

  it('accounts for every resident page of a real process', () => {
    const smaps = readFileSync('/proc/self/smaps', 'utf8');
    const total = [...smaps.matchAll(/^Rss:\s+(\d+) kB/gm)].reduce(
      (sum, m) => sum + Number(m[1]) * 1024,
      0,
    );
    const kinds = residentByKind(smaps);
    expect(
      kinds.file + kinds.mallocMainArena + kinds.mallocOtherArenas + kinds.otherAnonymous,
    ).toBe(total);
    expect(kinds.file).toBeGreaterThan(0);
    expect(kinds.mallocMainArena + kinds.mallocOtherArenas).toBeGreaterThan(0);
  });
});
