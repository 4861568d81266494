import type { ChatRequest, EmbeddingsRequest } from '../openai-schema.js';
import { isPlainObject } from '../json-values.js';

/**
 * Provider text is untrusted. Providers, and proxies in front of them, echo request headers and
 * bodies in their errors (`Incorrect API key provided: Bearer sk-…`, a 400 quoting the prompt).
 * Every piece of upstream text that leaves the sidecar — the message of a non-stream error body,
 * of a stream's error event, of a token endpoint's refusal, and so the client's error body, the
 * stream's error event and the log lines that quote them — goes through `upstreamText` first.
 * It removes:
 *
 * - the target's own credentials (the API key, every credential part, the string values of a
 *   JSON key) in any form: raw, base64 or base64url of it (at any alignment, as in Basic auth),
 *   URL-encoded, or any fragment of SECRET_WINDOW characters or more of one of these;
 * - anything key-shaped: `Bearer …`/`Basic …`, `api-key: …`-style pairs, `sk-…`, AWS key ids,
 *   Google API keys, JWTs, PEM private keys, and long base64/hex runs (32+ characters with a
 *   letter and a digit);
 * - the request's own content: any run of ECHO_WINDOW characters or more of a message's text
 *   (string contents, text parts, tool-call arguments) or of an embeddings input, raw or as it
 *   reads inside a JSON string;
 *
 * then flattens control characters (one log line, one header-safe string) and keeps at most
 * MAX_OUTPUT characters. Provider codes (error types, statuses, exception names) are passed only
 * through `safeCode`.
 */

/** A provider's error code, type or status that may be passed on as is. */
export const SAFE_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The value when it is a string fit to pass on as an error code, else undefined. */
export function safeCode(v: unknown): string | undefined {
  return typeof v === 'string' && SAFE_CODE.test(v) ? v : undefined;
}

export const REDACTED = '[redacted]';
/** Credential fragments of this length or more are removed. */
export const SECRET_WINDOW = 8;
/** Runs of the request's text of this length or more are removed. */
export const ECHO_WINDOW = 12;
/** Upstream text looked at (the rest is dropped unread). */
const MAX_INPUT = 4096;
/** Upstream text passed on. */
export const MAX_OUTPUT = 512;
/** Credentials shorter than this are not looked for (they are not keys; their fragments would be words). */
const MIN_SECRET = 6;

/** What the redaction needs to know about the attempt: its credentials and the client's request. */
export interface RedactionContext {
  apiKey?: string | undefined;
  settings?: { credentialParts?: Readonly<Record<string, string>> | undefined } | undefined;
  request?: ChatRequest | EmbeddingsRequest | undefined;
}

