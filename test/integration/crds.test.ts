import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { LocalCluster } from '../cluster/cluster.ts';
import { CRDS, installCrds } from '../support/kopek.ts';

const EXAMPLES = join(CRDS, 'examples');
const exampleFiles = readdirSync(EXAMPLES)
  .filter((file) => file.endsWith('.yaml'))
  .sort();

interface Example {
  kind: string;
  metadata: { name: string; namespace?: string };
  status?: unknown;
}

/** Invalid resources and a fragment of the API server's refusal, which must name the field. */
const INVALID: { name: string; yaml: string; error: string }[] = [
  {
    name: 'unknown mode',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-mode}\nspec: {mode: Sometimes}',
    error: 'spec.mode: Unsupported value: "Sometimes": supported values: "Recommend", "Apply"',
  },
  {
    name: 'negative minReplicas',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-min}\nspec: {spot: {minReplicas: -1}}',
    error:
      'spec.spot.minReplicas: Invalid value: -1: spec.spot.minReplicas in body should be greater than or equal to 1',
  },
  {
    name: 'grace period past the Spot notice',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-grace}\nspec: {spot: {maxTerminationGracePeriodSeconds: 300}}',
    error: 'spec.spot.maxTerminationGracePeriodSeconds: Invalid value: 300',
  },
  {
    name: 'priority out of range',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-priority}\nspec: {priority: 5000}',
    error: 'spec.priority: Invalid value: 5000',
  },
  {
    name: 'Apply without an apply block',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-apply}\nspec: {mode: Apply}',
    error: 'spec.apply: Required value: spec.apply is required when spec.mode is Apply',
  },
  {
    name: 'applying Spot while Spot is disabled',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-contradiction}\nspec: {mode: Apply, spot: {enabled: false}, apply: {actions: [Spot]}}',
    error:
      'spec.apply.actions: Invalid value: spec.apply.actions lists Spot but spec.spot.enabled is false',
  },
  {
    name: 'progress timeout that is not a duration',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-duration}\nspec: {mode: Apply, apply: {actions: [Arm64], progressTimeout: ten minutes}}',
    error: 'spec.apply.progressTimeout: Invalid value: "ten minutes"',
  },
  {
    name: 'progress timeout too short',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-timeout}\nspec: {mode: Apply, apply: {actions: [Arm64], progressTimeout: 5s}}',
    error:
      'spec.apply.progressTimeout: Invalid value: spec.apply.progressTimeout must be at least 30s',
  },
  {
    name: 'In selector without values',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-selector}\nspec: {namespaceSelector: {matchExpressions: [{key: team, operator: In}]}}',
    error:
      'spec.namespaceSelector.matchExpressions[0].values: Invalid value: values must be non-empty for the In and NotIn operators',
  },
  {
    name: 'zero concurrent rollouts',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-concurrency}\nspec: {mode: Apply, apply: {actions: [Spot], maxConcurrent: 0}}',
    error: 'spec.apply.maxConcurrent: Invalid value: 0',
  },
  {
    name: 'money that is not a decimal string',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-money}\nspec: {crossZone: {minMonthlySavingsUSD: "ten dollars"}}',
    error: 'spec.crossZone.minMonthlySavingsUSD: Invalid value: "ten dollars"',
  },
  {
    name: 'oversized approve list',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: deployment-x, namespace: default}\nspec: {targetRef: {apiVersion: apps/v1, kind: Deployment, name: x}, approve: [Spot, Arm64, CrossZone, Spot]}',
    error: 'spec.approve: Too many: 4: must have at most 3 items',
  },
  {
    name: 'duplicate approvals',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: deployment-x, namespace: default}\nspec: {targetRef: {apiVersion: apps/v1, kind: Deployment, name: x}, approve: [Spot, Spot]}',
    error: 'spec.approve[1]: Duplicate value: "Spot"',
  },
  {
    name: 'targetRef of a kind kopek does not analyse',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: pod-x, namespace: default}\nspec: {targetRef: {apiVersion: apps/v1, kind: Pod, name: x}}',
    error: 'spec.targetRef.kind: Unsupported value: "Pod"',
  },
  {
    name: 'targetRef whose apiVersion does not serve its kind',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: cronjob-x, namespace: default}\nspec: {targetRef: {apiVersion: apps/v1, kind: CronJob, name: x}}',
    error:
      'spec.targetRef.apiVersion: Invalid value: spec.targetRef.apiVersion does not serve spec.targetRef.kind',
  },
  {
    name: 'targetRef with an invalid name',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: deployment-x, namespace: default}\nspec: {targetRef: {apiVersion: apps/v1, kind: Deployment, name: My_App}}',
    error: 'spec.targetRef.name: Invalid value: "My_App"',
  },
  {
    name: 'missing targetRef',
    yaml: 'kind: WorkloadRecommendation\nmetadata: {name: deployment-x, namespace: default}\nspec: {approve: [Spot]}',
    error: 'spec.targetRef: Required value',
  },
  {
    name: 'unknown field',
    yaml: 'kind: SavingsPolicy\nmetadata: {name: bad-field}\nspec: {spot: {minReplica: 2}}',
    error: 'unknown field "spec.spot.minReplica"',
  },
];

/** Splits kubectl's table output into cells by the header's column positions (cells may be empty). */
function parseTable(output: string): { header: string[]; rows: string[][] } {
  const [headerLine = '', ...lines] = output.trimEnd().split('\n');
  const starts = [...headerLine.matchAll(/\S+/g)].map((match) => match.index);
  const cut = (line: string): string[] =>
    starts.map((start, i) => line.slice(start, starts[i + 1]).trim());
  return { header: cut(headerLine), rows: lines.map(cut) };
}

