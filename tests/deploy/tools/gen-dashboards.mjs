// Generates the three Grafana dashboards of deploy/helm/gyre/files/dashboards.
// Every query reads a metric the services export (docs/metrics.md) or a
// recording rule of the chart; tests check both and the @grafana/schema types.
// Usage: node tools/gen-dashboards.mjs OUT_DIR
import { writeFileSync } from 'node:fs';
const out = process.argv[2];
const ds = { type: 'prometheus', uid: '${datasource}' };
let id = 0;
function panel(title, description, exprs, { unit = 'short', x = 0, y = 0, w = 12, h = 8, type = 'timeseries' } = {}) {
  return {
    id: ++id, type, title, description, datasource: ds,
    gridPos: { x, y, w, h },
    fieldConfig: { defaults: { unit }, overrides: [] },
    options: {},
    targets: exprs.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: ds, expr, legendFormat })),
  };
}
function layout(panels) {
  panels.forEach((p, i) => { p.gridPos.x = (i % 2) * 12; p.gridPos.y = Math.floor(i / 2) * 8; });
  return panels;
}
const dsVar = { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', hide: 0, options: [], refresh: 1, regex: '', skipUrlSync: false };
const wtVar = { name: 'worker_type', label: 'Worker type', type: 'query', datasource: ds, query: 'label_values(gyre_queue_depth, worker_type)', multi: true, includeAll: true, allValue: '.*', hide: 0, options: [], refresh: 2, regex: '', skipUrlSync: false, sort: 1 };
const jobVar = { name: 'job', label: 'Service', type: 'query', datasource: ds, query: 'label_values(gyre_build_info, job)', multi: true, includeAll: true, allValue: '.*', hide: 0, options: [], refresh: 2, regex: '', skipUrlSync: false, sort: 1 };
function dashboard(uid, title, description, panels, vars) {
  id = 0;
  return {
    uid, title, description, tags: ['gyre'], editable: true, graphTooltip: 1, schemaVersion: 39, version: 1,
    time: { from: 'now-6h', to: 'now' }, timezone: 'browser', refresh: '30s', fiscalYearStartMonth: 0, liveNow: false, weekStart: '',
    timepicker: {}, links: [], annotations: { list: [] },
    templating: { list: vars }, panels: layout(panels),
  };
}
const q = (quantile, metric, by = '') => `histogram_quantile(${quantile}, sum by (le${by}) (rate(${metric}_bucket{job=~"$job"}[5m])))`;
const W = 'worker_type=~"$worker_type"';

const workflow = () => dashboard('gyre-workflow-execution', 'Gyre / Workflow Execution',
  'Executions and task attempts: throughput, success rate, duration, failures, running executions.', [
  panel('Executions finished', 'Executions reaching a final state, per minute, by state.', [['sum by (state) (clamp_min(delta(gyre_executions{job=~"$job", state=~"succeeded|failed|cancelled"}[5m]), 0)) / 5', '{{state}}']], { unit: 'short' }),
  panel('Task attempts ended', 'Task attempts ending per second, by outcome.', [['sum by (outcome) (rate(gyre_task_outcomes_total{job=~"$job"}[5m]))', '{{outcome}}']], { unit: 'ops' }),
  panel('Workflow success rate', 'Succeeded / (succeeded + failed) executions over 15 minutes (recording rule). Alert below 95%.', [['gyre:workflow_success_ratio:15m', 'success rate']], { unit: 'percentunit' }),
  panel('Execution duration', 'p50, p95 and p99 of executions from submission to end.', [
    [q(0.5, 'gyre_execution_duration_seconds'), 'p50'], [q(0.95, 'gyre_execution_duration_seconds'), 'p95'], [q(0.99, 'gyre_execution_duration_seconds'), 'p99']], { unit: 's' }),
  panel('Failures by reason', 'Task attempts not succeeding, per second, by outcome (failed, timed_out, cancelled, lost, unknown).', [['sum by (outcome) (rate(gyre_task_outcomes_total{job=~"$job", outcome!="succeeded"}[5m]))', '{{outcome}}']], { unit: 'ops' }),
  panel('Running executions', 'Executions by non-final state.', [['sum by (state) (gyre_executions{job=~"$job", state=~"pending|running|paused"})', '{{state}}']], { unit: 'short' }),
], [dsVar, jobVar]);

const sched = () => dashboard('gyre-scheduling-queues', 'Gyre / Scheduling & Queues',
  'Per worker type: queue depth against the autoscaling signal and connected agents; lease and submit-to-start latency.', [
  panel('Queue depth vs desired workers', 'Tasks queued and running, and orchestrator_desired_workers (what KEDA / the adapter scale on), per worker type.', [
    [`sum by (worker_type) (gyre_queue_depth{job=~"$job", ${W}})`, 'queued {{worker_type}}'],
    [`sum by (worker_type) (gyre_running_tasks{job=~"$job", ${W}})`, 'running {{worker_type}}'],
    [`max by (worker_type) (orchestrator_desired_workers{job=~"$job", ${W}})`, 'desired {{worker_type}}']]),
  panel('Desired vs connected agents', 'Sum of desired workers over the selected worker types against agents connected; a lasting gap is the autoscaler lagging.', [
    [`sum(max by (worker_type) (orchestrator_desired_workers{job=~"$job", ${W}}))`, 'desired'],
    ['sum(max by (worker_type) (gyre_queue_agents{job=~"$job", worker_type=~"$worker_type"}))', 'connected'],
    ['max(gyre_agent_free_slots{job=~"$job"})', 'free slots']]),
  panel('Lease latency', 'From a task becoming ready to its lease to an agent. Alert: p95 above 500 ms for 10 minutes.', [
    [q(0.5, 'gyre_lease_latency_seconds'), 'p50'], [q(0.95, 'gyre_lease_latency_seconds'), 'p95'], [q(0.99, 'gyre_lease_latency_seconds'), 'p99']], { unit: 's' }),
  panel('Submit to start latency', 'From a task becoming ready to its process starting on an agent.', [
    [q(0.5, 'gyre_task_submit_to_start_seconds'), 'p50'], [q(0.95, 'gyre_task_submit_to_start_seconds'), 'p95'], [q(0.99, 'gyre_task_submit_to_start_seconds'), 'p99']], { unit: 's' }),
], [dsVar, jobVar, wtVar]);

const G = 'gyre_grpc_server_handled_total{job=~"$job"}';
const health = () => dashboard('gyre-system-health', 'Gyre / System Health',
  'Per service: gRPC rate, errors and latency, CPU, memory, restarts; the store sync latency and connected agents.', [
  panel('gRPC requests', 'RPCs completed per second, by service.', [[`sum by (job) (rate(${G}[5m]))`, '{{job}}']], { unit: 'reqps' }),
  panel('gRPC error ratio', 'Share of RPCs ending with a status other than OK, by service (0 when there are none).', [[`sum by (job) (rate(gyre_grpc_server_handled_total{job=~"$job", grpc_code!="OK"}[5m])) / sum by (job) (rate(${G}[5m])) or sum by (job) (rate(${G}[5m])) * 0`, '{{job}}']], { unit: 'percentunit' }),
  panel('gRPC latency p95', 'p95 time from receiving an RPC to its status, by service (streams count when they end).', [[q(0.95, 'gyre_grpc_server_handling_seconds', ', job'), '{{job}}']], { unit: 's' }),
  panel('CPU', 'CPU seconds per second, by service and instance.', [['sum by (job, instance) (rate(process_cpu_seconds_total{job=~"$job"}[5m]))', '{{job}} {{instance}}']], { unit: 'percentunit' }),
  panel('Memory', 'Resident memory, by service and instance.', [['max by (job, instance) (process_resident_memory_bytes{job=~"$job"})', '{{job}} {{instance}}']], { unit: 'bytes' }),
  panel('Store sync latency', 'p50 and p99 fdatasync of the orchestrator store\'s group commits. Alert: p99 above 100 ms.', [
    [q(0.5, 'gyre_store_sync_seconds'), 'p50'], [q(0.99, 'gyre_store_sync_seconds'), 'p99']], { unit: 's' }),
  panel('Connected agents', 'Agents holding a stream to the orchestrator, and their free task slots.', [
    ['max(gyre_agents_connected{job=~"$job"})', 'agents'], ['max(gyre_agent_free_slots{job=~"$job"})', 'free slots']]),
  panel('Restarts', 'Process restarts in the last hour, by service and instance (process start time changing).', [['sum by (job, instance) (changes(process_start_time_seconds{job=~"$job"}[1h]))', '{{job}} {{instance}}']]),
  panel('Up', 'Whether Prometheus reaches each target (1) or not (0).', [['max by (job, instance) (up{job=~"$job"})', '{{job}} {{instance}}']]),
], [dsVar, jobVar]);

for (const [file, d] of [['workflow-execution', workflow()], ['scheduling-queues', sched()], ['system-health', health()]]) {
  writeFileSync(`${out}/${file}.json`, JSON.stringify(d, null, 2) + '\n');
}
