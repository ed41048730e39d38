import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * Keeps the TypeScript API types honest against crds/, the source of truth: for every field of
 * spec and status, the same names, the same required-ness, the same enum values, the same
 * shapes. (The examples' acceptance by the API server is tested in test/integration/crds.test.ts.)
 */

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: string[];
  items?: Schema;
  additionalProperties?: Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const typesFile = fileURLToPath(new URL('./v1alpha1.ts', import.meta.url));
const program = ts.createProgram([typesFile], {
  strict: true,
  exactOptionalPropertyTypes: true,
  noEmit: true,
});
const checker = program.getTypeChecker();
const source = program.getSourceFile(typesFile);

function exportedType(name: string): ts.Type {
  if (!source) throw new Error(`cannot read ${typesFile}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const symbol =
    moduleSymbol && checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name);
  if (!symbol) throw new Error(`${name} is not exported from v1alpha1.ts`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

function crdSchema(file: string): Schema {
  const crd = parse(
    readFileSync(fileURLToPath(new URL(`../../crds/${file}`, import.meta.url)), 'utf8'),
  ) as {
    spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
  };
  const version = crd.spec.versions[0];
  if (!version) throw new Error(`${file} has no version`);
  return version.schema.openAPIV3Schema;
}

/** Lists every difference between a schema and a TypeScript type, with the field path. */
function differences(path: string, schema: Schema, type: ts.Type): string[] {
  const t = checker.getNonNullableType(type);
  if (schema.enum) {
    const literals = t.isUnion() ? t.types : [t];
    const values = literals.map((literal) =>
      literal.isStringLiteral() ? literal.value : checker.typeToString(literal),
    );
    return [...values].sort().join('|') === [...schema.enum].sort().join('|')
      ? []
      : [`${path}: enum ${schema.enum.join('|')} vs type ${values.join('|')}`];
  }
  switch (schema.type) {
    case 'string':
      return t.flags & ts.TypeFlags.StringLike
        ? []
        : [`${path}: string vs ${checker.typeToString(t)}`];
    case 'integer':
    case 'number':
      return t.flags & ts.TypeFlags.NumberLike
        ? []
        : [`${path}: number vs ${checker.typeToString(t)}`];
    case 'boolean':
      return t.flags & ts.TypeFlags.BooleanLike
        ? []
        : [`${path}: boolean vs ${checker.typeToString(t)}`];
    case 'array': {
      if (!checker.isArrayType(t) || !schema.items)
        return [`${path}: array vs ${checker.typeToString(t)}`];
      const [element] = checker.getTypeArguments(t as ts.TypeReference);
      return element
        ? differences(`${path}[]`, schema.items, element)
        : [`${path}: array without element type`];
    }
    case 'object':
      return objectDifferences(path, schema, t);
    default:
      return [`${path}: schema type ${String(schema.type)} is not handled`];
  }
}

function objectDifferences(path: string, schema: Schema, t: ts.Type): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields'] || schema.additionalProperties) {
    const values = t.getStringIndexType();
    if (!values) return [`${path}: map vs ${checker.typeToString(t)}`];
    return schema.additionalProperties
      ? differences(`${path}{}`, schema.additionalProperties, values)
      : [];
  }
  const found: string[] = [];
  const schemaProps = schema.properties ?? {};
  const typeProps = new Map(t.getProperties().map((symbol) => [symbol.name, symbol]));
  for (const name of new Set([...Object.keys(schemaProps), ...typeProps.keys()])) {
    const propSchema = schemaProps[name];
    const symbol = typeProps.get(name);
    if (!propSchema) found.push(`${path}.${name}: in the type, not in the CRD`);
    else if (!symbol) found.push(`${path}.${name}: in the CRD, not in the type`);
    else {
      const optional = (symbol.flags & ts.SymbolFlags.Optional) !== 0;
      const required = schema.required?.includes(name) ?? false;
      if (optional === required)
        found.push(
          `${path}.${name}: ${required ? 'required' : 'optional'} in the CRD but not in the type`,
        );
      found.push(...differences(`${path}.${name}`, propSchema, checker.getTypeOfSymbol(symbol)));
    }
  }
  return found;
}

function specAndStatus(file: string, typeName: string): string[] {
  const root = crdSchema(file);
  const type = exportedType(typeName);
  return (['spec', 'status'] as const).flatMap((part) => {
    const schema = root.properties?.[part];
    const symbol = type.getProperty(part);
    if (!schema || !symbol) return [`${part}: missing from ${schema ? 'the type' : 'the CRD'}`];
    return differences(part, schema, checker.getTypeOfSymbol(symbol));
  });
}

describe('API types match the CRDs', () => {
  it('WorkloadRecommendation', () => {
    expect(
      specAndStatus('kopek.dev_workloadrecommendations.yaml', 'WorkloadRecommendation'),
    ).toEqual([]);
  });

  it('SavingsPolicy', () => {
    expect(specAndStatus('kopek.dev_savingspolicies.yaml', 'SavingsPolicy')).toEqual([]);
  });

  it('notices a difference (the check can fail)', () => {
    const schema: Schema = {
      type: 'object',
      required: ['targetRef'],
      properties: { targetRef: { type: 'string' } },
    };
    const spec = exportedType('WorkloadRecommendationSpec');
    expect(differences('spec', schema, spec)).toEqual([
      'spec.targetRef: string vs TargetRef',
      'spec.approve: in the type, not in the CRD',
    ]);
  });
});
