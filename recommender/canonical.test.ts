import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical.ts';

/** The definition: a deep copy with every object's keys in Array.prototype.sort's order. */
function sortedCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedCopy);
  if (typeof value !== 'object' || value === null) return value;
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value).sort())
    out[key] = sortedCopy((value as Record<string, unknown>)[key]);
  return out;
}

/** Keys that sort differently by code unit than by locale: case, accents, digits, astral. */
const keys = fc.oneof(
  fc.constantFrom('a', 'B', 'b', 'é', 'z', 'Z', '10', '9', '_', '😀', 'ﬀ', 'aa', '', '__proto__'),
  fc.string({ maxLength: 4 }),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.string({ maxLength: 6 }),
    fc.constant(undefined),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(keys, tie('value'), { maxKeys: 8 }),
  ),
})).value;

describe('canonicalJson', () => {
  it('is JSON.stringify of the value with every object’s keys sorted', () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(canonicalJson(value)).toBe(JSON.stringify(sortedCopy(value)));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the same sorted text for the same content in any key order, many keys too', () => {
    const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 3 }), {
      minLength: 1,
      maxLength: 60,
      size: 'max',
    });
    fc.assert(
      fc.property(names, (list) => {
        const record = Object.fromEntries(list.map((name, i) => [name, i]));
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        expect(canonicalJson({ outer: reversed })).toBe(canonicalJson({ outer: record }));
        expect(canonicalJson(reversed)).toBe(JSON.stringify(sortedCopy(record)));
      }),
    );
  });

  it('sorts by UTF-16 code units, not by locale, in any key order', () => {
    expect(canonicalJson({ b: 1, a: { z: [{ y: 1, x: 2 }], é: 3, Z: 4 } })).toBe(
      '{"a":{"Z":4,"z":[{"x":2,"y":1}],"é":3},"b":1}',
    );
    expect(canonicalJson({ a: 1, b: undefined, c: [undefined] })).toBe('{"a":1,"c":[null]}');
    // A key named __proto__ (JSON.parse makes one) is kept whether or not the object was sorted.
    const proto = '{"__proto__":1,"a":2}';
    expect(canonicalJson(JSON.parse(proto))).toBe(proto);
    expect(canonicalJson(JSON.parse('{"a":2,"__proto__":1}'))).toBe(proto);
  });
});
