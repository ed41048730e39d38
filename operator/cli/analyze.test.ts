import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { schemaProblems } from '../../recommender/testing.ts';
import {
  InputError,
  analyzeObjects,
  checkDumpSize,
  formatTable,
  parseDump,
  parseImagePlatforms,
} from './analyze.ts';
import { EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, type CliIO } from './input.ts';
import { main } from './kopek.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'commerce');
const DUMP = join(fixtures, 'dump.yaml');
const PLATFORMS = join(fixtures, 'image-platforms.json');
const NOW = '2026-11-20T10:00:00Z';

interface Expected {
  workloads: Record<
    string,
    {
      spot: string;
      arm64: string;
      crossZone: string;
      codes?: string[];
      money?: { cost: string; savings: string };
    }
  >;
  absent: string[];
}

function analyzeFixture() {
  const warnings: string[] = [];
  const platforms = parseImagePlatforms(readFileSync(PLATFORMS, 'utf8'), PLATFORMS, warnings);
  const objects = parseDump(readFileSync(DUMP, 'utf8'), DUMP);
  return {
    ...analyzeObjects(objects, { imagePlatforms: platforms }, NOW),
    platformWarnings: warnings,
  };
}

const keyOf = (r: WorkloadRecommendation) =>
  `${r.metadata.namespace ?? ''}/${r.spec.targetRef.kind}/${r.spec.targetRef.name}`;

describe('kopek analyze over the commerce platform dump (test/fixtures/commerce)', () => {
  const result = analyzeFixture();
  const expected = parse(
    readFileSync(join(fixtures, 'expected-verdicts.yaml'), 'utf8'),
  ) as Expected;
  const byKey = new Map(result.list.items.map((r) => [keyOf(r), r]));

  it('recommends for each of the ≥ 40 workloads, and for no other', () => {
    expect(Object.keys(expected.workloads).length).toBeGreaterThanOrEqual(40);
    expect([...byKey.keys()].sort()).toEqual(Object.keys(expected.workloads).sort());
    for (const absent of expected.absent) expect(byKey.has(absent), absent).toBe(false);
  });

  for (const [key, want] of Object.entries(expected.workloads)) {
    it(`${key}: Spot ${want.spot}, arm64 ${want.arm64}, cross-zone ${want.crossZone}`, () => {
      const rec = byKey.get(key);
      expect(rec, key).toBeDefined();
      const status = rec?.status ?? {};
      expect({
        spot: status.spot?.verdict,
        arm64: status.arm64?.verdict,
        crossZone: status.crossZone?.verdict,
      }).toEqual({
        spot: want.spot,
        arm64: want.arm64,
        crossZone: want.crossZone,
      });
      const codes = [status.spot, status.arm64, status.crossZone].flatMap((r) =>
        (r?.reasons ?? []).map((x) => x.code),
      );
      expect(codes).toEqual(expect.arrayContaining(want.codes ?? []));
      if (want.money !== undefined) {
        expect({ cost: status.monthlyCostUSD, savings: status.potentialMonthlySavingsUSD }).toEqual(
          want.money,
        );
      }
      expect(schemaProblems(status)).toEqual([]);
    });
  }

  it('writes full WorkloadRecommendation objects, as the operator will', () => {
    const web = byKey.get('storefront/Deployment/web');
    expect(web).toMatchObject({
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'WorkloadRecommendation',
      metadata: {
        name: 'deployment-web',
        namespace: 'storefront',
        ownerReferences: [{ kind: 'Deployment', name: 'web' }],
      },
      spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } },
      status: {
        policy: 'recommend-everywhere',
        pricing: { source: 'Snapshot', region: 'us-east-1' },
        placement: { replicas: 6, zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'] },
        conditions: [
          { type: 'Ready', status: 'True', reason: 'Recommended', lastTransitionTime: NOW },
        ],
      },
    });
    expect(byKey.get('search/Rollout/ranker')?.spec.targetRef.apiVersion).toBe(
      'argoproj.io/v1alpha1',
    );
    expect(byKey.get('batch/CronJob/nightly-report')?.metadata.name).toBe('cronjob-nightly-report');
  });

  it('suggests the patches a person would apply', () => {
    const patch = byKey.get('shop/Deployment/inventory')?.status?.suggestedPatch;
    const spec = patch?.podTemplate?.spec as Record<string, unknown>;
    // The amd64 pin goes; the cluster has both Karpenter and EKS node-group capacity labels.
    expect(spec.nodeSelector).toEqual({ 'kubernetes.io/arch': null });
    expect(JSON.stringify(spec.affinity)).toContain('karpenter.sh/capacity-type');
    expect(JSON.stringify(spec.affinity)).toContain('eks.amazonaws.com/capacityType');
    expect(patch?.services).toEqual([
      { name: 'inventory', patch: { spec: { trafficDistribution: 'PreferSameZone' } } },
    ]);
    expect(
      byKey.get('catalog/StatefulSet/catalog-postgres')?.status?.suggestedPatch,
    ).toBeUndefined();
  });

  it('warns only about the kind it does not read', () => {
    expect(result.platformWarnings).toEqual([]);
    expect(result.warnings).toEqual(['ignored 1 ConfigMap object: kopek does not read that kind']);
  });

  it('prints the kubectl columns and a savings total', () => {
    const table = formatTable(result.list.items);
    const lines = table.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^NAMESPACE\s+WORKLOAD\s+SPOT\s+ARM64\s+CROSS-ZONE\s+SAVINGS\/MO\s+STATE$/,
    );
    // NAME no longer repeats WORKLOAD, and every row fits 120 columns (the TOTAL line aside).
    for (const row of lines.slice(0, -2)) expect(row.length).toBeLessThanOrEqual(120);
    const wide = formatTable(result.list.items, true).split('\n');
    expect(wide[0]).toMatch(
      /^NAMESPACE\s+NAME\s+WORKLOAD\s+SPOT\s+ARM64\s+CROSS-ZONE\s+COST\/MO\s+SAVINGS\/MO\s+STATE$/,
    );
    expect(lines).toHaveLength(result.list.items.length + 3);
    expect(lines.at(-1)).toMatch(
      /^TOTAL: 49 workloads, cost \$[\d,]+\.\d\d\/mo, potential savings \$[\d,]+\.\d\d\/mo \(\d+\.\d% of the cost\)$/,
    );
  });

  it('is deterministic', () => {
    expect(JSON.stringify(analyzeFixture().list)).toBe(JSON.stringify(result.list));
  });
});

