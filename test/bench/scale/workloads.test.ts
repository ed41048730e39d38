import { describe, expect, it } from 'vitest';
import type { SeededImage } from '../../registry/seed.ts';
import {
  clusterIP,
  DAEMONSET_NAMESPACE,
  daemonSetCount,
  defaultImageCount,
  isOldRevision,
  oldRevisions,
  scaleCluster,
} from './workloads.ts';

/** Images as seedFleet pushes them: even ones multi-arch, odd ones amd64-only. */
function images(count: number): SeededImage[] {
  return Array.from({ length: count }, (_, i) => ({
    image: `127.0.0.1:5000/bench/app-${i}:v1`,
    digest: `sha256:${String(i).padStart(64, '0')}`,
    platforms: i % 2 === 0 ? ['linux/amd64', 'linux/arm64/v8'] : ['linux/amd64'],
  }));
}

const FULL = { nodes: 2000, workloads: 5000, pods: 50_000 };

interface Workload {
  kind: string;
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  spec: {
    replicas?: number;
    template?: { spec: { containers: { image: string }[]; nodeSelector?: Record<string, string> } };
  };
}

describe('scaleCluster', () => {
  const cluster = scaleCluster(FULL, images(defaultImageCount(FULL.workloads)));
  const workloads = cluster.workloads as unknown as Workload[];
  const count = (kind: string): number => workloads.filter((w) => w.kind === kind).length;

  it('makes exactly the workloads and pods asked for, the DaemonSets on every node included', () => {
    expect(workloads).toHaveLength(5000);
    expect(cluster.expectedPods).toBe(50_000);
    const replicas = workloads.reduce((sum, w) => sum + (w.spec.replicas ?? 0), 0);
    expect(replicas + count('DaemonSet') * FULL.nodes).toBe(50_000);
    expect(cluster.refs.reduce((sum, ref) => sum + ref.pods, 0)).toBe(50_000);
    expect(count('DaemonSet')).toBe(5);
    expect(new Set(workloads.map((w) => `${w.metadata.namespace}/${w.metadata.name}`)).size).toBe(
      5000,
    );
  });

  it('mixes kinds, replica counts and companions as a platform of services does', () => {
    expect(count('Deployment')).toBeGreaterThan(4000);
    expect(count('StatefulSet')).toBe(300);
    expect(count('CronJob')).toBe(200);
    const replicas = workloads.flatMap((w) =>
      w.kind === 'Deployment' ? [w.spec.replicas ?? 0] : [],
    );
    expect(Math.min(...replicas)).toBe(1);
    expect(Math.max(...replicas)).toBeGreaterThan(50);
    const serving = count('Deployment') + count('StatefulSet');
    expect(cluster.services.length / serving).toBeGreaterThan(0.6);
    expect(cluster.services.length / serving).toBeLessThan(0.8);
    expect(cluster.pdbs.length).toBeGreaterThan(1000);
    expect(cluster.hpas.length).toBeGreaterThan(500);
    expect(cluster.volumes.length).toBeGreaterThan(0);
    expect(cluster.namespaces.length).toBe(Math.ceil(4995 / 20) + 1);
    expect(cluster.refs.filter((ref) => !ref.analysed)).toHaveLength(
      workloads.filter((w) => w.metadata.annotations?.['kopek.dev/ignore'] === 'true').length,
    );
  });

  it('names every image at least once, a few hundred in all, and pins amd64-only ones to amd64', () => {
    expect(cluster.images).toEqual(
      images(300)
        .map((i) => i.image)
        .sort(),
    );
    for (const w of workloads) {
      const template = w.spec.template;
      if (!template || w.kind === 'DaemonSet') continue;
      const app = template.spec.containers[0]?.image ?? '';
      const amd64Only = Number(/app-(\d+):/.exec(app)?.[1]) % 2 === 1;
      expect(template.spec.nodeSelector?.['kubernetes.io/arch']).toBe(
        amd64Only ? 'amd64' : undefined,
      );
    }
  });

  it('expects each Service to get one endpoint per pod of its workload', () => {
    const replicasOf = new Map(
      workloads.map((w) => [`${w.metadata.namespace}/${w.metadata.name}`, w.spec.replicas]),
    );
    for (const service of cluster.serviceEndpoints)
      expect(service.endpoints).toBe(replicasOf.get(`${service.namespace}/${service.name}`));
    expect(cluster.serviceEndpoints).toHaveLength(cluster.services.length);
  });

  it('gives each Service its own ClusterIP in the service range (StatefulSets: headless)', () => {
    const specs = cluster.services.map((service) => service.spec as { clusterIP: string });
    const ips = specs.map((spec) => spec.clusterIP).filter((ip) => ip !== 'None');
    expect(new Set(ips).size).toBe(ips.length);
    expect(ips.every((ip) => /^10\.96\.\d+\.\d+$/.test(ip) && ip !== '10.96.0.1')).toBe(true);
    expect(specs.length - ips.length).toBe(count('StatefulSet'));
    expect(() => clusterIP(65_279)).toThrow('no ClusterIP left');
  });

  it('is deterministic', () => {
    expect(scaleCluster(FULL, images(300))).toEqual(cluster);
  });

  it('scales down to a tiny cluster', () => {
    const tiny = scaleCluster({ nodes: 20, workloads: 20, pods: 200 }, images(5));
    expect(tiny.workloads).toHaveLength(20);
    expect(tiny.expectedPods).toBe(200);
    expect(tiny.images).toHaveLength(5);
    expect(
      (tiny.namespaces as { metadata: { name: string } }[]).map((ns) => ns.metadata.name),
    ).toEqual(['payments', DAEMONSET_NAMESPACE]);
  });

  it('refuses fewer pods than the workloads need', () => {
    expect(() => scaleCluster({ nodes: 10, workloads: 100, pods: 50 }, images(5))).toThrow(
      '50 pods cannot fill 95 Deployments and StatefulSets with at least one pod each (DaemonSets take 10 on 10 nodes)',
    );
  });
});

