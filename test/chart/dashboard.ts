import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Grafana dashboard the chart ships (its ConfigMap loads this file as is). */
export const DASHBOARD_PATH = fileURLToPath(
  new URL('../../charts/kopek/dashboards/kopek.json', import.meta.url),
);

export interface Datasource {
  type?: string;
  uid?: string;
}

export interface Target {
  refId: string;
  expr?: string;
  datasource?: Datasource;
  instant?: boolean;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: Datasource;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}

export interface Variable {
  type: string;
  name: string;
  query?: string | { query?: string };
  datasource?: Datasource;
  allValue?: string;
  includeAll?: boolean;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

export interface DashboardQuery {
  panel: string;
  refId: string;
  expr: string;
  instant: boolean;
}

/** Every PromQL expression of every panel, as written in the JSON. */
export function panelQueries(dashboard: Dashboard): DashboardQuery[] {
  return allPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) =>
      target.expr === undefined
        ? []
        : [
            {
              panel: panel.title,
              refId: target.refId,
              expr: target.expr,
              instant: target.instant === true,
            },
          ],
    ),
  );
}

/** The query of each query variable (e.g. `label_values(metric{...}, label)`). */
export function variableQueries(dashboard: Dashboard): { name: string; query: string }[] {
  return dashboard.templating.list.flatMap((variable) => {
    if (variable.type !== 'query') return [];
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query === undefined) throw new Error(`dashboard variable ${variable.name} has no query`);
    return [{ name: variable.name, query }];
  });
}

/**
 * Replaces Grafana variables (`$name`, `${name}`, `[[name]]`) by the given values; throws
 * naming any variable it was not given, so a new variable cannot slip past the tests.
 */
export function substituteVariables(
  expr: string,
  values: Readonly<Record<string, string>>,
): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, ...groups) => {
    const name = (groups[0] ?? groups[1] ?? groups[2]) as string;
    const value = values[name];
    if (value === undefined)
      throw new Error(`no test value for Grafana variable ${whole} in ${expr}`);
    return value;
  });
}

/** `label_values(selector, label)` of a Grafana Prometheus variable, parsed. */
export function parseLabelValues(query: string): { selector: string; label: string } {
  const match = /^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$/.exec(query);
  if (!match?.[1] || !match[2])
    throw new Error(`not a label_values(selector, label) query: ${query}`);
  return { selector: match[1], label: match[2] };
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names a PromQL expression reads. A small scanner, not a parser: it drops string
 * literals, label matchers `{...}`, ranges `[...]` and grouping label lists (`by (...)`,
 * `on (...)`, ...), then keeps identifiers that are not functions (followed by `(`) or keywords.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?/g)) {
    const [, name, call] = match;
    if (name === undefined || call !== undefined || KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * The metric of realized savings (Apply mode). It has series only once kopek applied a change
 * that succeeded, so tests whose kopek applies nothing expect the panel to be empty.
 */
export const REALIZED_SAVINGS_METRIC = 'kopek_workload_realized_monthly_savings_usd';
export const REALIZED_SAVINGS_PANEL = 'Realized savings / month';