describe('formatTable', () => {
  it('cuts long namespaces and workload names to fit 120 columns, and -o wide cuts nothing', () => {
    const [item] = analyzeFixture().list.items;
    if (item === undefined) throw new Error('the fixture has workloads');
    const long = {
      ...item,
      metadata: { ...item.metadata, namespace: 'n'.repeat(63) },
      spec: { ...item.spec, targetRef: { ...item.spec.targetRef, name: 'w'.repeat(200) } },
    };
    const rows = formatTable([long]).split('\n');
    expect(rows[1]?.length).toBeLessThanOrEqual(120);
    expect(rows[1]).toContain('…');
    const wide = formatTable([long], true).split('\n');
    expect(wide[1]).toContain('w'.repeat(200));
    expect(wide[1]).toContain('n'.repeat(63));
  });

  it('totals the money to the cent, with thousands separated', () => {
    const item = (name: string, cost: string, savings: string) =>
      ({
        apiVersion: 'kopek.dev/v1alpha1',
        kind: 'WorkloadRecommendation',
        metadata: { name: `deployment-${name}`, namespace: 'shop' },
        spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name } },
        status: { monthlyCostUSD: cost, potentialMonthlySavingsUSD: savings },
      }) as WorkloadRecommendation;
    const table = formatTable([
      item('a', '1234.10', '100.05'),
      item('b', '0.10', '0.10'),
      item('c', '0.20', '0.05'),
    ]);
    expect(table.trimEnd().split('\n').at(-1)).toBe(
      'TOTAL: 3 workloads, cost $1,234.40/mo, potential savings $100.20/mo (8.1% of the cost)',
    );
  });
});

/** An in-memory CLI: files from a map, output captured. */
async function run(
  argv: string[],
  files: Record<string, string | Uint8Array> = {},
  now = () => NOW,
) {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return f;
    },
    readStdin: () => files['-'] ?? '',
    now,
    env: {},
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

