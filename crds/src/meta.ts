import { z } from 'zod';

/** API group and version of every paygo custom resource. */
export const GROUP = 'paygo.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const dnsLabel = (what: string) =>
  z
    .string()
    .min(1)
    .max(63)
    .regex(DNS_LABEL, `${what} must be a lowercase RFC 1123 label (a-z, 0-9, '-')`);

export const dnsSubdomain = (what: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(DNS_SUBDOMAIN, `${what} must be a lowercase RFC 1123 subdomain`);

export const ObjectMetaSchema = z
  .object({
    name: dnsSubdomain('metadata.name'),
    namespace: dnsLabel('metadata.namespace').optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
    uid: z.string().optional(),
  })
  .loose();
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

export const LabelSelectorRequirementSchema = z.object({
  key: z.string().min(1).describe('The label key that the selector applies to.'),
  operator: z
    .enum(['In', 'NotIn', 'Exists', 'DoesNotExist'])
    .describe("How the key relates to the values: In, NotIn, Exists or DoesNotExist."),
  values: z
    .array(z.string())
    .optional()
    .describe('Values for In and NotIn; must be empty for Exists and DoesNotExist.'),
});

export const LabelSelectorSchema = z
  .object({
    matchLabels: z
      .record(z.string(), z.string())
      .optional()
      .describe('Labels a pod must carry, each key with exactly this value.'),
    matchExpressions: z
      .array(LabelSelectorRequirementSchema)
      .optional()
      .describe('Label requirements a pod must meet, all of them (logical AND).'),
  })
  .describe('A standard Kubernetes label selector; an empty selector selects every pod.');
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

/** A decimal amount of US dollars as a string ("250.00"), never a float. At most 9 decimals. */
export const usdAmount = (what: string) =>
  z
    .string()
    .regex(/^\d{1,12}(\.\d{1,9})?$/, `${what} must be a decimal string of US dollars such as "250.00" (at most 9 decimals)`);

/** An integer amount of nano-USD as a decimal string (money on the wire and in status). */
export const nanoUsd = z.string().regex(/^\d{1,30}$/, 'an integer number of nano-USD');

export const SecretKeyRefSchema = z
  .object({
    name: dnsSubdomain('secretRef.name').describe('Name of the Secret in the same namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, 'secretRef.key must be a valid Secret data key')
      .describe('Key within the Secret whose value is the API key.'),
  })
  .describe('A key in a Secret in the same namespace.');
export type SecretKeyRef = z.infer<typeof SecretKeyRefSchema>;

/** Standard Kubernetes condition (metav1.Condition). */
export const ConditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string(),
  reason: z.string(),
  message: z.string(),
});
export type Condition = z.infer<typeof ConditionSchema>;

/** Does a pod with these labels match the selector? (Kubernetes semantics; undefined selects all.) */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** "spec.targets[0].provider" from a zod issue path. */
export function issuePath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** One line per issue, each naming the field: `spec.targets[0].model: Too small ...`. */
export function formatIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => {
      const path = issuePath(i.path);
      const where = [prefix, path].filter(Boolean).join(path && prefix ? ' ' : '');
      return where ? `${where}: ${i.message}` : i.message;
    })
    .join('; ');
}
