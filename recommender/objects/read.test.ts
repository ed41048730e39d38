import { describe, expect, it } from 'vitest';
import { metaOf, strMap } from './read.ts';

describe('strMap', () => {
  it('returns labels that are all strings as they are: a cached object’s metadata is not copied', () => {
    const labels = { app: 'web', 'app.kubernetes.io/part-of': 'shop' };
    expect(strMap(labels)).toBe(labels);
    const raw = { metadata: { name: 'web', labels, annotations: { note: 'x' } } };
    const meta = metaOf(raw);
    expect(meta?.labels).toBe(raw.metadata.labels);
    expect(meta?.annotations).toBe(raw.metadata.annotations);
  });

  it('keeps only the string values of anything else, in a copy', () => {
    const mixed = { app: 'web', replicas: 3, nested: { a: 'b' } };
    const read = strMap(mixed);
    expect(read).toEqual({ app: 'web' });
    expect(read).not.toBe(mixed);
    expect(mixed).toEqual({ app: 'web', replicas: 3, nested: { a: 'b' } });
    expect(strMap(undefined)).toEqual({});
    expect(strMap(['a'])).toEqual({});
    expect(strMap(new Map([['a', 'b']]))).toEqual({});
  });
});
