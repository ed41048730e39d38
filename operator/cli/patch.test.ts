import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { mergePodSpec, mergeService } from '../../recommender/apply/merge.ts';
import {
  podSpecOf,
  readPodPlacement,
  readServicePlacement,
  type PlacementState,
  type PodPlacement,
} from '../../recommender/apply/placement.ts';
import type { WorkloadKind } from '../../recommender/api/v1alpha1.ts';
import {
  COMMERCE_DUMP as DUMP,
  COMMERCE_PLATFORMS as PLATFORMS,
  commercePlans,
} from '../../test/support/commerce-patch.ts';
import { EXIT_INPUT, EXIT_OK, EXIT_USAGE, type CliIO } from './input.ts';
import { HELP, main } from './kopek.ts';
import {
  EXIT_NOTHING_TO_CHANGE,
  PATCH_HELP,
  closeNames,
  parseActions,
  parseWorkloadName,
  patchDocuments,
  podSpecPatch,
  renderKustomize,
  renderYaml,
} from './patch.ts';

type Obj = Record<string, unknown>;

async function run(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readFile: (p) => readFileSync(p),
    readStdin: () => '',
    now: () => '2026-11-20T10:00:00Z',
    env: {},
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

const TOLERATION = { key: 'spot', operator: 'Exists', effect: 'NoSchedule' };
const PREFER_ARM = {
  weight: 100,
  preference: {
    matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }],
  },
};

describe('podSpecPatch: a strategic-merge patch from one placement to another', () => {
  const cases: Record<string, [PodPlacement, PodPlacement]> = {
    'a pin goes, another nodeSelector key stays': [
      { nodeSelector: { 'kubernetes.io/arch': 'amd64', team: 'shop' } },
      {
        nodeSelector: { team: 'shop' },
        affinity: {
          nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [PREFER_ARM] },
        },
      },
    ],
    'the last nodeSelector key goes': [{ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }, {}],
    'required terms go, pod anti-affinity stays': [
      {
        affinity: {
          podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1 }] },
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'a', operator: 'Exists' }] }],
            },
          },
        },
      },
      {
        affinity: {
          podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1 }] },
          nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [PREFER_ARM] },
        },
      },
    ],
    'tolerations added to a list, a spread added beside one': [
      {
        tolerations: [{ key: 'a', operator: 'Exists' }],
        topologySpreadConstraints: [{ topologyKey: 'zone', maxSkew: 1 }],
      },
      {
        tolerations: [{ key: 'a', operator: 'Exists' }, TOLERATION],
        topologySpreadConstraints: [
          { topologyKey: 'zone', maxSkew: 1 },
          { topologyKey: 'kubernetes.io/hostname', maxSkew: 1 },
        ],
      },
    ],
  };
  for (const [name, [before, after]] of Object.entries(cases))
    it(`${name}: merged over the placement before, gives the one after`, () => {
      const patch = podSpecPatch(before, after);
      expect(mergePodSpec(before, patch)).toEqual(after);
    });

  it('writes only the fields that change, lists whole and null for what goes', () => {
    const [before, after] = cases['a pin goes, another nodeSelector key stays'] ?? [{}, {}];
    expect(podSpecPatch(before, after)).toEqual({
      nodeSelector: { 'kubernetes.io/arch': null, team: 'shop' },
      affinity: after.affinity,
    });
    expect(podSpecPatch({ tolerations: [TOLERATION] }, {})).toEqual({ tolerations: null });
    expect(podSpecPatch({ nodeSelector: { a: 'b' } }, {})).toEqual({ nodeSelector: null });
    expect(
      podSpecPatch(
        { tolerations: [{ key: 'a', operator: 'Exists' }] },
        { tolerations: [{ key: 'a', operator: 'Exists' }, TOLERATION] },
      ),
    ).toEqual({ tolerations: [{ key: 'a', operator: 'Exists' }, TOLERATION] });
    expect(podSpecPatch({ nodeSelector: { a: 'b' } }, { nodeSelector: { a: 'b' } })).toEqual({});
  });
});

function change(
  kind: WorkloadKind,
  apiVersion: string,
  previous: PlacementState,
  planned: PlacementState,
) {
  return {
    apiVersion,
    kind,
    name: 'web',
    namespace: 'shop',
    actions: ['Spot', 'Arm64'] as const,
    previous,
    planned,
    savings: [
      { action: 'Spot' as const, monthlySavingsUSD: '10.50' },
      { action: 'Arm64' as const, monthlySavingsUSD: '2.25' },
    ],
  };
}

