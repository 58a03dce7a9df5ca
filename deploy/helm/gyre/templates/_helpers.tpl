{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "gyre.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; objects are named "<fullname>-<component>". */}}
{{- define "gyre.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gyre.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. Call with (dict "root" $ "component" "orchestrator"). */}}
{{- define "gyre.labels" -}}
helm.sh/chart: {{ include "gyre.chart" .root }}
{{ include "gyre.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: gyre
{{- end -}}

{{/* Selector labels: immutable once a Deployment exists, so never the version. */}}
{{- define "gyre.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gyre.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gyre.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gyre.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image: "<repository>:<tag>", the tag defaulting to the chart's appVersion. Call with (dict "root" $ "image" .Values.images.orchestrator). */}}
{{- define "gyre.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Address agents and the gateway use to reach the orchestrator: the headless Service in their own namespace (so kustomize can move it). */}}
{{- define "gyre.orchestratorAddress" -}}
{{- printf "%s-orchestrator:%d" (include "gyre.fullname" .) (int .Values.ports.orchestrator.grpc) -}}
{{- end -}}

{{/* Prometheus job of a component: the Service name, as a ServiceMonitor sets it. */}}
{{- define "gyre.job" -}}
{{- printf "%s-%s" (include "gyre.fullname" .root) .component -}}
{{- end -}}

{{/*
The autoscaling query of a pool: the orchestrator's desired workers for the
pool's worker type, so replicas = ceil(value / 1). With the forecast switch,
the larger of that and the predictor's forecast of desired workers
`autoscaling.forecast.horizon` ahead, clamped to the pool's min and max the
way the orchestrator clamps its own signal. max() over the orchestrator
replicas: with several (PostgreSQL, sharded) each owns part of the
executions but exports the cluster's figure (its own backlog plus the
others' from their last lease heartbeat), so max() is that figure and rides
over one replica that is stale or gone. Never sum(): each replica's value is
already the whole.
Call with (dict "root" $ "name" $poolName "pool" $pool).
*/}}
{{- define "gyre.poolQuery" -}}
{{- $root := .root -}}
{{- $sel := printf "job=\"%s\", namespace=\"%s\", worker_type=\"%s\"" (include "gyre.job" (dict "root" $root "component" "orchestrator")) $root.Release.Namespace .name -}}
{{- if $root.Values.autoscaling.forecast.enabled -}}
{{- $fsel := printf "job=\"%s\", namespace=\"%s\", worker_type=\"%s\", horizon=\"%s\"" (include "gyre.job" (dict "root" $root "component" "predictor")) $root.Release.Namespace .name $root.Values.autoscaling.forecast.horizon -}}
max(label_replace(max(orchestrator_desired_workers{ {{- $sel -}} }), "signal", "now", "", "") or label_replace(clamp(ceil(max(gyre_predicted_desired_workers{ {{- $fsel -}} })), {{ .pool.autoscaling.min }}, {{ .pool.autoscaling.max }}), "signal", "forecast", "", ""))
{{- else -}}
max(orchestrator_desired_workers{ {{- $sel -}} })
{{- end -}}
{{- end -}}

{{/* Pod securityContext shared by every Gyre pod. */}}
{{- define "gyre.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container securityContext shared by every Gyre container. */}}
{{- define "gyre.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Native gRPC probes on the standard health service. Call with (dict "port" N "service" "gyre.orchestrator").
Readiness asks the component's name, NOT_SERVING while it cannot do its work (an orchestrator whose
PostgreSQL is unreachable); liveness asks "gyre.liveness", SERVING while the process runs, so such an
outage takes the pod out of rotation without restarting it (the orchestrator exits by itself once
postgres_retry_for has passed). */}}
{{- define "gyre.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
    service: {{ .service | quote }}
  periodSeconds: 2
  failureThreshold: 90
livenessProbe:
  grpc:
    port: {{ .port }}
    service: "gyre.liveness"
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  grpc:
    port: {{ .port }}
    service: {{ .service | quote }}
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* Validates the pools once; fails the render with a message naming the pool. */}}
{{- define "gyre.validatePools" -}}
{{- if not .Values.pools -}}
{{- fail "pools: declare at least one worker pool" -}}
{{- end -}}
{{- range $name, $pool := .Values.pools -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "pools.%s: the pool name is a worker type and a DNS label: lower case letters, digits and '-'" $name) -}}
{{- end -}}
{{- if gt (int $pool.autoscaling.min) (int $pool.autoscaling.max) -}}
{{- fail (printf "pools.%s.autoscaling: min %v is above max %v" $name $pool.autoscaling.min $pool.autoscaling.max) -}}
{{- end -}}
{{- if and $pool.queues (not (has $name $pool.queues)) -}}
{{- fail (printf "pools.%s.queues must include %q: the pool scales on its own worker type" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the database DSN. */}}
{{- define "gyre.databaseSecret" -}}
{{- default (printf "%s-database" (include "gyre.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "gyre.authSecret" -}}
{{- default (printf "%s-auth" (include "gyre.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}
