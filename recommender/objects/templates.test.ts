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
});
