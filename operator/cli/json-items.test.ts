import { describe, expect, it } from 'vitest';
import { jsonItems } from './json-items.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('jsonItems', () => {
  it('reads the items of a List, wherever they are among its fields, as JSON.parse does', () => {
    const list = {
      apiVersion: 'v1',
      metadata: { resourceVersion: '', note: 'items: [ } ] {' },
      items: [
        { kind: 'Pod', metadata: { name: 'a', annotations: { q: 'say "hi" \\ {[' } } },
        {
          kind: 'Pod',
          metadata: { name: 'ü-ñ-日本', labels: {} },
          spec: { x: [1, -2.5e3, true, null] },
        },
        'text',
        42,
      ],
      kind: 'List',
    };
    expect(jsonItems(bytes(JSON.stringify(list, null, 2)))).toEqual(list.items);
    expect(jsonItems(bytes(JSON.stringify(list)))).toEqual(list.items);
  });

  it('reads the elements of a top-level array, and empty lists', () => {
    expect(jsonItems(bytes(' [ {"a": 1} , {"b": [2]} ]\n'))).toEqual([{ a: 1 }, { b: [2] }]);
    expect(jsonItems(bytes('[]'))).toEqual([]);
    expect(jsonItems(bytes('{"kind": "List", "items": []}'))).toEqual([]);
    expect(jsonItems(bytes('{"kind":"PodList","items":[[],{},[[]],1]}'))).toEqual([
      [],
      {},
      [[]],
      1,
    ]);
  });

  it('reads strings that end in an escaped backslash, and of a key given twice the last, as JSON.parse does', () => {
    const text = String.raw`{"kind": "List", "items": [{"a": "x\\"}, "\\\"", "\\"], "metadata": {"q": "]}"}}`;
    expect(jsonItems(bytes(text))).toEqual((JSON.parse(text) as { items: unknown[] }).items);
    expect(jsonItems(bytes('{"kind": "List", "items": [1], "items": [2]}'))).toEqual([2]);
    expect(jsonItems(bytes('{"kind": "List", "items": [1], "items": null}'))).toBeUndefined();
  });

  it('gives nothing for one object without items: there is nothing to split', () => {
    // Only a List is a list of objects: a Pod with a field called items is one object.
    expect(jsonItems(bytes('{"kind": "Pod", "items": [1]}'))).toBeUndefined();
    expect(jsonItems(bytes('{"items": [1]}'))).toBeUndefined();
    expect(jsonItems(bytes('{"kind": "Pod", "metadata": {"name": "a"}}'))).toBeUndefined();
    expect(jsonItems(bytes('{}'))).toBeUndefined();
    expect(jsonItems(bytes('{"kind": "List", "items": "not a list"}'))).toBeUndefined();
  });

  it('says where the text stops being JSON', () => {
    expect(() => jsonItems(bytes('{"items": [{"a": 1}, {"b": tru}]}'))).toThrow(
      /^not valid JSON in the value at byte 21: /,
    );
    // Where the bytes start in the file (after a byte-order mark) counts.
    expect(() => jsonItems(bytes('{"items": [{"a": 1}, {"b": tru}]}'), 3)).toThrow(
      /^not valid JSON in the value at byte 24: /,
    );
    // The List's other fields are JSON too.
    expect(() => jsonItems(bytes('{"kind": Lisst, "items": [1]}'))).toThrow(
      /^not valid JSON in the value at byte 9: /,
    );
    expect(() => jsonItems(bytes('{"items": [{"a": 1} {"b": 2}]}'))).toThrow(
      'not valid JSON at byte 20: expected , or ]',
    );
    expect(() => jsonItems(bytes('{"items": [{"a": "open'))).toThrow('ends inside a string');
    expect(() => jsonItems(bytes('{"items": [{"a": 1}'))).toThrow('expected , or ]');
    expect(() => jsonItems(bytes('{"items": []} trailing'))).toThrow('more text after the end');
    expect(() => jsonItems(bytes('apiVersion: v1\nkind: List\n'))).toThrow('expected {');
  });
});
