import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * Checks an object against a CRD's OpenAPI v3 schema as kube-apiserver would on a create with
 * `fieldValidation=Strict` (kopek's writes): types, required fields, unknown fields, enums,
 * patterns, lengths, item and property counts, bounds, formats, list-map keys, and the CEL rules
 * (`x-kubernetes-validations`) of the schema, each evaluated by a predicate written for its rule
 * text below. A rule this file does not know is itself reported, so a new CEL rule in crds/
 * cannot go unchecked. Transition rules (those reading `oldSelf`) only apply to updates and are
 * skipped here.
 */

export interface OpenApiSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, OpenApiSchema>;
  required?: string[];
  items?: OpenApiSchema;
  additionalProperties?: boolean | OpenApiSchema;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Evaluators of the CEL rules in crds/, by their exact text. */
const CEL_RULES: Record<string, (self: unknown) => boolean> = {
  "!(self.verdict in ['Unknown', 'NotRecommended', 'Possible']) || (has(self.reasons) && size(self.reasons) > 0)":
    (self) => {
      const result = isObj(self) ? self : {};
      return (
        !['Unknown', 'NotRecommended', 'Possible'].includes(String(result.verdict)) ||
        (Array.isArray(result.reasons) && result.reasons.length > 0)
      );
    },
  "self.kind == 'Rollout' ? self.apiVersion == 'argoproj.io/v1alpha1' : (self.kind in ['Job', 'CronJob'] ? self.apiVersion == 'batch/v1' : self.apiVersion == 'apps/v1')":
    (self) => {
      const ref = isObj(self) ? self : {};
      if (ref.kind === 'Rollout') return ref.apiVersion === 'argoproj.io/v1alpha1';
      if (ref.kind === 'Job' || ref.kind === 'CronJob') return ref.apiVersion === 'batch/v1';
      return ref.apiVersion === 'apps/v1';
    },
};

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const INT_RANGE: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The schema of `version` (default: the first) of a CRD file in crds/. */
export function crdSchema(file: string, version?: string): OpenApiSchema {
  const crd = parse(
    readFileSync(fileURLToPath(new URL(`../../crds/${file}`, import.meta.url)), 'utf8'),
  ) as { spec: { versions: { name: string; schema: { openAPIV3Schema: OpenApiSchema } }[] } };
  const found =
    version === undefined
      ? crd.spec.versions[0]
      : crd.spec.versions.find((candidate) => candidate.name === version);
  if (!found) throw new Error(`${file} has no version ${version ?? ''}`);
  return found.schema.openAPIV3Schema;
}

/** Every way `value` breaks `schema`, as "path: problem" lines (empty when it is valid). */
export function schemaViolations(schema: OpenApiSchema, value: unknown, path = ''): string[] {
  const out: string[] = [];
  check(schema, value, path || '<root>', out, path === '');
  return out;
}

function check(
  schema: OpenApiSchema,
  value: unknown,
  path: string,
  out: string[],
  root: boolean,
): void {
  const fail = (problem: string): void => {
    out.push(`${path}: ${problem}`);
  };
  if (value === null) {
    if (!schema.nullable) fail('null is not allowed');
    return;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !Number.isInteger(value)) fail('must be an integer or string');
    return;
  }
  if (!checkType(schema, value, path, out, root)) return;
  if (schema.enum && !schema.enum.includes(value)) fail(`${JSON.stringify(value)} is not in enum`);
  for (const { rule, message } of schema['x-kubernetes-validations'] ?? []) {
    if (/\boldSelf\b/.test(rule)) continue;
    const evaluate = CEL_RULES[rule];
    if (!evaluate) fail(`no evaluator in crd-schema.ts for CEL rule: ${rule}`);
    else if (!evaluate(value)) fail(message ?? `fails ${rule}`);
  }
}

/** Checks the type and what goes with it; false when the type is wrong (nothing more to check). */
function checkType(
  schema: OpenApiSchema,
  value: unknown,
  path: string,
  out: string[],
  root: boolean,
): boolean {
  const wrong = (what: string): boolean => {
    out.push(`${path}: must be ${what}, got ${describe(value)}`);
    return false;
  };
  switch (schema.type) {
    case 'object':
      if (!isObj(value)) return wrong('an object');
      checkObject(schema, value, path, out, root);
      return true;
    case 'array':
      if (!Array.isArray(value)) return wrong('an array');
      checkArray(schema, value, path, out);
      return true;
    case 'string':
      if (typeof value !== 'string') return wrong('a string');
      checkString(schema, value, path, out);
      return true;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return wrong(`a ${schema.type}`);
      if (schema.type === 'integer' && !Number.isInteger(value)) return wrong('an integer');
      checkNumber(schema, value, path, out);
      return true;
    case 'boolean':
      return typeof value === 'boolean' || wrong('a boolean');
    default:
      if (!schema['x-kubernetes-preserve-unknown-fields'])
        out.push(`${path}: the schema gives no type (not structural)`);
      return true;
  }
}

