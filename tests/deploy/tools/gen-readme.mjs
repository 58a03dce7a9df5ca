// Lists every value of values.yaml with its default and the "# --" comment above it.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
const text = readFileSync(process.argv[2], 'utf8');
const doc = YAML.parseDocument(text);
const rows = [];
function comment(node) { return (node?.commentBefore || '').split('\n').map((l) => l.replace(/^\s*-- ?/, '').trim()).filter(Boolean).join(' '); }
function walk(map, prefix, inherited) {
  map.items.forEach((pair, i) => {
    const key = `${prefix}${pair.key.value}`;
    const c = comment(pair.key) || (i === 0 ? comment(map) : '') || '';
    const v = pair.value;
    if (YAML.isMap(v) && v.items.length && !v.flow) walk(v, `${key}.`, c);
    else rows.push([key, JSON.stringify(v.toJSON()), c || inherited]);
  });
}
doc.contents.items[0].key.commentBefore = doc.contents.items[0].key.commentBefore?.split('\n').filter((l) => l.trim().startsWith('--')).join('\n');
walk(doc.contents, '', '');
const generic = {
  requests: 'Container resource requests.', limits: 'Container resource limits.', resources: 'Container resources.',
  nodeSelector: 'Pod nodeSelector.', tolerations: 'Pod tolerations.', affinity: 'Pod affinity.',
  pdbMaxUnavailable: 'PodDisruptionBudget maxUnavailable.', shutdownGrace: 'Time in-flight RPCs get after SIGTERM.',
  enabled: 'Deploy this service.', replicas: 'Replicas.', annotations: 'Annotations of the ServiceAccount.', labels: 'Extra labels of the PrometheusRule.',
};
for (const r of rows) if (!r[2]) r[2] = generic[r[0].split('.').at(-1)] ?? '';
console.log('| Value | Default | Meaning |\n|---|---|---|');
for (const [k, d, c] of rows) console.log(`| \`${k}\` | \`${d.replace(/\|/g, '\\|')}\` | ${c} |`);
