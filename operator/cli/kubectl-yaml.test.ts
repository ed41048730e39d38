import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { writeDump } from '../../test/bench/kubectl-dump.ts';
import { parseKubectlYaml } from './kubectl-yaml.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fast = (text: string) => parseKubectlYaml(Buffer.from(text));
/** What the general parser makes of the text, empty documents left out. */
const general = (text: string) => loadAll(text).filter((d) => d !== null && d !== undefined);

describe('parseKubectlYaml: the YAML kubectl prints, as a general parser reads it', () => {
  const same: Record<string, string> = {
    'a kubectl List, sequences at their key’s column': `apiVersion: v1
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    annotations:
      deployment.kubernetes.io/revision: "3"
    labels: {}
    name: web
  spec:
    replicas: 3
    template:
      spec:
        containers:
        - args:
          - --port=8080
          - -v
          image: nginx:1.27
          ports:
          - containerPort: 80
            protocol: TCP
        volumes: []
kind: List
metadata:
  resourceVersion: ""
`,
    'scalars of the core schema': `a: null
b: ~
c: true
d: False
e: 12
f: -3.5
g: 1e3
h: 0x1f
i: 0o17
j: "12"
k: 'it''s'
l: yes
m: 2026-11-01T10:00:00Z
n: 1_000
o: "tab\\tand \\"quotes\\" and \\u00e9"
q: http://example.com:8080/x
r: é ünïcödé
s:
t: "key: value"
`,
    'literal block scalars, clipped, stripped and kept': `last-applied: |
  {"kind":"Deployment",
    "indented": true}

  # not a comment
strip: |-
  one
  two
keep: |+
  kept

after: x
`,
    'documents, comments and blank lines': `# Source: chart/templates/a.yaml
---
apiVersion: v1
kind: Service

# a comment between keys
metadata:
  name: a
---
---
apiVersion: v1
kind: ConfigMap
data:
  x: "1"
...
`,
    'plain scalars folded over lines, as go-yaml writes long ones': `status:
  message: the kubelet could not start the container because
    its image was not found in the registry
  reason: Failed
`,
    'nested sequences and a lone dash': `- - a
  - b
-
  k: v
- x
`,
    'quoted keys': `"a b": 1
'c': 2
"x:y": 3
`,
  };
  for (const [name, text] of Object.entries(same)) {
    it(name, () => {
      const expected = general(text);
      const got = fast(text);
      // '...' ends the last document: outside the subset, read by the general parser.
      if (text.includes('\n...\n')) expect(got).toBeUndefined();
      else expect(got).toEqual(expected);
    });
  }

  it('reads a generated kubectl dump (npm run bench:dump) as JSON.parse reads the same dump as JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kopek-dump-'));
    try {
      const size = { nodes: 6, workloads: 8, podsPerWorkload: 3, namespaces: 2 };
      writeDump(join(dir, 'dump.yaml'), size, 'yaml');
      writeDump(join(dir, 'dump.json'), size, 'json');
      const yaml = parseKubectlYaml(readFileSync(join(dir, 'dump.yaml')));
      expect(yaml).toEqual([JSON.parse(readFileSync(join(dir, 'dump.json'), 'utf8'))]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reads the commerce fixture as the general parser does', () => {
    const text = readFileSync(join(root, 'test', 'fixtures', 'commerce', 'dump.yaml'), 'utf8');
    expect(fast(text)).toEqual(general(text));
  });

  const outside: Record<string, string> = {
    anchors: 'a: &x {b: 1}\nc: *x\n',
    tags: 'a: !!str 1\n',
    'flow collections': 'a: [1, 2]\n',
    'folded scalars': 'a: >\n  b\n',
    'a duplicate key': 'a: 1\na: 2\n',
    'a comment after a value': 'a: 1 # one\n',
    'YAML-only escapes': 'a: "\\x41"\n',
    'CRLF line ends': 'a: 1\r\nb: 2\r\n',
    'tabs as indentation': 'a:\n\tb: 1\n',
    'a bare scalar document': 'hello\n',
    '.inf, which JSON cannot say': 'a: .inf\n',
    'an indented first line': '  a: 1\n',
  };
  for (const [name, text] of Object.entries(outside)) {
    it(`leaves ${name} to the general parser`, () => {
      expect(fast(text)).toBeUndefined();
    });
  }
});
