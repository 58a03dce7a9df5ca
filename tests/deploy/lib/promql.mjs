// Finds the metric names a PromQL expression reads, and checks each is one
// the services really export (documented in docs/metrics.md and named in the
// code), a recording rule of the chart, or Prometheus' own `up`.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { repoRoot } from './paths.mjs';

export function metricNames(expr) {
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names = new Set();
  for (const m of unquoted.matchAll(/(?<![\w:])([a-zA-Z_:][\w:]*)\s*(?=[{[])/g)) names.add(m[1]);
  // A bare selector: metric followed by ')' or ' ' or end (e.g. max(gyre_agents_connected)).
  for (const m of unquoted.matchAll(/(?<![\w:])((?:gyre|orchestrator|process|predictor)[_:][\w:]*)(?![\w:(])/g)) names.add(m[1]);
  return [...names].filter((n) => !['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset'].includes(n));
}

function sourceFiles(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = `${dir}/${name}`;
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(cc|h)$/.test(name) && !/_test\.cc$/.test(name)) out.push(path);
  }
  return out;
}

let code;
function exportedInCode(name) {
  code ??= ['services', 'libs', 'cmd'].flatMap((d) => sourceFiles(`${repoRoot}/${d}`)).map((f) => readFileSync(f, 'utf8')).join('\n');
  return code.includes(`"${name}"`);
}

let docs;
function documented(name) {
  docs ??= readFileSync(`${repoRoot}/docs/metrics.md`, 'utf8');
  return docs.includes(`\`${name}\``);
}

// Series names the forecast switch reads before the predictor exports them
// (a contract documented in docs/metrics.md and docs/operations.md).
export const futureSeries = new Set(['gyre_predicted_desired_workers']);

// Returns a list of problems, empty when every metric is real.
export function checkMetrics(expr, recordingRules, where) {
  const problems = [];
  for (const name of metricNames(expr)) {
    if (name === 'up' || recordingRules.has(name)) continue;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    if (futureSeries.has(base)) {
      if (!documented(base)) problems.push(`${where}: ${name} is not in docs/metrics.md`);
      continue;
    }
    if (!documented(base)) problems.push(`${where}: ${name} is not in docs/metrics.md`);
    if (!exportedInCode(base)) problems.push(`${where}: ${name} is not exported by any service (no "${base}" in services/, libs/, cmd/)`);
  }
  return problems;
}
