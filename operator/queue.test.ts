import { describe, expect, it } from 'vitest';
import { WorkQueue } from './queue.ts';
import { ManualClock } from './testing/manual-clock.ts';

describe('WorkQueue', () => {
  it('never holds a key twice', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
  });

  it('never hands a key to two workers: a key added while in progress comes back after done', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a');
    const first = await queue.get();
    queue.add('a');
    expect(queue.length).toBe(0);
    let second: string | undefined;
    void queue.get().then((key) => (second = key));
    await Promise.resolve();
    expect(second).toBeUndefined();
    queue.done(first ?? '');
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('hands out low-priority keys only when no other key waits, and promotes one added again', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('refresh-1', 'low');
    queue.add('refresh-2', 'low');
    queue.add('refresh-3', 'low');
    queue.add('change');
    queue.add('refresh-3');
    queue.add('change', 'low');
    expect(queue.length).toBe(4);
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) order.push(await queue.get());
    expect(order).toEqual(['change', 'refresh-3', 'refresh-1', 'refresh-2']);
  });

  it('hands out high-priority keys first, and moves a key up a lane but never down', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('pods-moved');
    queue.add('refresh', 'low');
    queue.add('edited', 'high');
    queue.add('refresh', 'high');
    queue.add('edited', 'low');
    queue.add('pods-moved-too');
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) order.push(await queue.get());
    expect(order).toEqual(['edited', 'refresh', 'pods-moved', 'pods-moved-too']);
  });

  it('requeues a key raised while it is worked on in its higher lane', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a', 'low');
    const key = await queue.get();
    queue.add('a', 'low');
    queue.add('a', 'high');
    queue.add('b');
    queue.done(key ?? '');
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
  });

  it('requeues a key added during its work in the lane it was added with', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a');
    const key = await queue.get();
    queue.add('a', 'low');
    queue.done(key ?? '');
    queue.add('b');
    expect(await queue.get()).toBe('b');
    expect(await queue.get()).toBe('a');
  });

  it('backs a failing key off exponentially from 5 ms, capped at 1000 s, until forgotten', () => {
    const queue = new WorkQueue({ name: 'test', burst: 1_000_000 });
    const delays: number[] = [];
    const realAddAfter = queue.addAfter.bind(queue);
    queue.addAfter = (key: string, delayMs: number): void => {
      delays.push(delayMs);
      realAddAfter(key, 0);
    };
    for (let i = 0; i < 20; i++) queue.addRateLimited('a');
    expect(delays.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(delays[19]).toBe(1_000_000);
    expect(queue.retries('a')).toBe(20);
    queue.forget('a');
    queue.addRateLimited('a');
    expect(delays[20]).toBe(5);
  });

  it('spaces rate-limited adds by the global token bucket once the burst is spent', () => {
    const queue = new WorkQueue({ name: 'test', qps: 10, burst: 2, clock: new ManualClock() });
    const delays: number[] = [];
    queue.addAfter = (_key: string, delayMs: number): void => {
      delays.push(delayMs);
    };
    for (const key of ['a', 'b', 'c', 'd']) queue.addRateLimited(key);
    // Two tokens of burst, then one token every 100 ms at 10 per second.
    expect(delays.map((d) => Math.round(d))).toEqual([5, 5, 100, 200]);
  });

  it('counts the keys waiting out a backoff until their time comes', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ name: 'test', clock });
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    queue.addRateLimited('b');
    expect(queue.delayedCount).toBe(2);
    expect(queue.length).toBe(0);
    await clock.advance(5);
    expect(queue.delayedCount).toBe(0);
    expect(queue.length).toBe(2);
  });

  it('tells waiting workers to stop when shut down', async () => {
    const queue = new WorkQueue({ name: 'test' });
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('late');
    expect(await queue.get()).toBeUndefined();
  });

  it('hands out no more keys once shut down, even those still queued', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a');
    queue.add('b', 'low');
    queue.shutDown();
    expect(await queue.get()).toBeUndefined();
  });
});
