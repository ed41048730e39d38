import { sleep, systemClock, type Clock } from './clock.ts';
import { KubeApiError, type KubeApi, type ResourceType } from './kube/client.ts';
import { errorMessage, type Logger } from './log.ts';

export const LEASE: ResourceType = {
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
  namespaced: true,
};

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  client: KubeApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onLeadershipChange?: (leading: boolean) => void;
  clock?: Clock;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

/**
 * Leader election over a coordination.k8s.io Lease, as client-go does it: 15 s lease, 10 s renew
 * deadline, 2 s retry. Expiry is measured from when this process last saw the lease change,
 * by its own clock, never from the remote timestamps (clocks differ between nodes).
 */
export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: Clock;
  private observed: { record: string; at: number } | undefined;
  private leading = false;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.clock = options.clock ?? systemClock;
  }

  /** Whether the last attempt found the lease held by another replica (not a failed request). */
  private heldByOther = false;

  get isLeader(): boolean {
    return this.leading;
  }

  /** Waits until this process holds the lease; resolves false if `signal` aborts first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    let announced = false;
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) {
        this.setLeading(true);
        return true;
      }
      // Only a lease held by another replica means standing by; a failed request does not.
      if (!announced && this.heldByOther) {
        this.options.log.info('standing by: another replica holds the lease', {
          lease: this.options.name,
        });
        announced = true;
      }
      await sleep(this.clock, this.retryPeriodMs, signal);
    }
    return false;
  }

  /**
   * Renews the lease every retry period until `signal` aborts or a renewal has not succeeded
   * within the renew deadline (then resolves at once: the caller must stop working before it may
   * stand for election again). After an abort the lease is still held: the caller releases it
   * once its workers have stopped, so none writes after a standby took over.
   */
  async holdUntilLost(signal: AbortSignal): Promise<void> {
    let lastRenewal = this.clock.now();
    while (!signal.aborted) {
      await sleep(this.clock, this.retryPeriodMs, signal);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborts while sleeping
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenewal = this.clock.now();
      } else if (this.clock.now() - lastRenewal > this.renewDeadlineMs) {
        this.options.log.error(
          'lost the leader lease: renewal failed for longer than the renew deadline; stopping work',
          { lease: this.options.name },
        );
        this.setLeading(false);
        return;
      }
    }
  }

  /** Gives the lease up so a standby takes over at once instead of after it expires. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.options.client.get<Lease>(
        LEASE,
        this.options.name,
        this.options.namespace,
      );
      if (lease.spec.holderIdentity !== this.options.identity) return;
      lease.spec = {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: microTime(this.clock.now()),
      };
      await this.options.client.replace(LEASE, lease);
    } catch (error) {
      this.options.log.warn('could not release the leader lease', { error: errorMessage(error) });
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.log.info(leading ? 'became the leader' : 'stopped leading', {
      lease: this.options.name,
      identity: this.options.identity,
    });
    this.options.onLeadershipChange?.(leading);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.options;
    const now = this.clock.now();
    const desired = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: microTime(now),
    };
    this.heldByOther = false;
    try {
      let lease: Lease;
      try {
        lease = await client.get<Lease>(LEASE, name, namespace);
      } catch (error) {
        if (!(error instanceof KubeApiError && error.status === 404)) throw error;
        const created: Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { ...desired, acquireTime: microTime(now), leaseTransitions: 0 },
        };
        await client.create(LEASE, created);
        this.observed = undefined;
        return true;
      }
      const record = JSON.stringify(lease.spec);
      if (this.observed?.record !== record) this.observed = { record, at: now };
      const holder = lease.spec.holderIdentity ?? '';
      const durationMs = (lease.spec.leaseDurationSeconds ?? 0) * 1000;
      const heldByOther = holder !== '' && holder !== identity;
      this.heldByOther = heldByOther && now < this.observed.at + durationMs;
      if (this.heldByOther) return false;
      const takingOver = holder !== identity;
      lease.spec = {
        ...lease.spec,
        ...desired,
        ...(takingOver
          ? {
              acquireTime: microTime(now),
              leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1,
            }
          : {}),
      };
      const updated = await client.replace<Lease>(LEASE, lease);
      this.observed = { record: JSON.stringify(updated.spec), at: now };
      return true;
    } catch (error) {
      // 409: another replica won the race; anything else: try again next period.
      if (!(error instanceof KubeApiError && error.status === 409)) {
        this.options.log.warn('leader election request failed', { error: errorMessage(error) });
      }
      return false;
    }
  }
}
