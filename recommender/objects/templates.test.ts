import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { deployment } from './testing.ts';

describe('pod templates', () => {
  it('reads HPAs, PDBs (from their spec), volumes, probes, preStop sleeps and pins', () => {
    const spec = {
      terminationGracePeriodSeconds: 60,
      priorityClassName: 'high',
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'shop', effect: 'NoSchedule' }],
      topologySpreadConstraints: [
        {
          topologyKey: 'topology.kubernetes.io/zone',
          maxSkew: 1,
          whenUnsatisfiable: 'DoNotSchedule',
        },
      ],
      volumes: [
        { name: 'h', hostPath: { path: '/x' } },
        { name: 'd', persistentVolumeClaim: { claimName: 'fast' } },
        { name: 't', emptyDir: {} },
      ],
      initContainers: [
        {
          name: 'proxy',
          image: 'envoy:1',
          restartPolicy: 'Always',
          resources: { limits: { cpu: '100m', memory: '128Mi' } },
        },
      ],
      containers: [
        {
          name: 'app',
          image: 'nginx:1.27',
          resources: { requests: { cpu: '1', memory: '2Gi' } },
          lifecycle: { preStop: { exec: { command: ['sh', '-c', 'sleep 15'] } } },
        },
      ],
    };
    const objects = [
      deployment('web', 'shop', { spec, replicas: 2 }),
      {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          scaleTargetRef: { kind: 'Deployment', name: 'web' },
          minReplicas: 4,
          maxReplicas: 10,
        },
      },
      {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { maxUnavailable: '25%', selector: { matchLabels: { app: 'web' } } },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'fast', namespace: 'shop' },
        spec: { volumeName: 'pv-1' },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'pv-1' },
        spec: { local: { path: '/mnt' } },
      },
    ];
    const [web] = factsFromObjects(objects).facts;
    expect(web?.hpa).toEqual({ name: 'web', minReplicas: 4, maxReplicas: 10 });
    // 25% of 4 (the HPA minimum) rounds up to 1.
    expect(web?.pdb).toEqual({ name: 'web', disruptionsAllowed: 1 });
    expect(web?.template).toMatchObject({
      terminationGracePeriodSeconds: 60,
      priorityClassName: 'high',
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      volumes: [
        { name: 'h', kind: 'hostPath' },
        { name: 'd', kind: 'local', claimName: 'fast' },
        { name: 't', kind: 'emptyDir' },
      ],
      topologySpread: [
        {
          topologyKey: 'topology.kubernetes.io/zone',
          maxSkew: 1,
          whenUnsatisfiable: 'DoNotSchedule',
        },
      ],
    });
    expect(web?.template.containers).toEqual([
      {
        name: 'proxy',
        image: 'envoy:1',
        role: 'sidecar',
        readinessProbe: false,
        cpuRequestCores: 0.1,
        memoryRequestBytes: 128 * 1024 ** 2,
      },
      {
        name: 'app',
        image: 'nginx:1.27',
        role: 'main',
        readinessProbe: false,
        cpuRequestCores: 1,
        memoryRequestBytes: 2 * 1024 ** 3,
        preStopSleepSeconds: 15,
      },
    ]);
  });

  const claim = (spec: Record<string, unknown>) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'data', namespace: 'shop' },
    spec,
  });
  const volume = (spec: Record<string, unknown>) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: 'pv-1' },
    spec,
  });
  const storageClass = (name: string, provisioner: string, isDefault = false) => ({
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: {
      name,
      annotations: isDefault ? { 'storageclass.kubernetes.io/is-default-class': 'true' } : {},
    },
    provisioner,
  });
  const zoneAffinity = (key: string) => ({
    required: {
      nodeSelectorTerms: [{ matchExpressions: [{ key, operator: 'In', values: ['us-east-1a'] }] }],
    },
  });
  const ZONAL_CASES: {
    name: string;
    objects: Record<string, unknown>[];
    zonal: RegExp | undefined;
  }[] = [
    {
      name: 'a PV pinned to a zone by topology.kubernetes.io/zone',
      objects: [
        claim({ volumeName: 'pv-1', accessModes: ['ReadWriteOnce'] }),
        volume({ nodeAffinity: zoneAffinity('topology.kubernetes.io/zone') }),
      ],
      zonal: /PersistentVolume pv-1 is pinned to zone us-east-1a/,
    },
    {
      name: "a PV pinned by the EBS CSI driver's own zone label",
      objects: [
        claim({ volumeName: 'pv-1' }),
        volume({ nodeAffinity: zoneAffinity('topology.ebs.csi.aws.com/zone') }),
      ],
      zonal: /pinned to zone us-east-1a/,
    },
    {
      name: 'an EBS CSI volume without node affinity',
      objects: [
        claim({ volumeName: 'pv-1' }),
        volume({ csi: { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-1' } }),
      ],
      zonal: /pv-1 is an EBS volume/,
    },
    {
      name: 'an unbound claim of an EBS StorageClass',
      objects: [claim({ storageClassName: 'gp3' }), storageClass('gp3', 'ebs.csi.aws.com')],
      zonal: /StorageClass gp3 provisions EBS/,
    },
    {
      name: "a claim naming no class gets the cluster's default class",
      objects: [
        claim({}),
        storageClass('efs', 'efs.csi.aws.com'),
        storageClass('gp2', 'kubernetes.io/aws-ebs', true),
      ],
      zonal: /StorageClass gp2 provisions EBS/,
    },
    {
      name: 'a bound claim naming no class is not given the default class',
      objects: [
        claim({ volumeName: 'pv-1', accessModes: ['ReadWriteOnce'] }),
        volume({ nfs: { server: 'files.internal', path: '/exports/data' } }),
        storageClass('gp3', 'ebs.csi.aws.com', true),
      ],
      zonal: undefined,
    },
    {
      name: 'a ReadWriteMany claim (EFS) is not tied to a node',
      objects: [
        claim({ volumeName: 'pv-1', accessModes: ['ReadWriteMany'] }),
        volume({ nodeAffinity: zoneAffinity('topology.kubernetes.io/zone') }),
      ],
      zonal: undefined,
    },
    {
      name: 'a claim of an EFS StorageClass',
      objects: [claim({ storageClassName: 'efs' }), storageClass('efs', 'efs.csi.aws.com')],
      zonal: undefined,
    },
    { name: 'a claim kopek knows nothing about', objects: [], zonal: undefined },
  ];
  for (const c of ZONAL_CASES) {
    it(`zonal volumes: ${c.name}`, () => {
      const spec = { volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }] };
      const [web] = factsFromObjects([deployment('web', 'shop', { spec }), ...c.objects]).facts;
      const [v] = web?.template.volumes ?? [];
      expect(v).toMatchObject({ kind: 'persistentVolumeClaim', claimName: 'data' });
      if (c.zonal === undefined) expect(v?.zonalVolume).toBeUndefined();
      else expect(v?.zonalVolume).toMatch(c.zonal);
    });
  }

  it('reads the container ports a datastore is recognised by', () => {
    const spec = {
      containers: [
        { name: 'db', image: 'ghcr.io/acme/kv:1', ports: [{ containerPort: 6379 }, { name: 'x' }] },
        { name: 'web', image: 'nginx:1.27' },
      ],
    };
    const [web] = factsFromObjects([deployment('web', 'shop', { spec })]).facts;
    expect(web?.template.containers.map((c) => c.ports)).toEqual([[6379], undefined]);
  });
});
