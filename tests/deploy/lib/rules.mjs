// The chart's PrometheusRule as a plain Prometheus rules file.
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { renderChart } from './render.mjs';

export function renderedRuleGroups(options = {}) {
  const rule = renderChart({ crds: true, ...options }).find((o) => o.kind === 'PrometheusRule');
  if (!rule) throw new Error('the chart rendered no PrometheusRule');
  return rule.spec.groups;
}

export function writeRulesFile(path, groups) {
  writeFileSync(path, YAML.stringify({ groups }, { lineWidth: 0 }));
}
