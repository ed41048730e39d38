import { describe, expect, it } from 'vitest';
import { LEASE, LeaderElector } from './leader.ts';
import { FakeKube, apiError } from './testing/fake-kube.ts';
import { memoryLog } from './testing/harness.ts';
import { ManualClock } from './testing/manual-clock.ts';

function lease(holder: string, renewTime: string): Record<string, unknown> {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'kopek', namespace: 'kopek' },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime, leaseTransitions: 0 },
  };
}

function holder(kube: FakeKube): unknown {
  return (kube.object(LEASE, 'kopek', 'kopek')?.spec as { holderIdentity?: string } | undefined)
    ?.holderIdentity;
}

function elector(kube: FakeKube, clock: ManualClock, identity = 'me'): LeaderElector {
  return new LeaderElector({
    client: kube,
    namespace: 'kopek',
    name: 'kopek',
    identity,
    log: memoryLog(),
    clock,
  });
}

describe('leader election', () => {
  it("measures another holder's lease on the local clock, not by its remote renewTime", async () => {
    const kube = new FakeKube();
    const clock = new ManualClock();
    // The other replica's clock is an hour behind: by its timestamps the lease expired long ago.
    kube.put(LEASE, lease('other', new Date(clock.now() - 3_600_000).toISOString()));
    const me = elector(kube, clock);
    const stop = new AbortController();
    let acquired = false;
    const acquiring = me.acquire(stop.signal).then((won) => (acquired = won));
    await clock.advance(14_000);
    expect(acquired).toBe(false);
    expect(holder(kube)).toBe('other');
    // Unchanged for a whole lease duration since this process first saw it: expired.
    await clock.advance(4_000);
    expect(acquired).toBe(true);
    expect(holder(kube)).toBe('me');
    stop.abort();
    await acquiring;
  });

  it('waits again whenever the holder renews', async () => {
    const kube = new FakeKube();
    const clock = new ManualClock();
    kube.put(LEASE, lease('other', new Date(clock.now()).toISOString()));
    const me = elector(kube, clock);
    const stop = new AbortController();
    let acquired = false;
    const acquiring = me.acquire(stop.signal).then((won) => (acquired = won));
    for (let i = 0; i < 5; i++) {
      await clock.advance(10_000);
      kube.put(LEASE, lease('other', new Date(clock.now()).toISOString()));
    }
    expect(acquired).toBe(false);
    await clock.advance(18_000);
    expect(acquired).toBe(true);
    stop.abort();
    await acquiring;
  });

  it('stops leading once renewals fail for longer than the renew deadline', async () => {
    const kube = new FakeKube();
    const clock = new ManualClock();
    const me = elector(kube, clock);
    const stop = new AbortController();
    expect(await me.acquire(stop.signal)).toBe(true);
    let lost = false;
    const holding = me.holdUntilLost(stop.signal).then(() => (lost = true));
    kube.failNext({ verb: 'get', resource: 'leases' }, apiError(500, 'InternalError'), 100);
    await clock.advance(9_000);
    expect(lost).toBe(false);
    expect(me.isLeader).toBe(true);
    await clock.advance(4_000);
    expect(lost).toBe(true);
    expect(me.isLeader).toBe(false);
    stop.abort();
    await holding;
  });

  it('does not claim another replica holds the lease when its requests fail', async () => {
    const kube = new FakeKube();
    const clock = new ManualClock();
    const log = memoryLog();
    const me = new LeaderElector({
      client: kube,
      namespace: 'kopek',
      name: 'kopek',
      identity: 'me',
      log,
      clock,
    });
    kube.failNext(
      { verb: 'create', resource: 'leases' },
      apiError(404, 'NotFound', 'namespaces "kopek" not found'),
      3,
    );
    const stop = new AbortController();
    const acquiring = me.acquire(stop.signal);
    await clock.advance(5_000);
    const messages = log.lines.map((l) => l.msg ?? l.message);
    expect(messages).toContain('leader election request failed');
    expect(messages).not.toContain('standing by: another replica holds the lease');
    stop.abort();
    await acquiring;
  });
});