const SMALL = `
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels:
    topology.kubernetes.io/zone: us-east-1a
    topology.kubernetes.io/region: us-east-1
    node.kubernetes.io/instance-type: m6i.xlarge
    kubernetes.io/arch: amd64
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: u1}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          resources: {requests: {cpu: 500m, memory: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-abc-1
  namespace: shop
  labels: {app: web, pod-template-hash: abc}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: r1, controller: true}]
spec:
  nodeName: n1
  containers:
    - name: web
      image: nginx:1.27
      resources: {requests: {cpu: 500m, memory: 1Gi}}
status: {phase: Running}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: shop}
`;

describe('the kopek command', () => {
  it('prints a table by default', async () => {
    const r = await run(['analyze', '-f', 'dump.yaml'], { 'dump.yaml': SMALL });
    expect(r.code).toBe(EXIT_OK);
    expect(r.stdout).toMatch(/^NAMESPACE/);
    expect(r.stdout).toContain('Deployment/web');
    expect(r.stderr).toBe('warning: ignored 1 ConfigMap object: kopek does not read that kind\n');
  });

  it('prints a v1 List as JSON or YAML', async () => {
    const json = JSON.parse(
      (await run(['analyze', '-f', 'd', '-o', 'json'], { d: SMALL })).stdout,
    ) as {
      kind: string;
      items: WorkloadRecommendation[];
    };
    expect(json.kind).toBe('List');
    expect(json.items[0]?.metadata.name).toBe('deployment-web');
    // Without an image-platforms file the arm64 verdict is Unknown, and the reason says why.
    expect(json.items[0]?.status?.arm64?.verdict).toBe('Unknown');
    expect(json.items[0]?.status?.arm64?.reasons?.map((r) => r.code)).toContain(
      'ImagePlatformsUnknown',
    );
    const yaml = await run(['analyze', '--filename=d', '--output=yaml'], { d: SMALL });
    expect(parse(yaml.stdout)).toEqual(json);
    // Strings a YAML 1.1 reader would take for something else are quoted.
    expect(yaml.stdout).toContain(`lastTransitionTime: "${NOW}"`);
  });

  it('reads several files, standard input, image platforms and a region', async () => {
    const [node, ...rest] = SMALL.split('---');
    const r = await run(
      [
        'analyze',
        '-f',
        'a',
        '-f',
        '-',
        '--image-platforms',
        'p.json',
        '--region',
        'eu-west-1',
        '-o',
        'json',
        '-q',
      ],
      {
        a: node ?? '',
        '-': rest.join('---'),
        'p.json': '{"docker.io/library/nginx:1.27": ["linux/amd64", "linux/arm64"], "bad": 3}',
      },
    );
    expect(r.code).toBe(EXIT_OK);
    expect(r.stderr).toBe('');
    const item = (JSON.parse(r.stdout) as { items: WorkloadRecommendation[] }).items[0];
    expect(item?.status?.arm64?.verdict).toBe('Recommended');
    expect(item?.status?.pricing?.region).toBe('eu-west-1');
    expect(item?.status?.spot?.reasons?.map((x) => x.code)).toContain('PricesFromFallbackRegion');
  });

  it.each([
    [[], EXIT_USAGE, /Usage:/],
    [['frobnicate'], EXIT_USAGE, /unknown command frobnicate/],
    [['analyze'], EXIT_USAGE, /needs at least one -f FILE/],
    [['analyze', '-f'], EXIT_USAGE, /-f needs a value/],
    [['analyze', '-f', 'd', '-o', 'xml'], EXIT_USAGE, /table, wide, json or yaml/],
    [['analyze', '-f', 'd', '--region', 'mars'], EXIT_USAGE, /not an AWS region/],
    [['analyze', '-f', 'd', '--bogus'], EXIT_USAGE, /unknown option --bogus/],
    [['analyze', '-f', 'missing.yaml'], EXIT_INPUT, /missing.yaml: cannot read: no such file/],
    [
      ['analyze', '-f', 'broken'],
      EXIT_INPUT,
      /broken: not valid YAML or JSON \(line \d+, column \d+\)/,
    ],
    [['analyze', '-f', 'text'], EXIT_INPUT, /text: no Kubernetes objects found/],
    [['analyze', '-f', 'empty'], EXIT_INPUT, /empty: the file is empty/],
    [
      ['analyze', '-f', 'd', '--image-platforms', 'list.json'],
      EXIT_INPUT,
      /list.json: expected a JSON object/,
    ],
    [['analyze', '-f', 'd', '--image-platforms', 'broken'], EXIT_INPUT, /broken: not valid JSON/],
  ])('kopek %j exits %i', async (argv, code, message) => {
    const r = await run(argv, {
      d: SMALL,
      broken: 'a: [1, 2\nb: }',
      text: 'hello world\n',
      empty: '\n',
      'list.json': '[]',
    });
    expect(r.code).toBe(code);
    expect(r.stderr + r.stdout).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('reports an internal error without a stack trace', async () => {
    const r = await run(['analyze', '-f', 'd'], { d: SMALL }, () => {
      throw new Error('clock broke');
    });
    expect(r.code).toBe(EXIT_INTERNAL);
    expect(r.stderr).toMatch(/^kopek: internal error: clock broke\n/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('runs the operator as a command like the others: its help, and its flag errors', async () => {
    const help = await run(['run', '--help']);
    expect(help.code).toBe(EXIT_OK);
    expect(help.stdout).toMatch(/^Usage: kopek run \[flags\]/);
    const bad = await run(['run', '--colour', 'red']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('kopek run: unknown flag --colour; see kopek run --help\n');
  });

  it('documents the exit codes in its help', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(EXIT_OK);
    expect(r.stdout).toMatch(/Exit codes:\n\s+0 .*\n\s+1 .*usage/);
    expect(r.stdout).toMatch(/\n\s+2 .*could not be used/);
  });

  it('runs as a program (the bin entry, under Node type stripping)', () => {
    const cli = join(root, 'operator', 'cli', 'kopek.ts');
    const ok = spawnSync(
      process.execPath,
      [cli, 'analyze', '-f', DUMP, '--image-platforms', PLATFORMS, '-q'],
      { encoding: 'utf8' },
    );
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/TOTAL: 49 workloads/);
    const bad = spawnSync(process.execPath, [cli, 'analyze', '-f', join(fixtures, 'nope.yaml')], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^kopek: .*nope.yaml: cannot read: no such file\n$/);
    // A file larger than the heap allows (sparse: no disk written) is refused before it is read.
    const dir = mkdtempSync(join(tmpdir(), 'kopek-big-'));
    const big = join(dir, 'big.yaml');
    writeFileSync(big, '');
    truncateSync(big, 256 * 2 ** 20);
    const tooBig = spawnSync(
      process.execPath,
      ['--max-old-space-size=256', cli, 'analyze', '-f', big],
      {
        encoding: 'utf8',
      },
    );
    rmSync(dir, { recursive: true });
    expect(tooBig.status).toBe(2);
    expect(tooBig.stderr).toMatch(/^kopek: .*big\.yaml: 256 MB needs about 1,024 MB of memory/);
    // Three Node processes on a shared 2-core machine: a bound for a hung process, not a speed test.
  }, 60_000);
});

describe('parseDump on real-world input', () => {
  const node = 'apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n';

  it('reads the shared dicts PyYAML writes as aliases', () => {
    const shared = Array.from(
      { length: 300 },
      (_, i) =>
        `- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p${i}\n    labels: ${i === 0 ? '&id001\n      app: web' : '*id001'}`,
    ).join('\n');
    const [list] = parseDump(`apiVersion: v1\nkind: List\nitems:\n${shared}\n`, 'py.yaml') as [
      { items: { metadata: { labels: unknown } }[] },
    ];
    expect(list.items).toHaveLength(300);
    expect(list.items[299]?.metadata.labels).toEqual({ app: 'web' });
  });

  it('refuses an alias bomb as an input error that says what it is', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 8; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    const bomb = () => parseDump(`${levels.join('\n')}\n`, 'bomb.yaml');
    expect(bomb).toThrow(InputError);
    expect(bomb).toThrow(/bomb\.yaml: its YAML aliases expand .* \(an alias bomb\?\)/);
  });

  it('refuses an alias that contains itself', () => {
    expect(() => parseDump('a: &a [1, *a]\n', 'loop.yaml')).toThrow(/a loop/);
  });

  it('says where YAML the general parser reads is wrong', () => {
    expect(() => parseDump('a: [1, 2\n', 'bad.yaml')).toThrow(
      /^bad\.yaml: not valid YAML or JSON \(line \d+, column \d+\): /,
    );
  });

  it('reads UTF-16 with a byte-order mark, as PowerShell writes it, and UTF-8 with one', () => {
    const le = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from(node.replaceAll('\n', '\r\n'), 'utf16le'),
    ]);
    const be = Buffer.from(le.subarray(2)).swap16();
    const utf8 = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(node)]);
    const want = [{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }];
    expect(parseDump(le, 'le.yaml')).toEqual(want);
    expect(parseDump(Buffer.concat([Buffer.from([0xfe, 0xff]), be]), 'be.yaml')).toEqual(want);
    expect(parseDump(utf8, 'bom.yaml')).toEqual(want);
  });

  it('refuses a dump too large for the heap before reading it, and says what to do', () => {
    const gb = 2 ** 30;
    expect(() => {
      checkDumpSize(200 * 2 ** 20, 4 * gb, 'ok.yaml');
    }).not.toThrow();
    expect(() => {
      checkDumpSize(400 * 2 ** 20, 1 * gb, 'huge.json');
    }).toThrow(/huge\.json: .* needs about .* of memory .* NODE_OPTIONS=--max-old-space-size=\d+/);
    // Longer than one string can be is no reason to refuse: JSON is read item by item.
    expect(() => {
      checkDumpSize(600 * 2 ** 20, 64 * gb, 'long.json');
    }).not.toThrow();
  });

  it('reads a JSON dump longer than one text item by item, and says what to do with other long ones', () => {
    const text = readFileSync(DUMP, 'utf8');
    const whole = parseDump(text, DUMP);
    const json = Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: whole }));
    const limit = json.byteLength - 1;
    expect(parseDump(json, 'long.json', limit)).toEqual(whole);
    expect(parseDump(Buffer.from(JSON.stringify(whole)), 'long.json', limit)).toEqual(whole);
    const yaml = Buffer.from(text);
    expect(() => parseDump(yaml, 'long.yaml', yaml.byteLength - 1)).toThrow(
      /long\.yaml: .* MB is more than kopek can read as one text .* only as a JSON list in UTF-8/,
    );
    const broken = Buffer.from(json.toString().replace('"Deployment"', 'Deployment'));
    expect(() => parseDump(broken, 'broken.json', broken.byteLength - 1)).toThrow(
      /^broken\.json: not valid JSON in the value at byte \d+: /,
    );
  });

  it('the CLI exits 2 on an alias bomb and reads a UTF-16 dump', async () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]'];
    for (let i = 1; i < 8; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    const r = await run(['analyze', '-f', 'bomb.yaml'], { 'bomb.yaml': bomb.join('\n') });
    expect(r.code).toBe(EXIT_INPUT);
    expect(r.stderr).toMatch(/^kopek: bomb\.yaml: its YAML aliases expand/);
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(SMALL, 'utf16le')]);
    const ok = await run(['analyze', '-f', 'dump.yaml'], { 'dump.yaml': utf16 });
    expect(ok.code).toBe(EXIT_OK);
    expect(ok.stdout).toContain('Deployment/web');
  });

  it('puts manifests without metadata.namespace in default, or in -n NS, and says so', async () => {
    // How projects ship manifests: no namespace on the Deployment nor on its pod.
    const bare = SMALL.replaceAll('namespace: shop, ', '').replace('  namespace: shop\n', '');
    const byDefault = await run(['analyze', '-f', 'm.yaml', '-o', 'json'], { 'm.yaml': bare });
    expect(byDefault.code).toBe(EXIT_OK);
    const items = (JSON.parse(byDefault.stdout) as { items: WorkloadRecommendation[] }).items;
    expect(items.map((r) => `${r.metadata.namespace ?? ''}/${r.spec.targetRef.name}`)).toEqual([
      'default/web',
    ]);
    expect(byDefault.stderr).toContain(
      'warning: 2 objects have no metadata.namespace: read as in namespace default, as kubectl apply would place them (-n NS for another)',
    );
    const named = await run(['analyze', '-f', 'm.yaml', '-n', 'shop', '-o', 'json'], {
      'm.yaml': bare,
    });
    const shop = (JSON.parse(named.stdout) as { items: WorkloadRecommendation[] }).items;
    expect(shop.map((r) => r.metadata.namespace)).toEqual(['shop']);
  });
});