describe('sizes', () => {
  it('gives DaemonSets at most a fifth of the pods, and at most five', () => {
    expect(daemonSetCount(FULL)).toBe(5);
    expect(daemonSetCount({ nodes: 20, workloads: 20, pods: 200 })).toBe(2);
    expect(daemonSetCount({ nodes: 100, workloads: 50, pods: 400 })).toBe(0);
  });

  it('uses 6% of the workloads as distinct images, 5 to 300', () => {
    expect(defaultImageCount(5000)).toBe(300);
    expect(defaultImageCount(500)).toBe(30);
    expect(defaultImageCount(20)).toBe(5);
  });
});

describe('old revisions', () => {
  it("are a Deployment's ReplicaSets at zero, with templates of their own that their selectors match", () => {
    const generated = scaleCluster({ nodes: 6, workloads: 8, pods: 30 }, images(5));
    const deployment = generated.workloads.find((w) => w.kind === 'Deployment') ?? {};
    const created = {
      ...deployment,
      metadata: { ...(deployment.metadata as object), uid: 'a1b2c3d4-e5f6' },
    };
    const revisions = oldRevisions(created, 3) as unknown as {
      metadata: { name: string; ownerReferences: { kind: string; uid: string }[] };
      spec: {
        replicas: number;
        selector: { matchLabels: Record<string, string> };
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { image: string }[] };
        };
      };
    }[];
    const template = (deployment as unknown as Workload).spec.template;
    expect(new Set(revisions.map((rs) => rs.metadata.name)).size).toBe(3);
    for (const rs of revisions) {
      expect(rs.spec.replicas).toBe(0);
      expect(rs.metadata.ownerReferences).toMatchObject([
        { kind: 'Deployment', uid: 'a1b2c3d4-e5f6' },
      ]);
      expect(rs.spec.template.metadata.labels).toMatchObject(rs.spec.selector.matchLabels);
      expect(rs.spec.template.spec.containers[0]?.image).not.toBe(
        template?.spec.containers[0]?.image,
      );
      expect(isOldRevision(rs.metadata.name)).toBe(true);
    }
    // The current ReplicaSet, as the Deployment controller names it.
    expect(isOldRevision(`${(deployment as unknown as Workload).metadata.name}-5d4f8b7c9`)).toBe(
      false,
    );
  });
});
