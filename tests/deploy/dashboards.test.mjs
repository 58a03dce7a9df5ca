// The Grafana dashboards: type-checked against @grafana/schema, unique uids,
// the datasource and worker_type variables, a query on every panel, every
// query on a real metric; and every alert, recording rule and scaler query on
// real metrics too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { chartDir } from './lib/paths.mjs';
import { renderChart, productionValues, run } from './lib/render.mjs';
import { typecheck } from './lib/typecheck.mjs';
import { checkMetrics, metricNames } from './lib/promql.mjs';
import { renderedRuleGroups } from './lib/rules.mjs';
import { deployTestDir } from './lib/paths.mjs';

const dir = `${chartDir}/files/dashboards`;
const dashboards = readdirSync(dir).filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, json: JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) }));
const recordingRules = new Set(renderedRuleGroups().flatMap((g) => g.rules).filter((r) => r.record).map((r) => r.record));

test('three dashboards: Workflow Execution, Scheduling & Queues, System Health', () => {
  assert.deepEqual(dashboards.map((d) => d.json.title).sort(),
    ['Gyre / Scheduling & Queues', 'Gyre / System Health', 'Gyre / Workflow Execution']);
});

test('the dashboards type-check against @grafana/schema (tsc, strict)', () => {
  typecheck(dashboards.map(({ file, json }) => ({
    name: file.replace(/\W/g, '_'),
    imports: [['@grafana/schema', 'Dashboard']],
    body: `export const d = ${JSON.stringify(json, null, 2)} satisfies Dashboard;`,
  })));
  assert.throws(() => typecheck([{ name: 'bad', imports: [['@grafana/schema', 'Dashboard']],
    body: 'export const d = { title: "x", panels: [{ type: "timeseries", titel: "typo" }] } satisfies Dashboard;' }]), /titel/);
});

test('uids are unique; every dashboard has the datasource variable and every panel queries through it', () => {
  const uids = dashboards.map((d) => d.json.uid);
  assert.equal(new Set(uids).size, uids.length);
  for (const { file, json } of dashboards) {
    const vars = json.templating.list;
    const ds = vars.find((v) => v.name === 'datasource');
    assert.ok(ds && ds.type === 'datasource' && ds.query === 'prometheus', `${file}: datasource variable`);
    assert.ok(json.panels.length >= 4, `${file}: panels`);
    for (const panel of json.panels) {
      assert.ok(panel.targets?.length, `${file}: panel "${panel.title}" has a query`);
      for (const t of panel.targets) {
        assert.ok(t.expr?.trim(), `${file}: panel "${panel.title}" ${t.refId} has an expression`);
        assert.equal(t.datasource.uid, '${datasource}', `${file}: panel "${panel.title}" uses the datasource variable`);
      }
    }
  }
  const sched = dashboards.find((d) => d.json.uid === 'gyre-scheduling-queues').json;
  assert.ok(sched.templating.list.some((v) => v.name === 'worker_type'), 'worker_type variable');
  assert.ok(sched.panels.some((p) => p.targets.some((t) => t.expr.includes('$worker_type'))), 'queries filter on $worker_type');
});

test('every dashboard query, rule and scaler query reads only metrics the services export', () => {
  const problems = [];
  for (const { file, json } of dashboards) {
    for (const panel of json.panels) {
      for (const t of panel.targets) problems.push(...checkMetrics(t.expr, recordingRules, `${file} "${panel.title}"`));
    }
  }
  for (const rule of renderedRuleGroups().flatMap((g) => g.rules)) {
    problems.push(...checkMetrics(rule.expr, recordingRules, rule.alert ?? rule.record));
  }
  const objects = renderChart({ values: [productionValues], crds: true });
  for (const so of objects.filter((o) => o.kind === 'ScaledObject')) {
    problems.push(...checkMetrics(so.spec.triggers[0].metadata.query, recordingRules, so.metadata.name));
  }
  assert.deepEqual(problems, []);
  // The check itself can fail:
  assert.deepEqual(metricNames('sum(rate(gyre_made_up_total{job="x"}[5m])) / max(gyre_agents_connected)').sort(),
    ['gyre_agents_connected', 'gyre_made_up_total']);
  assert.equal(checkMetrics('rate(gyre_made_up_total[5m])', recordingRules, 'x').length, 2);
});

test('the dashboards are what tools/gen-dashboards.mjs generates', () => {
  const tmp = run('mktemp', ['-d']).trim();
  run(process.execPath, [`${deployTestDir}/tools/gen-dashboards.mjs`, tmp]);
  for (const { file } of dashboards) {
    assert.equal(readFileSync(`${tmp}/${file}`, 'utf8'), readFileSync(`${dir}/${file}`, 'utf8'), `${file} is stale: regenerate it`);
  }
  run('rm', ['-rf', tmp]);
});
