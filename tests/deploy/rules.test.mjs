// The chart's alerts and recording rules: promtool check rules, promtool test
// rules (a firing and a non-firing case per alert), annotations and runbooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, copyFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import YAML from 'yaml';
import { deployTestDir, repoRoot } from './lib/paths.mjs';
import { run } from './lib/render.mjs';
import { renderedRuleGroups, writeRulesFile } from './lib/rules.mjs';

const promtool = '/usr/bin/promtool';
const groups = renderedRuleGroups();
const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert);

function inTempDir(fn) {
  if (!existsSync(promtool)) throw new Error(`${promtool} not found: run scripts/setup (Debian package prometheus)`);
  const dir = mkdtempSync(`${tmpdir()}/gyre-rules-`);
  try {
    writeRulesFile(`${dir}/rules.yaml`, groups);
    copyFileSync(`${deployTestDir}/promtool/alerts_test.yaml`, `${dir}/alerts_test.yaml`);
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('promtool check rules accepts the rendered rules', () => {
  const out = inTempDir((dir) => run(promtool, ['check', 'rules', `${dir}/rules.yaml`]));
  assert.match(out, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: every alert fires when it should and stays quiet when it should', () => {
  inTempDir((dir) => run(promtool, ['test', 'rules', `${dir}/alerts_test.yaml`]));
});

test('each alert has one firing and one non-firing promtool case', () => {
  const cases = YAML.parse(readFileSync(`${deployTestDir}/promtool/alerts_test.yaml`, 'utf8')).tests
    .flatMap((t) => t.alert_rule_test);
  for (const { alert } of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    assert.ok(mine.some((c) => c.exp_alerts.length > 0), `${alert}: a case where it fires`);
    assert.ok(mine.some((c) => c.exp_alerts.length === 0), `${alert}: a case where it does not`);
  }
  assert.equal(alerts.length, 8);
});

test('each alert has a summary, a description and a runbook_url that resolves to a section of docs/operations.md', () => {
  const guide = readFileSync(`${repoRoot}/docs/operations.md`, 'utf8');
  // GitHub's anchors: lower case, punctuation dropped, spaces to '-'.
  const anchors = new Set([...guide.matchAll(/^#+ (.+)$/gm)].map(([, h]) => h.toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  for (const { alert, annotations, labels } of alerts) {
    assert.ok(annotations.summary && annotations.description, `${alert}: summary and description`);
    assert.ok(['warning', 'critical'].includes(labels.severity), `${alert}: severity`);
    const [url, anchor] = annotations.runbook_url.split('#');
    assert.match(url, /docs\/operations\.md$/, `${alert}: runbook in the operator's guide`);
    assert.ok(anchors.has(anchor), `${alert}: docs/operations.md has a section #${anchor}`);
  }
});