describe('kopek CRDs on a real API server', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    await installCrds(cluster);
    await cluster.kubectl(['create', 'namespace', 'shop']);
    await cluster.kubectl(['create', 'namespace', 'monitoring']);
  });

  afterAll(async () => {
    await cluster.stop();
  });

  it('install with structural schemas and no API server warnings', async () => {
    const { stdout } = await cluster.kubectl([
      'get',
      'crd',
      'workloadrecommendations.kopek.dev',
      'savingspolicies.kopek.dev',
      '-o',
      'json',
    ]);
    const crds = JSON.parse(stdout) as {
      items: { status: { conditions: { type: string; status: string }[] } }[];
    };
    for (const crd of crds.items) {
      const conditions = Object.fromEntries(
        crd.status.conditions.map((condition) => [condition.type, condition.status]),
      );
      expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
      expect(conditions.NonStructuralSchema).toBeUndefined();
    }
  });

  it.each(exampleFiles)(
    'accepts the example %s, status included, with strict field validation',
    async (file) => {
      const path = join(EXAMPLES, file);
      const example = parse(readFileSync(path, 'utf8')) as Example;
      const applied = await cluster.kubectl([
        'apply',
        '--server-side',
        '--field-manager=test',
        '--validate=strict',
        '-f',
        path,
      ]);
      expect(applied.stderr).not.toMatch(/warning/i);
      if (example.status !== undefined) {
        await cluster.kubectl([
          'apply',
          '--server-side',
          '--field-manager=test',
          '--validate=strict',
          '--subresource=status',
          '-f',
          path,
        ]);
        const scope = example.metadata.namespace ? ['-n', example.metadata.namespace] : [];
        const stored = await cluster.kubectl([
          'get',
          example.kind,
          example.metadata.name,
          ...scope,
          '-o',
          'json',
        ]);
        expect((JSON.parse(stored.stdout) as Example).status).toEqual(example.status);
      }
    },
  );

  it.each(INVALID)('refuses $name with a message naming the field', async ({ yaml, error }) => {
    const manifest = `apiVersion: kopek.dev/v1alpha1\n${yaml}\n`;
    const result = await cluster.kubectl(['create', '--validate=strict', '-f', '-'], {
      input: manifest,
      allowFailure: true,
    });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(error);
  });

  it('refuses a change of targetRef', async () => {
    const result = await cluster.kubectl(
      [
        'patch',
        'wrec',
        'deployment-checkout',
        '-n',
        'shop',
        '--type=merge',
        '-p',
        '{"spec":{"targetRef":{"name":"cart"}}}',
      ],
      { allowFailure: true },
    );
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('spec.targetRef: Invalid value: spec.targetRef is immutable');
  });

  it('refuses an Unknown verdict without a reason in status', async () => {
    const result = await cluster.kubectl(
      [
        'patch',
        'wrec',
        'deployment-checkout',
        '-n',
        'shop',
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"spot":{"verdict":"Unknown","reasons":null}}}',
      ],
      { allowFailure: true },
    );
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(
      'status.spot.reasons: Invalid value: a verdict of Unknown, NotRecommended or Possible must give at least one reason',
    );
  });

  it('shows the printer columns in kubectl get wrec -A', async () => {
    const table = parseTable((await cluster.kubectl(['get', 'wrec', '-A'])).stdout);
    expect(table.header).toEqual([
      'NAMESPACE',
      'NAME',
      'WORKLOAD',
      'SPOT',
      'ARM64',
      'CROSS-ZONE',
      'COST/MO',
      'SAVINGS/MO',
      'STATE',
      'APPLIED',
      'AGE',
    ]);
    const row = (name: string): string[] | undefined =>
      table.rows.find((cells) => cells[1] === name)?.slice(0, 9);
    expect(row('deployment-checkout')).toEqual([
      'shop',
      'deployment-checkout',
      'checkout',
      'Recommended',
      'Recommended',
      'Recommended',
      '420.48',
      '301.27',
      'Recommended',
    ]);
    expect(row('statefulset-orders-db')).toEqual([
      'shop',
      'statefulset-orders-db',
      'orders-db',
      'NotRecommended',
      'NotRecommended',
      'NotApplicable',
      '747.52',
      '0.00',
      'NothingToDo',
    ]);
    expect(row('daemonset-node-exporter')).toEqual([
      'monitoring',
      'daemonset-node-exporter',
      'node-exporter',
      'NotApplicable',
      'AlreadyOptimized',
      '',
      '35.04',
      '0.00',
      'NothingToDo',
    ]);

    const wide = parseTable(
      (await cluster.kubectl(['get', 'wrec', '-n', 'shop', 'deployment-checkout', '-o', 'wide']))
        .stdout,
    );
    expect(wide.header).toEqual([
      'NAME',
      'WORKLOAD',
      'SPOT',
      'ARM64',
      'CROSS-ZONE',
      'COST/MO',
      'SAVINGS/MO',
      'STATE',
      'APPLIED',
      'KIND',
      'SPOT-SCORE',
      'ARM64-SCORE',
      'CROSS-ZONE-COST/MO',
      'POLICY',
      'AGE',
    ]);
    expect(wide.rows[0]?.slice(9, 14)).toEqual([
      'Deployment',
      '88',
      '95',
      '31.20',
      'recommend-everywhere',
    ]);
  });

  it('lists both kinds under the kopek category', async () => {
    const { stdout } = await cluster.kubectl(['get', 'kopek', '-A', '-o', 'name']);
    expect(stdout).toContain('savingspolicy.kopek.dev/recommend-everywhere');
    expect(stdout).toContain('workloadrecommendation.kopek.dev/deployment-checkout');
  });
});
