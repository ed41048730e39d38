/**
 * Watches the WorkloadRecommendations (with the admin's credentials, beside kopek) and times
 * what kopek writes: when every expected recommendation has its status, and how long after a
 * workload's change its recommendation shows that change (not merely any update: a pod that
 * starts elsewhere changes the client weights of every workload with a Service).
 */
import type { KubeClient } from '../../../operator/kube/client.ts';
import { Informer } from '../../../operator/kube/informer.ts';
import { RESOURCES } from '../../../operator/kube/resources.ts';
import { silentLogger } from '../../../operator/log.ts';

/** What the benchmark reads of a recommendation. */
export interface Seen {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  /** The status has its Ready condition: kopek wrote it. */
  written: boolean;
  /** The pods it priced (status.placement.replicas). */
  replicas: number | undefined;
  /** The images of its arm64 verdict. */
  images: string[];
  /** The codes of its Spot verdict's reasons. */
  spotReasons: string[];
}

interface Pending {
  shows: (seen: Seen) => boolean;
  resolve: (updatedAt: number) => void;
}

interface SeenStatus {
  conditions?: unknown[];
  placement?: { replicas?: number };
  arm64?: { images?: { image?: string }[] };
  spot?: { reasons?: { code?: string }[] };
}

export class RecommendationTracker {
  private readonly informer: Informer<Seen>;
  private expected = new Set<string>();
  private writtenExpected = new Set<string>();
  private completeWaiters: ((at: number) => void)[] = [];
  private readonly pending = new Map<string, Pending>();
  /** When the last recommendation event arrived (ms since the epoch). */
  lastEventAt = 0;
  /** Creations and updates seen so far. */
  events = 0;
  completedAt: number | undefined;

  constructor(client: KubeClient) {
    this.informer = new Informer<Seen>({
      type: RESOURCES.workloadrecommendations,
      client,
      log: silentLogger,
      project: (object) => {
        const status = object.status as SeenStatus | undefined;
        return {
          metadata: object.metadata as Seen['metadata'],
          written: (status?.conditions?.length ?? 0) > 0,
          replicas: status?.placement?.replicas,
          images: (status?.arm64?.images ?? []).flatMap(({ image }) => image ?? []),
          spotReasons: (status?.spot?.reasons ?? []).flatMap(({ code }) => code ?? []),
        };
      },
      onChange: (change, object) => {
        this.seen(change, object);
      },
    });
  }

  start(): Promise<void> {
    this.informer.start();
    return this.informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get size(): number {
    return this.informer.size;
  }

  /** Resolves with the time every `keys` (`namespace/name`) had been written. */
  waitAllWritten(keys: Iterable<string>): Promise<number> {
    this.expected = new Set(keys);
    this.writtenExpected = new Set(
      [...this.expected].filter((key) => this.informer.get(key)?.written === true),
    );
    if (this.writtenExpected.size === this.expected.size) return Promise.resolve(Date.now());
    return new Promise((resolve) => this.completeWaiters.push(resolve));
  }

  get writtenCount(): number {
    return this.writtenExpected.size;
  }

  /**
   * Call just before writing a change to the workload of recommendation `key`: resolves with
   * the time of the recommendation's first update that `shows` the change.
   */
  expectUpdate(key: string, shows: (seen: Seen) => boolean): Promise<number> {
    return new Promise<number>((resolve) => {
      this.pending.set(key, { shows, resolve });
    });
  }

  /** Gives up on a change (its workload may be changed again). */
  forget(key: string): void {
    this.pending.delete(key);
  }

  private seen(change: string, object: Seen): void {
    const now = Date.now();
    this.lastEventAt = now;
    if (change === 'delete') return;
    this.events++;
    const key = `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
    const pending = this.pending.get(key);
    if (pending?.shows(object) === true) {
      this.pending.delete(key);
      pending.resolve(now);
    }
    if (object.written && this.expected.has(key) && !this.writtenExpected.has(key)) {
      this.writtenExpected.add(key);
      if (this.writtenExpected.size === this.expected.size) {
        this.completedAt = now;
        for (const resolve of this.completeWaiters.splice(0)) resolve(now);
      }
    }
  }
}
