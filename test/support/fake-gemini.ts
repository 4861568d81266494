import { createHash } from 'node:crypto';
import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';

/**
 * A fake Gemini API (generativelanguage.googleapis.com v1beta) for the fake upstream server:
 * POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse, answered with
 * Gemini's own JSON and SSE framing (`data: {...}\r\n\r\n`, no [DONE]). Everything is
 * deterministic: the reply echoes the last user text, one word per streamed piece, and token
 * counts are word counts. Function calling mode ANY calls a function; with
 * geminiResponderWith({ autoFunctionCalls }), so does a request that declares functions while the
 * user has the last word (not function responses).
 */

interface Part {
  text?: string;
  functionCall?: unknown;
  functionResponse?: unknown;
  inlineData?: unknown;
  fileData?: unknown;
}

interface Content {
  role?: string;
  parts?: Part[];
}

interface GenerateContentRequest {
  contents?: Content[];
  systemInstruction?: Content;
  tools?: Array<{ functionDeclarations?: Array<{ name: string }> }>;
  toolConfig?: { functionCallingConfig?: { mode?: string; allowedFunctionNames?: string[] } };
  generationConfig?: { maxOutputTokens?: number; candidateCount?: number };
}

interface Candidate {
  content: { parts: Array<Record<string, unknown>>; role: 'model' };
  finishReason?: string;
  index: number;
}

/** Google's error body: {"error":{"code","message","status"}} (google.rpc.Status as JSON). */
export function geminiError(code: number, status: string, message: string): string {
  return JSON.stringify(errorObject(code, status, message));
}

function errorObject(code: number, status: string, message: string) {
  return { error: { code, message, status } };
}

function errorReply(code: number, status: string, message: string): Reply {
  return { kind: 'json', status: code, body: errorObject(code, status, message) };
}

