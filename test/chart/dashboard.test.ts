import { Histogram, Summary } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../operator/metrics.ts';
import {
  REALIZED_SAVINGS_METRIC,
  REALIZED_SAVINGS_PANEL,
  allPanels,
  metricNames,
  panelQueries,
  parseLabelValues,
  readDashboard,
  substituteVariables,
  variableQueries,
} from './dashboard.ts';

const dashboard = readDashboard();
const queries = panelQueries(dashboard);
const panels = allPanels(dashboard).filter((panel) => panel.type !== 'row');

/** Names a scrape of kopek can carry: every registered metric, histograms with their series. */
function exportedNames(): Set<string> {
  const names = new Set<string>(['up']);
  for (const metric of createMetrics().registry.getMetricsAsArray()) {
    names.add(metric.name);
    if (metric instanceof Histogram || metric instanceof Summary) {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

describe('metricNames (the scanner the dashboard and rule checks rely on)', () => {
  it.each([
    ['sum by (namespace) (rate(a_total{job="x", le="0.1"}[5m]))', ['a_total']],
    ['histogram_quantile(0.99, sum by (le) (rate(b_bucket[1m]))) > bool 1.5e3', ['b_bucket']],
    ['absent(up{job="kopek-metrics"} == 1)', ['up']],
    ['x / on (pod) group_left (node) y or vector(0)', ['x', 'y']],
    ['max(c{name=~"by|on"}) offset 5m unless d', ['c', 'd']],
  ])('%s reads %j', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe('the Grafana dashboard', () => {
  it('has a stable uid and a Prometheus datasource variable every panel and query uses', () => {
    expect(dashboard.uid).toBe('kopek-savings');
    const datasource = dashboard.templating.list.find((variable) => variable.name === 'datasource');
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of panels) {
      expect(panel.datasource, `panel "${panel.title}"`).toEqual({
        type: 'prometheus',
        uid: '${datasource}',
      });
      expect(panel.targets?.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid, `panel "${panel.title}" ${target.refId}`).toBe(
          '${datasource}',
        );
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      expect(variable.datasource?.uid, `variable ${variable.name}`).toBe('${datasource}');
    }
  });

  it('lays out panels with unique ids inside 24 columns, without overlaps', () => {
    const all = allPanels(dashboard);
    expect(new Set(all.map((panel) => panel.id)).size).toBe(all.length);
    for (const [i, a] of all.entries()) {
      expect(a.gridPos.x + a.gridPos.w, `panel "${a.title}"`).toBeLessThanOrEqual(24);
      for (const b of all.slice(i + 1)) {
        const overlap =
          a.gridPos.x < b.gridPos.x + b.gridPos.w &&
          b.gridPos.x < a.gridPos.x + a.gridPos.w &&
          a.gridPos.y < b.gridPos.y + b.gridPos.h &&
          b.gridPos.y < a.gridPos.y + a.gridPos.h;
        expect(overlap, `panels "${a.title}" and "${b.title}" overlap`).toBe(false);
      }
    }
  });

  it('selects every series by the $job variable, so two kopek installs never mix', () => {
    for (const query of queries) {
      for (const name of metricNames(query.expr)) {
        const uses = [...query.expr.matchAll(new RegExp(`(?<![\\w:])${name}(\\{[^}]*\\})?`, 'g'))];
        expect(uses.length, `${query.panel}: ${query.expr}`).toBeGreaterThan(0);
        for (const [use, selector] of uses) {
          expect(selector ?? '', `${query.panel}: ${use} in ${query.expr}`).toContain('job="$job"');
        }
      }
    }
  });

  it('reads only metrics kopek exports', () => {
    const exported = exportedNames();
    for (const query of queries) {
      for (const name of metricNames(query.expr)) {
        expect(
          exported.has(name),
          `panel "${query.panel}" reads ${name}, which kopek does not export`,
        ).toBe(true);
      }
    }
    const realized = panels.find((panel) => panel.title === REALIZED_SAVINGS_PANEL);
    expect(realized?.description).toContain('Empty until kopek applies changes');
  });

  it('has the panels a FinOps engineer looks for', () => {
    const read = (pattern: RegExp): string[] =>
      queries.filter((query) => pattern.test(query.expr)).map((query) => query.panel);
    const wanted: [string, RegExp][] = [
      [
        'total potential savings',
        /kopek_workload_potential_monthly_savings_usd\{[^}]*optimization="combined"/,
      ],
      ['savings by optimization', /sum by \(optimization\).*optimization!="combined"/],
      ['top workloads by savings', /topk\(.*kopek_workload_potential_monthly_savings_usd/],
      ['Spot coverage', /kopek_nodes\{[^}]*capacity_type="spot"/],
      ['arm64 coverage', /kopek_nodes\{[^}]*arch="arm64"/],
      ['cross-AZ cost', /kopek_workload_cross_zone_monthly_cost_usd/],
      ['top cross-zone edges', /topk\(.*kopek_workload_cross_zone_edge_monthly_cost_usd/],
      ['recommendations by verdict', /by \(optimization, verdict\) \(kopek_recommendations/],
      ['realized savings', new RegExp(REALIZED_SAVINGS_METRIC)],
      ['reconcile errors', /controller_runtime_reconcile_errors_total/],
      ['queue depth', /workqueue_depth/],
      ['last event age', /kopek_cache_last_event_age_seconds/],
    ];
    for (const [what, pattern] of wanted) {
      expect(read(pattern), `no panel shows ${what}`).not.toEqual([]);
    }
  });

  it('has variables whose queries are label_values over kopek metrics', () => {
    const variables = variableQueries(dashboard);
    expect(variables.map((variable) => variable.name)).toEqual(['job', 'namespace']);
    const exported = exportedNames();
    for (const variable of variables) {
      const { selector } = parseLabelValues(variable.query);
      for (const name of metricNames(selector))
        expect(exported.has(name), variable.name).toBe(true);
    }
  });

  it('fails loudly on a Grafana variable the tests do not know', () => {
    expect(
      substituteVariables('rate(x{job="$job"}[$__rate_interval])', {
        job: 'k',
        __rate_interval: '1m',
      }),
    ).toBe('rate(x{job="k"}[1m])');
    expect(() => substituteVariables('x{a="${cluster}"}', { job: 'k' })).toThrow(/\$\{cluster\}/);
  });
});
