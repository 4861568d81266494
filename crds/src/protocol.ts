import { z } from 'zod';
import { SnapshotSchema } from './snapshot.js';

/**
 * The config distribution protocol between a sidecar and the operator (HTTPS):
 *
 *   GET  /v1/stream   Authorization: Bearer <pod's projected ServiceAccount token, audience "paygo">
 *                     → text/event-stream of `event: snapshot` frames (data: SnapshotMessage),
 *                       the current one first, then one per change; `: keepalive` comments.
 *   POST /v1/ack      same Authorization; body AckMessage → 204.
 *
 * The operator serves a pod only its own namespace's routes, budgets and secrets.
 */
export const STREAM_PATH = '/v1/stream';
export const ACK_PATH = '/v1/ack';
export const TOKEN_AUDIENCE = 'paygo';

export const SnapshotMessageSchema = z.object({
  snapshot: SnapshotSchema,
});
export type SnapshotMessage = z.infer<typeof SnapshotMessageSchema>;

export const AckMessageSchema = z.object({
  version: z.string().min(1).max(128),
  accepted: z.boolean(),
  /** Why the sidecar refused the snapshot (it keeps serving its previous one). */
  reason: z.string().max(2048).optional(),
});
export type AckMessage = z.infer<typeof AckMessageSchema>;
