/**
 * Kubernetes resource quantities ("500m", "1.5", "512Mi", "1G", "1e3") to plain numbers in
 * base units (cores, bytes). Anything else is not a quantity: undefined, never NaN.
 */

const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/;

/**
 * Strings parsed before, and what they gave (null: not a quantity). A fleet's requests are a few
 * hundred distinct strings, read at every build of every pod's workload: the regex's match arrays
 * were a tenth of what a full rebuild allocated at the scale benchmark's size. The table starts
 * over when it is full.
 */
const parsed = new Map<string, number | null>();
const PARSED_KEPT = 4096;

/** Parses a quantity (a string, or a number as YAML may give it); undefined when it is not one. */
export function parseQuantity(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  let n = parsed.get(value);
  if (n === undefined) {
    n = parseString(value) ?? null;
    if (parsed.size >= PARSED_KEPT) parsed.clear();
    parsed.set(value, n);
  }
  return n ?? undefined;
}

function parseString(value: string): number | undefined {
  const m = QUANTITY.exec(value.trim());
  if (m === null) return undefined;
  const [, digits = '', exponent, suffix = ''] = m;
  const base = Number(digits);
  const n = exponent !== undefined ? Number(`${digits}${exponent}`) : base * (SUFFIX[suffix] ?? 1);
  return Number.isFinite(n) ? n : undefined;
}
