import { createHash } from 'node:crypto';

type Obj = Record<string, unknown>;

/** The demo's zones, which its volumes and traffic are spread over. */
export const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];

/**
 * EBS-like PersistentVolumes for the StatefulSets' claims, pre-bound to the claims the
 * StatefulSet controller will create and spread over the zones, so the scheduler places each
 * replica in its volume's zone as on EKS.
 */
export function volumesFor(objects: readonly Obj[]): Obj[] {
  const volumes: Obj[] = [];
  for (const object of objects) {
    if (object.kind !== 'StatefulSet') continue;
    const metadata = object.metadata as { name: string; namespace: string };
    const spec = object.spec as {
      replicas?: number;
      volumeClaimTemplates?: {
        metadata: { name: string };
        spec: {
          accessModes?: string[];
          storageClassName?: string;
          resources?: { requests?: { storage?: string } };
        };
      }[];
    };
    for (let replica = 0; replica < (spec.replicas ?? 1); replica++) {
      for (const claim of spec.volumeClaimTemplates ?? []) {
        const claimName = `${claim.metadata.name}-${metadata.name}-${replica}`;
        const zone = ZONES[replica % ZONES.length] ?? 'us-east-1a';
        volumes.push({
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name: `pv-${metadata.namespace}-${claimName}` },
          spec: {
            capacity: { storage: claim.spec.resources?.requests?.storage ?? '10Gi' },
            accessModes: claim.spec.accessModes ?? ['ReadWriteOnce'],
            storageClassName: claim.spec.storageClassName ?? '',
            persistentVolumeReclaimPolicy: 'Delete',
            claimRef: { namespace: metadata.namespace, name: claimName },
            csi: {
              driver: 'ebs.csi.aws.com',
              // EBS volume ids are vol- and 17 hex digits; unique per claim.
              volumeHandle: `vol-${createHash('sha256').update(`${metadata.namespace}/${claimName}`).digest('hex').slice(0, 17)}`,
              fsType: 'ext4',
            },
            nodeAffinity: {
              required: {
                nodeSelectorTerms: [
                  {
                    matchExpressions: [
                      { key: 'topology.kubernetes.io/zone', operator: 'In', values: [zone] },
                    ],
                  },
                ],
              },
            },
          },
        });
      }
    }
  }
  return volumes;
}
