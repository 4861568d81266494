import { z } from 'zod';
import { API_VERSION, ConditionSchema, LabelSelectorSchema, ObjectMetaSchema, nanoUsd, usdAmount } from './meta.js';

export const BudgetSpecSchema = z
  .object({
    scope: z
      .object({
        podSelector: LabelSelectorSchema.optional().describe('Only spend by these pods counts; default all pods of the namespace.'),
        routes: z.array(z.string().min(1)).max(64).optional().describe('Only spend on these ModelRoutes (by name) counts.'),
        models: z.array(z.string().min(1)).max(64).optional().describe('Only spend on these model names (as apps send them) counts.'),
      })
      .default({})
      .describe('What spend the budget covers; by default all spend in its namespace.'),
    period: z.enum(['daily', 'weekly', 'monthly']).describe('Calendar period after which spend resets.'),
    timeZone: z
      .string()
      .min(1)
      .max(64)
      .default('UTC')
      .describe('IANA time zone of the period boundaries, e.g. Europe/Berlin; default UTC.'),
    limit: usdAmount('spec.limit').describe('Spending limit per period in USD, as a decimal string such as "250.00".'),
    action: z
      .enum(['block', 'downgrade', 'alert'])
      .default('block')
      .describe('What happens when the limit is reached: block (HTTP 429), downgrade (serve downgradeTo), alert (Events and metrics only).'),
    downgradeTo: z.string().min(1).optional().describe('Model name of the cheaper route used when action is downgrade.'),
    alertThresholds: z
      .array(z.number().int().min(1).max(100))
      .max(10)
      .default([80, 100])
      .describe('Percentages of the limit at which an Event is emitted and the state turns Warning.'),
    maxOutputTokensPerRequest: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Cap on max_tokens of each covered request, injected when the client sends none.'),
  })
  .superRefine((spec, ctx) => {
    if (spec.action === 'downgrade' && !spec.downgradeTo) {
      ctx.addIssue({ code: 'custom', path: ['downgradeTo'], message: 'spec.downgradeTo is required when action is downgrade' });
    }
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: spec.timeZone });
    } catch {
      ctx.addIssue({ code: 'custom', path: ['timeZone'], message: `spec.timeZone "${spec.timeZone}" is not an IANA time zone` });
    }
  });
export type BudgetSpec = z.infer<typeof BudgetSpecSchema>;

/** One sidecar process's share of the period's limit, as the operator's book holds it (integer nano-USD). */
export const BudgetAllowanceSchema = z.object({
  pod: z.string().describe('Name of the pod the allowance was granted to.'),
  uid: z.string().describe('UID of that pod (a re-created pod with the same name is another holder).'),
  boot: z.string().optional().describe('The sidecar process of the pod that holds the allowance (a restarted sidecar is another holder).'),
  state: z
    .enum(['Active', 'Closed', 'Lost'])
    .optional()
    .describe('Active: the process reports. Closed: its final report came. Lost: it ended without one, so what it held beyond its reported spend counts as spent.'),
  granted: nanoUsd.describe('Allowance granted to the process this period, in integer nano-USD: the most it may have spent.'),
  spent: nanoUsd.describe('Spend the process reported this period, in integer nano-USD.'),
  seq: z.number().int().min(0).describe('Highest usage-report sequence number applied (a retried report is not counted twice).'),
  expires: z.string().describe('When the allowance lapses unless the process renews it; a process silent past it (plus a grace) is Lost.'),
  endedAt: z.string().optional().describe('When the holder became Closed or Lost.'),
  replaced: z.boolean().optional().describe('A later sidecar process of the same pod has reported, so this one ended for good; Closed and replaced holders are folded into retired some time after they ended.'),
}).describe("One sidecar process's allowance.");
export type BudgetAllowance = z.infer<typeof BudgetAllowanceSchema>;

export const BudgetStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  periodStart: z.string().optional(),
  spent: z.string().optional(),
  unreported: z.string().optional(),
  reserved: z.string().optional(),
  remaining: z.string().optional(),
  state: z.enum(['Ok', 'Warning', 'Exceeded']).optional(),
  conditions: z.array(ConditionSchema).optional(),
  allowances: z
    .array(BudgetAllowanceSchema)
    .optional()
    .describe("The operator's book of per-process allowances this period; written before money is handed out, read back by a new leader."),
  retired: z
    .object({
      processes: z.number().int().min(0).describe('Sidecar processes that ended and were folded into these totals.'),
      spent: nanoUsd.describe('Spend they reported, in integer nano-USD.'),
      unreported: nanoUsd.describe('What they held beyond their reported spend when they ended, in integer nano-USD (counted as spent).'),
    })
    .optional()
    .describe('Sidecar processes of this period that ended some time ago, as totals (their allowances are never granted again).'),
});
export type BudgetStatus = z.infer<typeof BudgetStatusSchema>;

export const BudgetSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Budget'),
  metadata: ObjectMetaSchema,
  spec: BudgetSpecSchema,
  status: BudgetStatusSchema.optional(),
});
export type Budget = z.infer<typeof BudgetSchema>;