describe('patchDocuments and their rendering', () => {
  const previous: PlacementState = {
    podSpec: {},
    services: [{ name: 'web', topologyMode: 'Auto' }],
  };
  const planned: PlacementState = {
    podSpec: { tolerations: [TOLERATION] },
    services: [{ name: 'web', trafficDistribution: 'PreferSameZone' }],
  };

  it('names the object, nests the pod spec where the kind keeps it, and says what and how much', () => {
    const [cronJob] = patchDocuments(change('CronJob', 'batch/v1', previous, planned));
    expect(cronJob?.patch).toEqual({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'web', namespace: 'shop' },
      spec: { jobTemplate: { spec: { template: { spec: { tolerations: [TOLERATION] } } } } },
    });
    expect(cronJob?.comment).toBe(
      'shop/CronJob/web: Spot and Arm64, saves $12.75/mo (Spot $10.50/mo, Arm64 $2.25/mo)',
    );
  });

  it('a Service change sets the new field and removes the old one', () => {
    const [, svc] = patchDocuments(change('Deployment', 'apps/v1', previous, planned));
    expect(svc?.patch).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'web',
        namespace: 'shop',
        annotations: { 'service.kubernetes.io/topology-mode': null },
      },
      spec: { trafficDistribution: 'PreferSameZone' },
    });
  });

  it('-o yaml: a comment line then the patch, documents separated by ---', () => {
    const docs = patchDocuments(change('Deployment', 'apps/v1', previous, planned));
    const text = renderYaml(docs);
    expect(text.split('\n').filter((l) => l.startsWith('# '))).toEqual(
      docs.map((d) => `# ${d.comment}`),
    );
    expect(parseAllDocuments(text).map((d) => d.toJS() as unknown)).toEqual(
      docs.map((d) => d.patch),
    );
  });

  it('-o kustomize: a patches: list with each target and the same patch inline', () => {
    const docs = patchDocuments(change('Deployment', 'apps/v1', previous, planned));
    const text = renderKustomize(docs);
    const { patches } = parse(text) as { patches: { target: Obj; patch: string }[] };
    expect(patches.map((p) => p.target)).toEqual([
      { group: 'apps', version: 'v1', kind: 'Deployment', name: 'web', namespace: 'shop' },
      { version: 'v1', kind: 'Service', name: 'web', namespace: 'shop' },
    ]);
    expect(patches.map((p) => parse(p.patch) as unknown)).toEqual(docs.map((d) => d.patch));
    expect(text.split('\n').filter((l) => l.trimStart().startsWith('# '))).toHaveLength(2);
  });
});

describe('naming workloads and actions', () => {
  it('reads ns/kind/name and comma-separated actions in any case', () => {
    expect(parseWorkloadName('shop/deployment/web')).toEqual({
      namespace: 'shop',
      kind: 'deployment',
      name: 'web',
    });
    expect(parseWorkloadName('shop/web')).toBeUndefined();
    expect(parseWorkloadName('shop//web')).toBeUndefined();
    expect(parseActions('spot, Arm64,spot')).toEqual({ actions: ['Spot', 'Arm64'] });
    expect(parseActions('Spot,Graviton')).toEqual({ unknown: ['Graviton'] });
    expect(parseActions(',')).toEqual({ unknown: [] });
  });

  it('offers the same name elsewhere and names a few typing mistakes away, closest first', () => {
    const all = [
      'shop/Deployment/cart',
      'shop/Deployment/carts-api',
      'other/Deployment/cart',
      'x/Deployment/zzz',
    ];
    expect(closeNames('shop/Deployment/catr', all)).toEqual(['shop/Deployment/cart']);
    expect(closeNames('staging/Deployment/cart', all)).toEqual([
      'other/Deployment/cart',
      'shop/Deployment/cart',
    ]);
    expect(closeNames('nope/Deployment/nothing', all)).toEqual([]);
  });
});

