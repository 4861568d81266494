import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './sidecar-process.js';

/** What the chart tests share: the chart's path and the objects a `helm template`/manifest holds. */
export const CHART = join(ROOT, 'charts/paygo');

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A rendered Kubernetes object; kind-specific views below narrow `spec` and friends. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
export interface RoleObject extends K8sObject {
  rules: PolicyRule[];
}
export interface BindingObject extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: Array<{ kind: string; name: string; namespace?: string }>;
}

export interface ContainerView {
  name: string;
  image: string;
  imagePullPolicy?: string;
  args: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
export interface DeploymentObject extends K8sObject {
  spec: {
    replicas: number;
    selector: LabelSelector;
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
        topologySpreadConstraints?: Array<{ topologyKey: string; labelSelector: LabelSelector }>;
        containers: ContainerView[];
        volumes?: Array<{ name: string; secret?: { secretName: string } }>;
      };
    };
  };
}
export interface ServiceObject extends K8sObject {
  spec: { selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> };
}
export interface WebhookView {
  name: string;
  clientConfig: { caBundle?: string; service?: { name: string; namespace: string; path: string; port: number }; url?: string };
  namespaceSelector: LabelSelector;
  objectSelector: LabelSelector;
  rules: Array<{ apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[]; scope?: string }>;
  failurePolicy: string;
  sideEffects: string;
  admissionReviewVersions: string[];
  timeoutSeconds: number;
  reinvocationPolicy: string;
}
export interface WebhookConfigObject extends K8sObject {
  webhooks: WebhookView[];
}

/** Every non-empty document of a multi-document YAML stream. */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object' && typeof o.kind === 'string');
}

export function findAll<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string): T[] {
  return objs.filter((o) => o.kind === kind) as T[];
}

/** The one object of a kind (optionally by name); throws with what there is otherwise. */
export function findOne<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, name?: string): T {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${hits.length} among ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return hits[0] as T;
}

/** Kubernetes label-selector semantics (an absent or empty selector matches everything). */
export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of sel?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const inValues = has && (r.values ?? []).includes(labels[r.key]!);
    const ok = r.operator === 'In' ? inValues : r.operator === 'NotIn' ? !inValues : r.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

/** The value of `--flag=value` or `--flag value` in an argument list. */
export function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === name) return args[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}