const KEY_SHAPES: ReadonlyArray<[RegExp, string]> = [
  [/-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
  [/\b(Bearer)(\s+)[^\s"',;]+/gi, `$1$2${REDACTED}`],
  [/\b(Basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}/g, `$1$2${REDACTED}`],
  [/\b((?:x-)?api[-_]?key|x-goog-api-key|authorization|access[-_]?token|refresh[-_]?token|client[-_]?secret|secret[-_]?access[-_]?key|session[-_]?token|password|secret)(["']?\s*[:=]\s*["']?)[^\s"',;&]+/gi, `$1$2${REDACTED}`],
  [/\bsk-[A-Za-z0-9_-]{6,}/g, REDACTED],
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, REDACTED],
  [/\bAIza[0-9A-Za-z_-]{30,}/g, REDACTED],
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED],
];

/** Long base64/hex-like runs; redacted when they hold a letter and a digit (words and paths of words stay). */
const LONG_TOKEN = /[A-Za-z0-9+/_=-]{32,}/g;

/** Upstream text fit to leave the sidecar, or undefined when there is none. */
export function upstreamText(text: unknown, ctx: RedactionContext | undefined): string | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  let t = text.length > MAX_INPUT ? text.slice(0, MAX_INPUT) : text;
  const mask = new Uint8Array(t.length);
  if (ctx) {
    maskEchoes(t, secretForms(ctx), SECRET_WINDOW, mask);
    widenOverEncoding(t, mask);
    if (ctx.request) maskEchoes(t, requestTexts(ctx.request), ECHO_WINDOW, mask);
  }
  t = applyMask(t, mask);
  for (const [re, by] of KEY_SHAPES) t = t.replace(re, by);
  t = t.replace(LONG_TOKEN, (m) => (/\d/.test(m) && /[A-Za-z]/.test(m) ? REDACTED : m));
  // eslint-disable-next-line no-control-regex
  t = t.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  if (t === '') return undefined;
  return t.length > MAX_OUTPUT ? `${t.slice(0, MAX_OUTPUT)}…` : t;
}

/** Replaces each masked run of `t` by one REDACTED. */
function applyMask(t: string, mask: Uint8Array): string {
  if (!mask.includes(1)) return t;
  let out = '';
  let i = 0;
  while (i < t.length) {
    if (mask[i] === 1) {
      out += REDACTED;
      while (i < t.length && mask[i] === 1) i++;
    } else {
      const start = i;
      while (i < t.length && mask[i] !== 1) i++;
      out += t.slice(start, i);
    }
  }
  return out;
}

/**
 * Marks every window of `t` (of `window` characters, shorter sources: the whole source) that
 * also occurs in one of the sources. Indexes the short upstream text, then reads each source
 * once: linear in the sources' length.
 */
function maskEchoes(t: string, sources: Iterable<string>, window: number, mask: Uint8Array): void {
  const byLength = new Map<number, Map<string, number[]>>();
  const grams = (n: number): Map<string, number[]> => {
    let m = byLength.get(n);
    if (!m) {
      m = new Map();
      for (let i = 0; i + n <= t.length; i++) {
        const g = t.slice(i, i + n);
        const at = m.get(g);
        if (at) at.push(i);
        else m.set(g, [i]);
      }
      byLength.set(n, m);
    }
    return m;
  };
  for (const s of sources) {
    const n = Math.min(window, s.length);
    if (n > t.length) continue;
    const index = grams(n);
    if (index.size === 0) continue;
    for (let j = 0; j + n <= s.length; j++) {
      const at = index.get(s.slice(j, j + n));
      if (at) for (const i of at) mask.fill(1, i, i + n);
    }
  }
}

/** Base64's alphabet (both flavours, with padding). */
const isBase64Char = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 47 || c === 61 || c === 45 || c === 95;

/**
 * A masked credential extends over up to 4 adjacent base64 characters each side: the edges of
 * an encoded secret mix its bytes with its neighbours' and match none of its forms.
 */
function widenOverEncoding(t: string, mask: Uint8Array): void {
  for (let i = 0; i < t.length; i++) {
    if (mask[i] !== 1) continue;
    let end = i;
    while (end < t.length && mask[end] === 1) end++;
    for (let k = i - 1; k >= Math.max(0, i - 4) && mask[k] !== 1 && isBase64Char(t.charCodeAt(k)); k--) mask[k] = 1;
    let k = end;
    for (; k < Math.min(t.length, end + 4) && isBase64Char(t.charCodeAt(k)); k++) mask[k] = 1;
    i = k;
  }
}

/** The attempt's credentials in every form a provider or proxy may echo them. */
function* secretForms(ctx: RedactionContext): Iterable<string> {
  const secrets: string[] = [];
  if (ctx.apiKey) secrets.push(...credentialValues(ctx.apiKey));
  for (const v of Object.values(ctx.settings?.credentialParts ?? {})) if (typeof v === 'string') secrets.push(v);
  for (const s of secrets) {
    if (s.length < MIN_SECRET) continue;
    yield s;
    const encoded = encodeURIComponent(s);
    if (encoded !== s) yield encoded;
    const bytes = Buffer.from(s, 'utf8');
    for (let shift = 0; shift < 3; shift++) {
      // base64 of the secret after `shift` other bytes (Basic auth's "user:"): the characters
      // that encode only the secret's bytes.
      const b64 = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64').replace(/=+$/, '');
      const own = shift === 0 ? b64 : b64.slice(4);
      const body = own.slice(0, Math.max(0, own.length - 3));
      if (body.length < MIN_SECRET) continue;
      yield body;
      const url = body.replace(/\+/g, '-').replace(/\//g, '_');
      if (url !== body) yield url;
    }
  }
}

/** The secret fields of a key that is a JSON object (a Google service-account key). */
const SECRET_FIELD = /private_key|secret|token|password/i;

/**
 * A key that is a JSON object (a Google service-account key) counts by its secret fields, a PEM
 * private key by the lines of its body (an echo of one line, or of the key with escaped newlines,
 * is caught); its other fields (project, client email, URIs) are not secret. Any other key: itself.
 */
function credentialValues(key: string): string[] {
  if (!key.trimStart().startsWith('{')) return [key];
  try {
    const parsed: unknown = JSON.parse(key);
    if (isPlainObject(parsed)) {
      return Object.entries(parsed).flatMap(([field, v]) => {
        if (typeof v !== 'string' || !SECRET_FIELD.test(field)) return [];
        if (!v.includes('-----BEGIN')) return [v];
        return v.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('-----'));
      });
    }
  } catch {
    /* not JSON: the key as it is */
  }
  return [key];
}

/** The texts of the client's request, raw and as they read inside a JSON string. */
function* requestTexts(req: ChatRequest | EmbeddingsRequest): Iterable<string> {
  for (const s of rawTexts(req)) {
    if (s.length < ECHO_WINDOW) continue;
    yield s;
    const escaped = JSON.stringify(s).slice(1, -1);
    if (escaped !== s) yield escaped;
  }
}

function* rawTexts(req: ChatRequest | EmbeddingsRequest): Iterable<string> {
  if ('messages' in req && Array.isArray(req.messages)) {
    for (const m of req.messages) {
      const content = (m as { content?: unknown }).content;
      if (typeof content === 'string') yield content;
      else if (Array.isArray(content)) {
        for (const part of content) if (isPlainObject(part) && typeof part.text === 'string') yield part.text;
      }
      const calls = (m as { tool_calls?: unknown }).tool_calls;
      if (Array.isArray(calls)) {
        for (const call of calls) {
          const fn = isPlainObject(call) ? call.function : undefined;
          if (isPlainObject(fn) && typeof fn.arguments === 'string') yield fn.arguments;
        }
      }
    }
  }
  if ('input' in req) {
    const input: unknown = req.input;
    if (typeof input === 'string') yield input;
    else if (Array.isArray(input)) for (const v of input) if (typeof v === 'string') yield v;
  }
}