describe('kopek patch over the commerce platform dump (test/fixtures/commerce)', () => {
  const { dumped, planned, plannedService } = commercePlans();

  it('prints, per workload with a change, a patch that turns the dumped object into the planned one', async () => {
    const { code, stdout } = await run(['patch', '-f', DUMP, '--image-platforms', PLATFORMS]);
    expect(code).toBe(EXIT_OK);
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
    expect(docs.length).toBeGreaterThanOrEqual(30);
    // The fixture's DaemonSets run on arm64 already, or cannot.
    const kinds = new Set(docs.map((d) => d.kind));
    expect([...kinds].sort()).toEqual([
      'CronJob',
      'Deployment',
      'Rollout',
      'Service',
      'StatefulSet',
    ]);
    for (const doc of docs) {
      const meta = doc.metadata as { name: string; namespace: string };
      const key = `${meta.namespace}/${String(doc.kind)}/${meta.name}`;
      if (doc.kind === 'Service') {
        const before = readServicePlacement(dumped.get(key));
        expect(mergeService(before, doc), key).toEqual(plannedService(key));
        expect(mergeService(before, doc), key).not.toEqual(before);
        continue;
      }
      const kind = doc.kind as WorkloadKind;
      const before = readPodPlacement(podSpecOf(kind, dumped.get(key)) ?? {});
      const patchSpec = podSpecOf(kind, doc) ?? {};
      expect(Object.keys(patchSpec).length, key).toBeGreaterThan(0);
      expect(mergePodSpec(before, patchSpec), key).toEqual(planned(key));
    }
  });

  it('-o kustomize holds the same patches', async () => {
    const yaml = await run(['patch', '-f', DUMP, '--image-platforms', PLATFORMS, '-q']);
    const kustomize = await run([
      'patch',
      '-f',
      DUMP,
      '--image-platforms',
      PLATFORMS,
      '-o',
      'kustomize',
      '-q',
    ]);
    expect(kustomize.code).toBe(EXIT_OK);
    const { patches } = parse(kustomize.stdout) as { patches: { patch: string }[] };
    expect(patches.map((p) => parse(p.patch) as unknown)).toEqual(
      parseAllDocuments(yaml.stdout).map((d) => d.toJS() as unknown),
    );
  });

  it('--workload and --action pick one workload and its actions', async () => {
    const { code, stdout } = await run([
      'patch',
      '-f',
      DUMP,
      '--image-platforms',
      PLATFORMS,
      '--workload',
      'shop/deployment/cart',
      '--action',
      'arm64',
    ]);
    expect(code).toBe(EXIT_OK);
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
    expect(docs.map((d) => (d.metadata as { name: string }).name)).toEqual(['cart']);
    expect(stdout).toMatch(/^# shop\/Deployment\/cart: Arm64, saves \$\d+\.\d\d\/mo\n/);
    expect(stdout).not.toContain('capacity');
  });

  it('says on stderr what it leaves unchanged and why, and exits 4 when nothing is left', async () => {
    const all = await run(['patch', '-f', DUMP, '--image-platforms', PLATFORMS]);
    expect(all.stderr).toContain(
      "batch/Job/reindex-2026-07: kopek does not change a Job's pods in place",
    );
    expect(all.stderr).toMatch(
      /catalog\/StatefulSet\/catalog-postgres: nothing to change: Spot is NotRecommended/,
    );
    expect(all.stdout).toMatch(
      /# storefront\/Service\/web: keeps traffic in its zone \(CrossZone of storefront\/Deployment\/web\)/,
    );
    const none = await run(['patch', '-f', DUMP, '--workload', 'batch/Job/reindex-2026-07']);
    expect(none.code).toBe(EXIT_NOTHING_TO_CHANGE);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('nothing to change');
  });

  it('refuses a workload the dump does not hold, naming close ones', async () => {
    const { code, stderr } = await run([
      'patch',
      '-f',
      DUMP,
      '--workload',
      'shop/Deployment/cartt',
    ]);
    expect(code).toBe(EXIT_INPUT);
    expect(stderr).toContain(
      'shop/Deployment/cartt: no such workload in the dump; did you mean shop/Deployment/cart?',
    );
  });

  it('refuses bad flags as usage errors, and analyze does not take patch flags', async () => {
    for (const argv of [
      ['patch', '-f', DUMP, '-o', 'json'],
      ['patch', '-f', DUMP, '--action', 'Spot,Graviton'],
      ['patch', '-f', DUMP, '--workload', 'cart'],
      ['patch'],
      ['analyze', '-f', DUMP, '--workload', 'shop/Deployment/cart'],
    ]) {
      const { code, stderr } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(stderr, argv.join(' ')).toMatch(/^kopek: .+\nRun kopek help for the usage\.\n$/);
    }
  });

  it('is listed in kopek help and documents itself and its exit codes', async () => {
    expect(HELP).toContain('kopek patch -f FILE');
    const { code, stdout } = await run(['patch', '--help']);
    expect(code).toBe(EXIT_OK);
    expect(stdout).toBe(PATCH_HELP);
    for (const exit of ['0', '1', '2', '3', '4'])
      expect(stdout).toMatch(new RegExp(`\\n  ${exit}  \\S`));
  });
});
