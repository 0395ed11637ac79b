{{/* Names, labels, images and shared pieces of the choreo-connect chart. */}}

{{- define "cc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart> (or the release name when it already holds the chart name). */}}
{{- define "cc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names. Services are 63-character DNS labels at most. */}}
{{- define "cc.adapter.name" -}}{{ printf "%s-adapter" (include "cc.fullname" . | trunc 55 | trimSuffix "-") }}{{- end -}}
{{- define "cc.gatewayRuntime.name" -}}{{ printf "%s-gateway-runtime" (include "cc.fullname" . | trunc 47 | trimSuffix "-") }}{{- end -}}
{{- define "cc.router.name" -}}{{ printf "%s-router" (include "cc.fullname" . | trunc 56 | trimSuffix "-") }}{{- end -}}
{{- define "cc.enforcer.name" -}}{{ printf "%s-enforcer" (include "cc.fullname" . | trunc 54 | trimSuffix "-") }}{{- end -}}
{{- define "cc.configToml.name" -}}{{ printf "%s-adapter-config-toml" (include "cc.fullname" . | trunc 43 | trimSuffix "-") }}{{- end -}}
{{- define "cc.logConfigToml.name" -}}{{ printf "%s-log-config-toml" (include "cc.fullname" . | trunc 47 | trimSuffix "-") }}{{- end -}}
{{- define "cc.redis.name" -}}{{ printf "%s-redis" (include "cc.fullname" . | trunc 57 | trimSuffix "-") }}{{- end -}}
{{- define "cc.defaultKeystore.name" -}}{{ printf "%s-default-keystore" (include "cc.fullname" . | trunc 45 | trimSuffix "-") }}{{- end -}}
{{- define "cc.adminCredentials.name" -}}
{{- .Values.wso2.deployment.adminCredentials.existingSecret | default (printf "%s-admin-credentials" (include "cc.fullname" . | trunc 44 | trimSuffix "-")) -}}
{{- end -}}
{{- define "cc.adapterData.name" -}}
{{- .Values.wso2.deployment.adapter.persistence.existingClaim | default (printf "%s-adapter-data" (include "cc.fullname" . | trunc 50 | trimSuffix "-")) -}}
{{- end -}}

{{- define "cc.serviceAccountName" -}}
{{- if .Values.kubernetes.serviceAccount.create -}}
{{- default (include "cc.fullname" .) .Values.kubernetes.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.kubernetes.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cc.labels" -}}
helm.sh/chart: {{ include "cc.chart" . }}
app.kubernetes.io/name: {{ include "cc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: choreo-connect
{{- end -}}

{{/* Selector labels of a component's pods: (list $ "adapter"|"gateway-runtime"). */}}
{{- define "cc.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "cc.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: choreo-connect-{{ index . 1 }}
{{- end -}}

{{/* Image reference: (list $ <component values>). The tag defaults to the chart's appVersion. */}}
{{- define "cc.image" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $registry := $c.dockerRegistry | default $root.Values.wso2.deployment.dockerRegistry | trimSuffix "/" -}}
{{- $tag := $c.imageTag | default $root.Chart.AppVersion | toString -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $c.imageName $tag -}}
{{- else -}}
{{- printf "%s:%s" $c.imageName $tag -}}
{{- end -}}
{{- end -}}

{{/*
The chart's Redis image: its own registry only (wso2.deployment.dockerRegistry
holds the gateway's images; empty: Docker Hub's official image) and its own tag.
*/}}
{{- define "cc.redis.image" -}}
{{- $x := .Values.wso2.deployment.redis -}}
{{- $registry := $x.dockerRegistry | trimSuffix "/" -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $x.imageName (toString $x.imageTag) -}}
{{- else -}}
{{- printf "%s:%s" $x.imageName (toString $x.imageTag) -}}
{{- end -}}
{{- end -}}

{{- define "cc.imagePullSecrets" -}}
{{- with .Values.wso2.deployment.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
{{- if kindIs "map" . }}
  - name: {{ .name }}
{{- else }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Environment of a container: (list <chart's entries as a YAML list> <envOverride>).
An envOverride entry replaces the chart's entry of the same name.
*/}}
{{- define "cc.env" -}}
{{- $defaults := fromYamlArray (index . 0) -}}
{{- $override := index . 1 | default list -}}
{{- $names := dict -}}
{{- range $override }}{{- $_ := set $names .name true -}}{{- end -}}
{{- $out := list -}}
{{- range $defaults }}{{- if not (hasKey $names .name) }}{{- $out = append $out . -}}{{- end -}}{{- end -}}
{{- $out = concat $out $override -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Paths inside the containers (Choreo Connect's layout). */}}
{{- define "cc.path.keystore" -}}/home/wso2/security/keystore{{- end -}}
{{- define "cc.path.truststore" -}}/home/wso2/security/truststore{{- end -}}

{{/*
Whether a component uses the generated certificate or CA: (list $ <component security>).
Prints "keystore" and/or "ca" when it does.
*/}}
{{- define "cc.tls.uses" -}}
{{- $sec := index . 1 -}}
{{- if not $sec.keystore.cert.secretName }}keystore {{ end -}}
{{- $ownCA := false -}}
{{- range $sec.truststore | default list }}{{- if eq (.mountAs | default "") "mg.pem" }}{{- $ownCA = true -}}{{- end -}}{{- end -}}
{{- if not $ownCA }}ca{{ end -}}
{{- end -}}

{{/* "true" when any component needs <fullname>-default-keystore. */}}
{{- define "cc.tls.needsDefault" -}}
{{- $d := .Values.wso2.deployment -}}
{{- $uses := cat (include "cc.tls.uses" (list . $d.adapter.security)) (include "cc.tls.uses" (list . $d.gatewayRuntime.enforcer.security)) (include "cc.tls.uses" (list . $d.gatewayRuntime.router.security)) -}}
{{- if trim $uses }}true{{ end -}}
{{- end -}}

{{/* DNS names of the generated certificate. */}}
{{- define "cc.tls.dnsNames" -}}
{{- $d := .Values.wso2.deployment -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list "localhost" "adapter" "enforcer" "router" $d.adapter.security.sslHostname $d.gatewayRuntime.enforcer.security.sslHostname $d.gatewayRuntime.router.ingress.hostname -}}
{{- range list (include "cc.adapter.name" .) (include "cc.router.name" .) (include "cc.enforcer.name" .) -}}
{{- $names = concat $names (list . (printf "%s.%s" . $ns) (printf "%s.%s.svc" . $ns) (printf "%s.%s.svc.%s" . $ns $d.clusterDomain)) -}}
{{- end -}}
{{- if $d.adapter.ingress.enabled }}{{- $names = append $names $d.adapter.ingress.hostname -}}{{- end -}}
{{- $names = concat $names ($d.defaultCertificate.extraDnsNames | default list) -}}
{{- toJson ($names | compact | uniq) -}}
{{- end -}}

{{/*
The generated CA and certificate: {ca, crt, key, notAfter, names}, reused
from the live Secret across upgrades while its names match and it is not
within renewBeforeDays of expiry. `lookup` finds nothing on install, in
`helm template` and offline: then every call generates anew, so the Secret
and the pods' checksum/tls differ in value but change together (the pods
roll whenever the Secret is renewed), and agree from the next upgrade on.
*/}}
{{- define "cc.tls.material" -}}
{{- $d := .Values.wso2.deployment.defaultCertificate -}}
{{- $names := include "cc.tls.dnsNames" . | fromJsonArray -}}
{{- $namesKey := $names | join "," | sha256sum | trunc 16 -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $tls := dict -}}
{{- $live := lookup "v1" "Secret" .Release.Namespace (include "cc.defaultKeystore.name" .) -}}
{{- if and $live $live.data $live.metadata.annotations -}}
{{- $ann := $live.metadata.annotations -}}
{{- $notAfter := index $ann "choreo-connect/not-after" | default "0" | int64 -}}
{{- $renewAt := sub $notAfter (mul (int64 $d.renewBeforeDays) 86400) -}}
{{- if and (eq (index $ann "choreo-connect/names" | default "") $namesKey) (gt $renewAt $now) (index $live.data "tls.crt") (index $live.data "tls.key") (index $live.data "ca.crt") -}}
{{- $tls = dict "ca" (index $live.data "ca.crt" | b64dec) "crt" (index $live.data "tls.crt" | b64dec) "key" (index $live.data "tls.key" | b64dec) "notAfter" (toString $notAfter) -}}
{{- end -}}
{{- end -}}
{{- if not $tls.crt -}}
{{- $days := int $d.validityDays -}}
{{- $ca := genCA (printf "%s CA" (include "cc.fullname" .)) (add $days 365 | int) -}}
{{- $cert := genSignedCert (include "cc.adapter.name" .) (list "127.0.0.1") $names $days $ca -}}
{{- $tls = dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key "notAfter" (toString (add $now (mul $days 86400))) -}}
{{- end -}}
{{- $_ := set $tls "names" $namesKey -}}
{{- toJson $tls -}}
{{- end -}}

{{/*
Certificate volumes and mounts of a component: (list $ <security> <prefix>).
"cc.tls.volumes" and "cc.tls.mounts" print YAML list items.
*/}}
{{- define "cc.tls.volumes" -}}
{{- $root := index . 0 -}}
{{- $sec := index . 1 -}}
{{- $prefix := index . 2 -}}
{{- $uses := include "cc.tls.uses" (list $root $sec) -}}
{{- if contains "keystore" $uses }}
- name: {{ $prefix }}-default-keystore
  secret:
    secretName: {{ include "cc.defaultKeystore.name" $root }}
    defaultMode: 0440
{{- else }}
- name: {{ $prefix }}-keystore-cert
  secret:
    secretName: {{ $sec.keystore.cert.secretName }}
    defaultMode: 0440
- name: {{ $prefix }}-keystore-key
  secret:
    secretName: {{ required (printf "%s: security.keystore.key.secretName is required with keystore.cert" $prefix) $sec.keystore.key.secretName }}
    defaultMode: 0440
{{- end }}
{{- if and (contains "ca" $uses) (not (contains "keystore" $uses)) }}
- name: {{ $prefix }}-default-keystore
  secret:
    secretName: {{ include "cc.defaultKeystore.name" $root }}
    defaultMode: 0440
{{- end }}
{{- range $i, $t := $sec.truststore }}
- name: {{ $prefix }}-truststore-{{ $i }}
  secret:
    secretName: {{ $t.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "cc.tls.mounts" -}}
{{- $root := index . 0 -}}
{{- $sec := index . 1 -}}
{{- $prefix := index . 2 -}}
{{- $uses := include "cc.tls.uses" (list $root $sec) -}}
{{- if contains "keystore" $uses }}
- name: {{ $prefix }}-default-keystore
  mountPath: {{ include "cc.path.keystore" $root }}/mg.pem
  subPath: tls.crt
  readOnly: true
- name: {{ $prefix }}-default-keystore
  mountPath: {{ include "cc.path.keystore" $root }}/mg.key
  subPath: tls.key
  readOnly: true
{{- else }}
- name: {{ $prefix }}-keystore-cert
  mountPath: {{ include "cc.path.keystore" $root }}/mg.pem
  subPath: {{ required (printf "%s: security.keystore.cert.subPath is required" $prefix) $sec.keystore.cert.subPath }}
  readOnly: true
- name: {{ $prefix }}-keystore-key
  mountPath: {{ include "cc.path.keystore" $root }}/mg.key
  subPath: {{ required (printf "%s: security.keystore.key.subPath is required" $prefix) $sec.keystore.key.subPath }}
  readOnly: true
{{- end }}
{{- if contains "ca" $uses }}
- name: {{ $prefix }}-default-keystore
  mountPath: {{ include "cc.path.truststore" $root }}/mg.pem
  subPath: ca.crt
  readOnly: true
{{- end }}
{{- range $i, $t := $sec.truststore }}
- name: {{ $prefix }}-truststore-{{ $i }}
  mountPath: {{ include "cc.path.truststore" $root }}/{{ $t.mountAs | default (printf "%s-%s.pem" $t.secretName ($t.subPath | trimSuffix ".pem")) }}
  subPath: {{ $t.subPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* volumeConfigs of one container: (list $ "adapter"|"enforcer"|"router" "volumes"|"mounts"). */}}
{{- define "cc.volumeConfigs" -}}
{{- $root := index . 0 -}}
{{- $container := index . 1 -}}
{{- $what := index . 2 -}}
{{- range $i, $v := $root.Values.wso2.deployment.volumeConfigs }}
{{- if eq $v.mount.container $container }}
{{- if eq $what "volumes" }}
- name: vc-{{ $v.name }}
{{- if eq $v.resource.kind "Secret" }}
  secret:
    secretName: {{ $v.resource.name }}
{{- else }}
  configMap:
    name: {{ $v.resource.name }}
{{- end }}
{{- with $v.resource.items }}
    items:
      {{- toYaml . | nindent 6 }}
{{- end }}
{{- with $v.resource.defaultMode }}
    defaultMode: {{ . }}
{{- end }}
{{- else }}
- name: vc-{{ $v.name }}
  mountPath: {{ $v.mount.path }}
  {{- with $v.mount.subPath }}
  subPath: {{ . }}
  {{- end }}
  readOnly: {{ if hasKey $v.mount "readOnly" }}{{ $v.mount.readOnly }}{{ else }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The gateway runtime's replicas at least (for the PDB guard). */}}
{{- define "cc.gatewayRuntime.minReplicas" -}}
{{- $g := .Values.wso2.deployment.gatewayRuntime -}}
{{- if $g.autoscaling.enabled }}{{ $g.autoscaling.minReplicas | int }}{{ else }}{{ $g.replicaCount | int }}{{ end -}}
{{- end -}}

{{/*
Rate limiting ([enforcer.throttling]).

"cc.throttling.backend": redis when throttling.backend is redis or the
chart's Redis is on (wso2.deployment.redis.enabled), else memory.
*/}}
{{- define "cc.throttling.backend" -}}
{{- if or (eq .Values.wso2.deployment.gatewayRuntime.enforcer.throttling.backend "redis") .Values.wso2.deployment.redis.enabled -}}
redis
{{- else -}}
memory
{{- end -}}
{{- end -}}

{{/*
The enforcers that share the counters: the gateway runtime's replicas, or
the HPA's maxReplicas with autoscaling (see values.yaml, throttling).
*/}}
{{- define "cc.throttling.replicas" -}}
{{- $g := .Values.wso2.deployment.gatewayRuntime -}}
{{- if $g.autoscaling.enabled }}{{ max 1 ($g.autoscaling.maxReplicas | int) }}{{ else }}{{ max 1 ($g.replicaCount | int) }}{{ end -}}
{{- end -}}

{{/*
The Redis URL of [enforcer.throttling.redis]: throttling.redis.url, else the
chart's Redis Service (with the password from the enforcer's REDIS_PASSWORD
when passwordSecret is set).
*/}}
{{- define "cc.throttling.redisUrl" -}}
{{- $r := .Values.wso2.deployment.gatewayRuntime.enforcer.throttling.redis -}}
{{- if $r.url -}}
{{- $r.url -}}
{{- else if .Values.wso2.deployment.redis.enabled -}}
redis://{{ if $r.passwordSecret.name }}:$env{REDIS_PASSWORD}@{{ end }}{{ include "cc.redis.name" . }}:6379
{{- end -}}
{{- end -}}

{{/* The chart's guards of the throttling values (what values.schema.json cannot say clearly). */}}
{{- define "cc.throttling.validate" -}}
{{- $d := .Values.wso2.deployment -}}
{{- $t := $d.gatewayRuntime.enforcer.throttling -}}
{{- $key := "wso2.deployment.gatewayRuntime.enforcer.throttling" -}}
{{- if and (eq $t.backend "redis") (not $t.redis.url) (not $d.redis.enabled) -}}
{{- fail (printf "%s.backend is redis but there is no Redis: give %s.redis.url (your Redis) or set wso2.deployment.redis.enabled=true (the chart's Redis)" $key $key) -}}
{{- end -}}
{{- if and $t.redis.url (eq (include "cc.throttling.backend" .) "memory") -}}
{{- fail (printf "%s.redis.url is set but backend is memory (the url would not be used): set %s.backend=redis, or clear the url" $key $key) -}}
{{- end -}}
{{- if and $t.redis.passwordSecret.name (eq (include "cc.throttling.backend" .) "memory") -}}
{{- fail (printf "%s.redis.passwordSecret is set but backend is memory (no Redis to use it): set %s.backend=redis with a url, or wso2.deployment.redis.enabled=true" $key $key) -}}
{{- end -}}
{{- if and $t.redis.passwordSecret.name $t.redis.url (not (contains "$env{REDIS_PASSWORD}" $t.redis.url)) -}}
{{- fail (printf "%s.redis.passwordSecret is set but %s.redis.url does not use it: write $env{REDIS_PASSWORD} into the url, e.g. redis://:$env{REDIS_PASSWORD}@redis.example:6379" $key $key) -}}
{{- end -}}
{{- if and (contains "$env{REDIS_PASSWORD}" $t.redis.url) (not $t.redis.passwordSecret.name) -}}
{{- $given := false -}}
{{- range $d.gatewayRuntime.enforcer.envOverride | default list }}{{- if eq .name "REDIS_PASSWORD" }}{{- $given = true -}}{{- end -}}{{- end -}}
{{- if not $given -}}
{{- fail (printf "%s.redis.url uses $env{REDIS_PASSWORD} but the enforcer has no REDIS_PASSWORD: set %s.redis.passwordSecret.name (or an enforcer envOverride REDIS_PASSWORD)" $key $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Host of the router's system routes and of the default vhost. */}}
{{- define "cc.systemHost" -}}
{{- .Values.wso2.deployment.gatewayRuntime.router.ingress.hostname -}}
{{- end -}}

{{/* sha256 of the rendered ConfigMaps, for checksum/config. */}}
{{- define "cc.checksum.config" -}}
{{- $cfg := include (print .Template.BasePath "/configmap-config-toml.yaml") . -}}
{{- $log := include (print .Template.BasePath "/configmap-log-config-toml.yaml") . -}}
{{- print $cfg $log | sha256sum -}}
{{- end -}}

{{/* sha256 of the generated certificate, for checksum/tls (empty when no component uses it). */}}
{{- define "cc.checksum.tls" -}}
{{- if include "cc.tls.needsDefault" . -}}
{{- $tls := include "cc.tls.material" . | fromJson -}}
{{- print $tls.ca $tls.crt | sha256sum -}}
{{- end -}}
{{- end -}}