function checkNumber(schema: OpenApiSchema, value: number, path: string, out: string[]): void {
  const range = INT_RANGE[schema.format ?? ''];
  if (range && (value < range[0] || value > range[1]))
    out.push(`${path}: ${value} is out of ${schema.format ?? ''} range`);
  if (schema.minimum !== undefined && value < schema.minimum)
    out.push(`${path}: ${value} is below the minimum ${schema.minimum}`);
  if (schema.maximum !== undefined && value > schema.maximum)
    out.push(`${path}: ${value} is above the maximum ${schema.maximum}`);
}

function checkObject(
  schema: OpenApiSchema,
  value: Obj,
  path: string,
  out: string[],
  root: boolean,
): void {
  const fail = (problem: string): void => {
    out.push(`${path}: ${problem}`);
  };
  for (const key of schema.required ?? []) if (value[key] === undefined) fail(`${key} is required`);
  const count = Object.keys(value).length;
  if (schema.maxProperties !== undefined && count > schema.maxProperties)
    fail(`${count} properties, at most ${schema.maxProperties}`);
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path === '<root>' ? '' : `${path}.`}${key}`;
    if (child === undefined) continue;
    if (root && key === 'metadata') {
      checkMetadata(child, childPath, out);
      continue;
    }
    if (root && (key === 'apiVersion' || key === 'kind')) continue;
    const known = schema.properties?.[key];
    if (known) check(known, child, childPath, out, false);
    else if (isObj(schema.additionalProperties))
      check(schema.additionalProperties, child, childPath, out, false);
    else if (
      schema.additionalProperties !== true &&
      !schema['x-kubernetes-preserve-unknown-fields']
    )
      out.push(`${childPath}: unknown field`);
  }
}

function checkArray(schema: OpenApiSchema, value: unknown[], path: string, out: string[]): void {
  if (schema.maxItems !== undefined && value.length > schema.maxItems)
    out.push(`${path}: ${value.length} items, at most ${schema.maxItems}`);
  if (schema.minItems !== undefined && value.length < schema.minItems)
    out.push(`${path}: ${value.length} items, at least ${schema.minItems}`);
  value.forEach((item, i) => {
    if (schema.items) check(schema.items, item, `${path}[${i}]`, out, false);
  });
  const listType = schema['x-kubernetes-list-type'];
  const keyOf = (item: unknown): string =>
    listType === 'map'
      ? JSON.stringify((schema['x-kubernetes-list-map-keys'] ?? []).map((k) => (item as Obj)[k]))
      : JSON.stringify(item);
  if (listType === 'map' || listType === 'set') {
    const seen = new Set<string>();
    for (const item of value) {
      const key = keyOf(item);
      if (seen.has(key)) out.push(`${path}: duplicate ${listType} entry ${key}`);
      seen.add(key);
    }
  }
}

function checkString(schema: OpenApiSchema, value: string, path: string, out: string[]): void {
  const fail = (problem: string): void => {
    out.push(`${path}: ${problem}`);
  };
  // The API server counts characters (code points), not UTF-16 units.
  const length = Array.from(value).length;
  if (schema.maxLength !== undefined && length > schema.maxLength)
    fail(`${length} characters, at most ${schema.maxLength}`);
  if (schema.minLength !== undefined && length < schema.minLength)
    fail(`${length} characters, at least ${schema.minLength}`);
  if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value))
    fail(`${JSON.stringify(value.slice(0, 80))} does not match ${schema.pattern}`);
  if (schema.format === 'date-time' && !RFC3339.test(value))
    fail(`${JSON.stringify(value)} is not an RFC 3339 date-time`);
}

/** What the API server checks of the metadata kopek writes: name, namespace, labels. */
function checkMetadata(metadata: unknown, path: string, out: string[]): void {
  if (!isObj(metadata)) {
    out.push(`${path}: must be an object`);
    return;
  }
  const name = metadata.name;
  if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name))
    out.push(`${path}.name: ${JSON.stringify(name)} is not a DNS subdomain of at most 253`);
  for (const [key, label] of Object.entries(isObj(metadata.labels) ? metadata.labels : {})) {
    if (typeof label !== 'string' || label.length > 63)
      out.push(`${path}.labels.${key}: invalid label value`);
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : typeof value;
}
