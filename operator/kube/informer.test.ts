import { afterEach, describe, expect, it } from 'vitest';
import { apiError, FakeKube } from '../testing/fake-kube.ts';
import { memoryLog } from '../testing/harness.ts';
import { ManualClock } from '../testing/manual-clock.ts';
import { Informer, type RelistReason, type WatchEndReason } from './informer.ts';
import { projectionFor, type Projected } from './projections.ts';
import { RESOURCES } from './resources.ts';

const TYPE = RESOURCES.namespaces;

function namespace(name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

interface Setup {
  kube: FakeKube;
  clock: ManualClock;
  log: ReturnType<typeof memoryLog>;
  informer: Informer<Projected>;
  relists: RelistReason[];
  restarts: WatchEndReason[];
  /** `<change> <name>` for each change handlers were told of. */
  seen: string[];
}

let running: Informer<Projected> | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

function setup(
  options: {
    onChange?: (object: Projected) => void;
    relistIntervalMs?: number;
    keep?: (object: Projected) => boolean;
  } = {},
): Setup {
  const kube = new FakeKube();
  const clock = new ManualClock();
  const log = memoryLog();
  const relists: RelistReason[] = [];
  const restarts: WatchEndReason[] = [];
  const seen: string[] = [];
  const informer = new Informer<Projected>({
    type: TYPE,
    client: kube,
    project: projectionFor(TYPE),
    log,
    clock,
    pageSize: 2,
    observer: {
      relisted: (_resource, reason) => relists.push(reason),
      watchRestarted: (_resource, reason) => restarts.push(reason),
      event: () => undefined,
    },
    ...(options.relistIntervalMs !== undefined
      ? { relistIntervalMs: options.relistIntervalMs }
      : {}),
    ...(options.keep !== undefined ? { keep: options.keep } : {}),
    onChange: (change, object) => {
      seen.push(`${change} ${object.metadata.name}`);
      options.onChange?.(object);
    },
  });
  running = informer;
  return { kube, clock, log, informer, relists, restarts, seen };
}

describe('the list-watch cache', () => {
  it('lists in pages, then follows the watch', async () => {
    const { kube, clock, informer, relists } = setup();
    for (const name of ['a', 'b', 'c', 'd', 'e']) kube.put(TYPE, namespace(name));
    informer.start();
    await informer.waitForSync();
    expect(informer.size).toBe(5);
    expect(kube.count('list')).toBe(3);
    kube.put(TYPE, namespace('f'));
    kube.put(TYPE, namespace('a', { team: 'checkout' }));
    await clock.advance(10);
    expect(informer.get('f')).toBeDefined();
    expect(informer.get('a')?.metadata.labels).toEqual({ team: 'checkout' });
    expect(relists).toEqual(['initial']);
  });

  it('caches only what keep accepts, and tells of a delete when it stops accepting one', async () => {
    const { kube, clock, informer, seen } = setup({
      keep: (object) => object.metadata.labels?.cached !== 'no',
    });
    kube.put(TYPE, namespace('a'));
    kube.put(TYPE, namespace('b', { cached: 'no' }));
    informer.start();
    await informer.waitForSync();
    expect([...informer.list()].map((o) => o.metadata.name)).toEqual(['a']);
    kube.put(TYPE, namespace('a', { cached: 'no' }));
    kube.put(TYPE, namespace('c', { cached: 'no' }));
    await clock.advance(10);
    expect(informer.size).toBe(0);
    kube.put(TYPE, namespace('b'));
    await clock.advance(10);
    expect(informer.get('b')?.metadata.labels).toEqual({});
    // c was never cached: it changed nothing handlers were told of.
    expect(seen).toEqual(['add a', 'delete a', 'add b']);
  });

  it('keeps going when a change handler throws: the error is logged, later changes still arrive', async () => {
    const { kube, clock, log, informer } = setup({
      onChange: (object) => {
        if (object.metadata.name === 'poison') throw new Error('handler bug');
      },
    });
    informer.start();
    await informer.waitForSync();
    kube.put(TYPE, namespace('poison'));
    kube.put(TYPE, namespace('after'));
    await clock.advance(10);
    expect(informer.get('poison')).toBeDefined();
    expect(informer.get('after')).toBeDefined();
    expect(log.lines.some((line) => line.msg === 'change handler failed')).toBe(true);
    expect(kube.openWatches('namespaces')).toBe(1);
  });

  it('repairs a missed event with the periodic relist', async () => {
    const { kube, clock, informer, relists } = setup({ relistIntervalMs: 60_000 });
    kube.put(TYPE, namespace('kept'));
    kube.put(TYPE, namespace('lost'));
    informer.start();
    await informer.waitForSync();
    kube.remove(TYPE, 'lost', undefined, { lost: true });
    await clock.advance(30_000);
    expect(informer.get('lost')).toBeDefined();
    await clock.advance(31_000);
    expect(relists).toEqual(['initial', 'periodic']);
    expect(informer.get('lost')).toBeUndefined();
    expect(informer.get('kept')).toBeDefined();
  });

  it('relists when its resource version has expired (410 Gone)', async () => {
    const { kube, clock, informer, relists, restarts } = setup();
    informer.start();
    await informer.waitForSync();
    kube.put(TYPE, namespace('before'));
    kube.compact();
    kube.closeWatches();
    kube.put(TYPE, namespace('during'));
    await clock.advance(10);
    expect(restarts).toContain('expired');
    expect(relists).toEqual(['initial', 'expired']);
    expect(informer.get('during')).toBeDefined();
  });

  it.each([
    ['500', apiError(500, 'InternalError')],
    ['429', apiError(429, 'TooManyRequests')],
    ['a timeout', 'timeout' as const],
  ])('backs off after %s and resumes without losing changes', async (_name, fault) => {
    const { kube, clock, informer, restarts } = setup();
    informer.start();
    await informer.waitForSync();
    await clock.advance(10);
    expect(kube.openWatches('namespaces')).toBe(1);
    expect(informer.retrying).toBe(false);
    kube.failNext({ verb: 'watch' }, fault, 3);
    kube.closeWatches(new Error('connection reset'));
    kube.put(TYPE, namespace('while-failing'));
    await clock.advance(100);
    expect(informer.get('while-failing')).toBeUndefined();
    // Missing a change, and saying so (kopek_pending_work's watch_retry).
    expect(informer.retrying).toBe(true);
    // The broken stream and three refused watches: 0.8 + 1.6 + 3.2 + 6.4 s (±20%) of backoff,
    // then the watch resumes from where it was, without a relist.
    await clock.advance(15_000);
    expect(informer.get('while-failing')).toBeDefined();
    expect(informer.retrying).toBe(false);
    expect(restarts.filter((reason) => reason === 'error').length).toBe(4);
    expect(kube.count('list')).toBe(1);
  });

  it('reconnects a watch that went silent', async () => {
    const { kube, clock, informer, restarts } = setup();
    informer.start();
    await informer.waitForSync();
    await clock.advance(151_000);
    expect(restarts).toContain('idle');
    expect(kube.count('watch')).toBe(2);
    expect(kube.openWatches('namespaces')).toBe(1);
  });
});
