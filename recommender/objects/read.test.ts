import { describe, expect, it } from 'vitest';
import { metaOf, objs, strMap } from './read.ts';

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

describe('objs', () => {
  it('returns a list of only objects as it is, and a copy of the objects of any other list', () => {
    const containers = [{ name: 'a' }, { name: 'b' }];
    expect(objs(containers)).toBe(containers);
    const mixed = [{ name: 'a' }, 'b', null, ['c'], { name: 'd' }];
    expect(objs(mixed)).toEqual([{ name: 'a' }, { name: 'd' }]);
    expect(mixed).toHaveLength(5);
    expect(objs(undefined)).toEqual([]);
    expect(objs({ name: 'a' })).toEqual([]);
  });
});

describe('metaOf', () => {
  it('returns well-formed owner references as they are, and one shared value for what is absent', () => {
    const ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'u', controller: true },
    ];
    const meta = metaOf({ metadata: { name: 'web-1-a', ownerReferences } });
    expect(meta?.owners).toBe(ownerReferences);
    const bare = metaOf({ metadata: { name: 'bare' } });
    const other = metaOf({ metadata: { name: 'other' } });
    expect(bare?.owners).toEqual([]);
    expect(bare?.labels).toEqual({});
    expect(bare?.owners).toBe(other?.owners);
    expect(bare?.labels).toBe(other?.annotations);
  });

  it('copies owner references that are not all well-formed, keeping the usable ones', () => {
    const ownerReferences = [
      { kind: 'ReplicaSet', name: 'web-1' },
      { kind: 'Job', name: 7 },
      'not an object',
      { kind: 'Deployment', name: 'web', controller: true, apiVersion: 'apps/v1' },
    ];
    const meta = metaOf({ metadata: { name: 'web-1-a', ownerReferences } });
    expect(meta?.owners).toEqual([
      { kind: 'ReplicaSet', name: 'web-1', controller: false },
      { kind: 'Deployment', name: 'web', controller: true, apiVersion: 'apps/v1' },
    ]);
  });
});