/** Google's SSE payloads are single-line JSON with `": "` after keys and bare commas. */
function googleJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(googleJson).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}: ${googleJson(x)}`).join(',') + '}';
  }
  return JSON.stringify(v);
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** Prompt size: words of every text part, plus one per non-text part (images, function calls/results). */
function promptTokens(body: GenerateContentRequest): number {
  const all = [...(body.systemInstruction ? [body.systemInstruction] : []), ...(body.contents ?? [])];
  let n = 0;
  for (const c of all) for (const p of c.parts ?? []) n += typeof p.text === 'string' ? words(p.text) : 1;
  return Math.max(1, n);
}

function lastUserText(body: GenerateContentRequest): string {
  const user = [...(body.contents ?? [])].reverse().find((c) => c.role !== 'model');
  return (user?.parts ?? []).flatMap((p) => (typeof p.text === 'string' ? [p.text] : [])).join(' ').trim();
}

/** Reply pieces (each a word with its leading space), cut at maxOutputTokens. */
function replyPieces(body: GenerateContentRequest): { pieces: string[]; finishReason: string } {
  const said = lastUserText(body);
  const all = (said ? `Gemini echo: ${said}` : 'Gemini received the function results.').split(/(?=\s)/);
  const max = body.generationConfig?.maxOutputTokens;
  if (max !== undefined && all.length > max) return { pieces: all.slice(0, max), finishReason: 'MAX_TOKENS' };
  return { pieces: all, finishReason: 'STOP' };
}

/** With mode ANY the model must call a function: the first allowed (or declared) one. */
function forcedCall(body: GenerateContentRequest): { name: string; args: Record<string, unknown> } | undefined {
  const config = body.toolConfig?.functionCallingConfig;
  if (config?.mode !== 'ANY') return undefined;
  const name = config.allowedFunctionNames?.[0] ?? body.tools?.flatMap((t) => t.functionDeclarations ?? [])[0]?.name;
  return name ? { name, args: { prompt: lastUserText(body) } } : undefined;
}

function responseId(req: RecordedRequest): string {
  return createHash('sha256').update(req.url + req.rawBody).digest('base64url').slice(0, 22);
}

interface Plan {
  model: string;
  id: string;
  prompt: number;
  n: number;
  /** Per streamed step: the parts each candidate gets. */
  steps: Array<Array<Record<string, unknown>>>;
  finishReason: string;
}

/**
 * A model that uses its functions unasked (GeminiResponderOptions.autoFunctionCalls): functions
 * declared, mode not NONE, and the last turn is not function responses → a call of the first one.
 */
function autoCall(body: GenerateContentRequest): { name: string; args: Record<string, unknown> } | undefined {
  const name = body.tools?.flatMap((t) => t.functionDeclarations ?? [])[0]?.name;
  if (!name || body.toolConfig?.functionCallingConfig?.mode === 'NONE') return undefined;
  const last = body.contents?.at(-1);
  if (last?.role === 'model' || (last?.parts ?? []).some((p) => p.functionResponse !== undefined)) return undefined;
  return { name, args: { prompt: lastUserText(body) } };
}

function plan(req: RecordedRequest, model: string, body: GenerateContentRequest, opts: GeminiResponderOptions = {}): Plan {
  const base = { model, id: responseId(req), prompt: promptTokens(body), n: Math.max(1, body.generationConfig?.candidateCount ?? 1) };
  const call = forcedCall(body) ?? (opts.autoFunctionCalls ? autoCall(body) : undefined);
  if (call) return { ...base, steps: [[{ functionCall: call }]], finishReason: 'STOP' };
  const { pieces, finishReason } = replyPieces(body);
  return { ...base, steps: pieces.map((text) => [{ text }]), finishReason };
}

function usage(p: Plan, steps: number): Record<string, unknown> {
  const candidates = steps * p.n;
  return {
    promptTokenCount: p.prompt,
    candidatesTokenCount: candidates,
    totalTokenCount: p.prompt + candidates,
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: p.prompt }],
  };
}

function candidates(p: Plan, parts: Array<Record<string, unknown>>, finishReason: string | undefined): Candidate[] {
  return Array.from({ length: p.n }, (_, index) => ({ content: { parts, role: 'model' as const }, ...(finishReason ? { finishReason } : {}), index }));
}

function jsonReply(p: Plan): Reply {
  const parts = p.steps.flat();
  const merged = parts.every((x) => typeof x.text === 'string') ? [{ text: parts.map((x) => x.text).join('') }] : parts;
  return {
    kind: 'json',
    body: { candidates: candidates(p, merged, p.finishReason), usageMetadata: usage(p, p.steps.length), modelVersion: p.model, responseId: p.id },
  };
}

function sseReply(p: Plan): Reply {
  const frames = p.steps.map((parts, i) => {
    const last = i === p.steps.length - 1;
    const chunk = { candidates: candidates(p, parts, last ? p.finishReason : undefined), usageMetadata: usage(p, i + 1), modelVersion: p.model, responseId: p.id };
    return `data: ${googleJson(chunk)}\r\n\r\n`;
  });
  return { kind: 'sse', frames };
}

const ROUTE = /^\/v1beta\/models\/([^/:?]+):(generateContent|streamGenerateContent)(?:\?(.*))?$/;

export interface GeminiResponderOptions {
  /** Call the first declared function unasked (see autoCall); without it only mode ANY calls one. */
  autoFunctionCalls?: boolean;
}

export const geminiResponder: Responder = geminiResponderWith({});

/** The fake with options; `geminiResponder` is it with none. */
export function geminiResponderWith(opts: GeminiResponderOptions): Responder {
  return (req) => geminiAnswer(req, opts);
}

function geminiAnswer(req: RecordedRequest, opts: GeminiResponderOptions): Reply {
  const route = ROUTE.exec(req.url);
  if (req.method !== 'POST' || !route) return errorReply(404, 'NOT_FOUND', `fake gemini: no route for ${req.method} ${req.url.split('?')[0]}`);
  if (!req.headers['x-goog-api-key']) {
    return errorReply(403, 'PERMISSION_DENIED', "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
  }
  const [, model = '', method, query = ''] = route;
  const stream = method === 'streamGenerateContent';
  if (stream && new URLSearchParams(query).get('alt') !== 'sse') return errorReply(400, 'INVALID_ARGUMENT', 'fake gemini: streamGenerateContent is only served with alt=sse');
  const body = req.body as GenerateContentRequest | undefined;
  if (!body || !Array.isArray(body.contents) || body.contents.length === 0) {
    return errorReply(400, 'INVALID_ARGUMENT', '* GenerateContentRequest.contents: contents is not specified\n');
  }
  const p = plan(req, decodeURIComponent(model), body, opts);
  return stream ? sseReply(p) : jsonReply(p);
}
