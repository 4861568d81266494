import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { fromUtf8, toUtf8 } from '@smithy/core/serde';
import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';

/**
 * A fake Amazon Bedrock runtime (Converse, ConverseStream) and a fake STS for web identity, both
 * speaking AWS's wire formats:
 * - Requests must carry a valid AWS Signature Version 4 (service `bedrock`), checked by
 *   verifySigV4 below — written from the SigV4 specification with node:crypto, independently of
 *   the @smithy/signature-v4 signer the sidecar uses, and itself checked against the AWS SigV4
 *   test-suite vectors in test/sidecar/providers/bedrock.test.ts. A bad signature gets Bedrock's
 *   403 InvalidSignatureException, an unknown key its 403 UnrecognizedClientException.
 * - Errors are Bedrock's `{"message": ...}` bodies with the `x-amzn-ErrorType` header
 *   (`ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/`).
 * - Streams are application/vnd.amazon.eventstream messages built with @smithy/core's
 *   EventStreamCodec: `:message-type` event with `:event-type` and `:content-type` headers, or
 *   exception with `:exception-type`.
 * - Deterministic answers: the reply echoes the last user text ("Bedrock echo: ..."), one word per
 *   contentBlockDelta; a forced tool (toolChoice any/tool) is called with {"query": <last user
 *   text>}. Usage: the system prompt's words are reported as cache reads (cacheReadInputTokens, as
 *   if an earlier identical request had cached it), the other prompt words as inputTokens (which
 *   excludes cached tokens), the reply's words as outputTokens.
 */

export const EVENT_STREAM = 'application/vnd.amazon.eventstream';
const FIXTURES = join(import.meta.dirname, '../sidecar/providers/fixtures/bedrock');
const codec = new EventStreamCodec(toUtf8, fromUtf8);

// ---------------------------------------------------------------------------------------------
// Event-stream framing

/** One ConverseStream event as documented: {<event or exception name>: payload}. */
export type StreamEvent = Record<string, unknown>;

/** Encodes events as event-stream messages; names ending in "Exception" become exception messages. */
export function encodeEvents(events: StreamEvent[]): Buffer {
  return Buffer.concat(
    events.map((ev) => {
      const [name, payload] = Object.entries(ev)[0] as [string, unknown];
      const exception = name.endsWith('Exception');
      return codec.encode({
        headers: {
          ':message-type': { type: 'string', value: exception ? 'exception' : 'event' },
          [exception ? ':exception-type' : ':event-type']: { type: 'string', value: name },
          ':content-type': { type: 'string', value: 'application/json' },
        },
        body: fromUtf8(JSON.stringify(payload)),
      });
    }),
  );
}

/** The events of a stream fixture (`{_docs, events}`). */
export function fixtureEvents(name: string): StreamEvent[] {
  return (JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as { events: StreamEvent[] }).events;
}

// ---------------------------------------------------------------------------------------------
// SigV4 verification (AWS General Reference, "Create a signed AWS API request")

export interface AwsKey {
  secretAccessKey: string;
  sessionToken?: string;
}

export type SigV4Result = { ok: true; accessKeyId: string; signedHeaders: string[] } | { ok: false; status: number; type: string; message: string };

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is %XX. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Verifies a request's SigV4 Authorization header. `path` is the request target as sent (path and
 * query, still percent-encoded). The canonical URI encodes each path segment once more, as SigV4
 * does for every service but S3 (so a model id's %3A becomes %253A).
 */
export function verifySigV4(
  req: { method: string; path: string; headers: IncomingHttpHeaders; body: string | Buffer },
  keys: (accessKeyId: string) => AwsKey | undefined,
  o: { service: string; region: string; now?: Date; maxSkewMs?: number },
): SigV4Result {
  const deny = (status: number, type: string, message: string): SigV4Result => ({ ok: false, status, type, message });
  const auth = header(req.headers, 'authorization');
  const m = auth && /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return deny(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  const [, accessKeyId, day, region, service, signedList, signature] = m as unknown as string[];
  const key = keys(accessKeyId!);
  if (!key) return deny(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  const amzDate = header(req.headers, 'x-amz-date') ?? '';
  if (!/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== day) return deny(403, 'InvalidSignatureException', 'Date must be in ISO-8601 basic format and match the credential scope.');
  if (region !== o.region || service !== o.service) {
    return deny(403, 'InvalidSignatureException', `Credential should be scoped to a valid region and service (${o.region}/${o.service}).`);
  }
  if (o.now) {
    const at = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
    if (Math.abs(at - o.now.getTime()) > (o.maxSkewMs ?? 5 * 60_000)) return deny(403, 'InvalidSignatureException', 'Signature expired.');
  }
  const signedHeaders = signedList!.split(';');
  if (!signedHeaders.includes('host')) return deny(403, 'InvalidSignatureException', 'The host header must be signed.');
  if (key.sessionToken !== undefined) {
    if (header(req.headers, 'x-amz-security-token') !== key.sessionToken || !signedHeaders.includes('x-amz-security-token')) {
      return deny(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
  }
  const q = req.path.indexOf('?');
  const rawPath = q < 0 ? req.path : req.path.slice(0, q);
  const rawQuery = q < 0 ? '' : req.path.slice(q + 1);
  const canonicalURI = rawPath.split('/').map(uriEncode).join('/') || '/';
  const canonicalQuery = rawQuery
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const [k, v = ''] = pair.split('=');
      return [uriEncode(decodeURIComponent(k!)), uriEncode(decodeURIComponent(v))] as const;
    })
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${(header(req.headers, h) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonicalRequest = [req.method, canonicalURI, canonicalQuery, canonicalHeaders, signedList, sha256(req.body)].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest();
  if (!timingSafeEqual(expected, Buffer.from(signature!, 'hex'))) {
    return deny(403, 'InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
  }
  return { ok: true, accessKeyId: accessKeyId!, signedHeaders };
}

// ---------------------------------------------------------------------------------------------
// Fake Converse / ConverseStream

interface Block {
  text?: string;
  image?: unknown;
  toolUse?: { toolUseId?: string; name?: string; input?: unknown };
  toolResult?: { toolUseId?: string; content?: Array<{ text?: string }> };
}

interface ConverseBody {
  messages?: Array<{ role?: string; content?: Block[] }>;
  system?: Array<{ text?: string }>;
  inferenceConfig?: { maxTokens?: number };
  toolConfig?: { tools?: Array<{ toolSpec?: { name?: string } }>; toolChoice?: { auto?: unknown; any?: unknown; tool?: { name?: string } } };
}

const BEDROCK_ERROR_NS = 'http://internal.amazon.com/coral/com.amazon.bedrock/';

/** A Bedrock error as the service sends it: {"message"} and the x-amzn-ErrorType header. */
export function bedrockError(status: number, type: string, message: string): Reply {
  return { kind: 'raw', status, body: JSON.stringify({ message }), headers: { 'x-amzn-errortype': `${type}:${BEDROCK_ERROR_NS}` } };
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** The checks Converse makes that an adapter bug would trip, with Bedrock's messages. */
function invalid(body: ConverseBody | undefined): Reply | undefined {
  const bad = (message: string) => bedrockError(400, 'ValidationException', message);
  if (!body || !Array.isArray(body.messages) || body.messages.length === 0) return bad('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
  if (body.messages[0]?.role !== 'user') return bad('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
  for (let i = 1; i < body.messages.length; i++) {
    if (body.messages[i]!.role === body.messages[i - 1]!.role) return bad('A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.');
  }
  for (const m of body.messages) {
    if (!Array.isArray(m.content) || m.content.length === 0) return bad('The content field in the Message object is empty. Add a ContentBlock object to the content field and try again.');
    if (m.content.some((b) => typeof b.text === 'string' && b.text.trim() === '')) return bad('The text field in the ContentBlock object is blank. Add text to the text field, and try again.');
    if (m.content.some((b) => b.toolUse || b.toolResult) && !body.toolConfig) return bad('The toolConfig field must be defined when using toolUse and toolResult content blocks.');
  }
  return undefined;
}

function lastUserText(body: ConverseBody): string {
  const user = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  return (user?.content ?? []).flatMap((b) => (typeof b.text === 'string' ? [b.text] : [])).join(' ').trim();
}

function usage(body: ConverseBody, output: number) {
  const cached = (body.system ?? []).reduce((n, s) => n + words(s.text ?? ''), 0);
  const prompt = Math.max(
    1,
    (body.messages ?? []).reduce((n, m) => n + (m.content ?? []).reduce((k, b) => k + words(b.text ?? '') + (b.toolUse ? 1 : 0) + (b.toolResult?.content ?? []).reduce((j, c) => j + words(c.text ?? ''), 0), 0), 0),
  );
  return { inputTokens: prompt, outputTokens: output, totalTokens: prompt + cached + output, cacheReadInputTokens: cached, cacheWriteInputTokens: 0 };
}

export interface BedrockResponderOptions {
  region: string;
  /** Access key id → its secret (and session token, for temporary credentials). */
  keys: Record<string, AwsKey>;
  /** Checks x-amz-date against this clock (default: now). */
  now?: () => Date;
  /**
   * A signed request whose path has a prefix before /model/ (a target's baseURL with a path) may
   * get another answer: e.g. a recorded stream that fails. Undefined: the normal answer.
   */
  scenario?: (prefix: string, stream: boolean) => Reply | undefined;
}

/** Turns a signed Converse / ConverseStream request into Bedrock's answer. */
export function bedrockResponder(o: BedrockResponderOptions): Responder {
  return (req: RecordedRequest): Reply => {
    const route = /^(.*)\/model\/([^/]+)\/(converse|converse-stream)$/.exec(req.url.split('?')[0] ?? '');
    if (req.method !== 'POST' || !route) return bedrockError(404, 'UnknownOperationException', 'Unknown operation');
    const verdict = verifySigV4({ method: req.method, path: req.url, headers: req.headers, body: req.rawBody }, (id) => o.keys[id], { service: 'bedrock', region: o.region, now: (o.now ?? (() => new Date()))() });
    if (!verdict.ok) return bedrockError(verdict.status, verdict.type, verdict.message);
    const body = req.body as ConverseBody | undefined;
    const bad = invalid(body);
    if (bad || !body) return bad ?? bedrockError(400, 'ValidationException', 'invalid request');
    const stream = route[3] === 'converse-stream';
    const special = route[1] ? o.scenario?.(route[1], stream) : undefined;
    if (special) return special;

    const choice = body.toolConfig?.toolChoice;
    const forced = choice?.tool?.name ?? (choice?.any ? body.toolConfig?.tools?.[0]?.toolSpec?.name : undefined);
    if (forced) {
      const input = { query: lastUserText(body) };
      const toolUseId = `tooluse_${createHash('sha256').update(req.rawBody).digest('base64url').slice(0, 22)}`;
      const u = usage(body, 5);
      if (!stream) {
        return { kind: 'json', body: { output: { message: { role: 'assistant', content: [{ toolUse: { toolUseId, name: forced, input } }] } }, stopReason: 'tool_use', usage: u, metrics: { latencyMs: 1 } } };
      }
      const args = JSON.stringify(input);
      const half = Math.ceil(args.length / 2);
      return eventStreamReply([
        { messageStart: { role: 'assistant' } },
        { contentBlockStart: { start: { toolUse: { toolUseId, name: forced } }, contentBlockIndex: 0 } },
        { contentBlockDelta: { delta: { toolUse: { input: args.slice(0, half) } }, contentBlockIndex: 0 } },
        { contentBlockDelta: { delta: { toolUse: { input: args.slice(half) } }, contentBlockIndex: 0 } },
        { contentBlockStop: { contentBlockIndex: 0 } },
        { messageStop: { stopReason: 'tool_use' } },
        { metadata: { usage: u, metrics: { latencyMs: 1 } } },
      ]);
    }

    const said = lastUserText(body);
    let pieces = (said ? `Bedrock echo: ${said}` : 'Bedrock received the tool results.').split(/(?=\s)/);
    let stopReason = 'end_turn';
    const max = body.inferenceConfig?.maxTokens;
    if (typeof max === 'number' && pieces.length > max) {
      pieces = pieces.slice(0, max);
      stopReason = 'max_tokens';
    }
    const u = usage(body, pieces.length);
    if (!stream) {
      return { kind: 'json', body: { output: { message: { role: 'assistant', content: [{ text: pieces.join('') }] } }, stopReason, usage: u, metrics: { latencyMs: 1 } } };
    }
    return eventStreamReply([
      { messageStart: { role: 'assistant' } },
      ...pieces.map((text) => ({ contentBlockDelta: { delta: { text }, contentBlockIndex: 0 } })),
      { contentBlockStop: { contentBlockIndex: 0 } },
      { messageStop: { stopReason } },
      { metadata: { usage: u, metrics: { latencyMs: 1 } } },
    ]);
  };
}

/** A 200 ConverseStream answer carrying these events. */
export function eventStreamReply(events: StreamEvent[]): Reply {
  return { kind: 'raw', status: 200, body: encodeEvents(events), headers: { 'content-type': EVENT_STREAM } };
}

// ---------------------------------------------------------------------------------------------
// Fake STS (AssumeRoleWithWebIdentity, query protocol)

export interface FakeSts {
  readonly url: string;
  /** AssumeRoleWithWebIdentity calls answered so far (refused ones included). */
  readonly calls: number;
  /** While true, every call is refused with InvalidIdentityToken. */
  refuse: boolean;
  close(): Promise<void>;
}

/**
 * Answers AssumeRoleWithWebIdentity with the STS API reference's example response
 * (fixtures/bedrock/sts-assume-role-with-web-identity.xml: ASgeIAIOSFODNN7EXAMPLE, its secret and
 * session token), its Expiration moved to `expiresInSeconds` from now. Refuses with STS's
 * InvalidIdentityToken error when the token or role is not the expected one, or while `refuse`.
 */
export async function startFakeSts(o: { roleArn: string; token: string; expiresInSeconds?: number }): Promise<FakeSts> {
  const template = readFileSync(join(FIXTURES, 'sts-assume-role-with-web-identity.xml'), 'utf8');
  let calls = 0;
  const state = { refuse: false };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (req.method !== 'POST' || form.get('Action') !== 'AssumeRoleWithWebIdentity' || form.get('Version') !== '2011-06-15') {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(stsError('InvalidAction', 'Could not find operation'));
        return;
      }
      calls++;
      if (state.refuse || form.get('WebIdentityToken') !== o.token || form.get('RoleArn') !== o.roleArn) {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(stsError('InvalidIdentityToken', "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"));
        return;
      }
      const expiration = new Date(Date.now() + (o.expiresInSeconds ?? 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(template.replace(/<Expiration>[^<]*<\/Expiration>/, `<Expiration>${expiration}</Expiration>`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    get refuse() {
      return state.refuse;
    },
    set refuse(v: boolean) {
      state.refuse = v;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function stsError(code: string, message: string): string {
  return `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>${code}</Code>
    <Message>${message}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>
`;
}

/** The example credentials the fake STS hands out (STS API reference example). */
export const STS_EXAMPLE_CREDENTIALS = {
  accessKeyId: 'ASgeIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY',
  sessionToken: 'AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE',
} as const;

/**
 * A Bedrock runtime that answers every signed ConverseStream request with `parts` of events, each
 * part in its own write `pauseMs` apart: what arrives after the first part reaches the sidecar
 * after it committed to the stream (the single-write fake delivers a whole stream in one read).
 */
export async function startPacedBedrock(o: { region: string; keys: Record<string, AwsKey>; parts: StreamEvent[][]; pauseMs?: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const verdict = verifySigV4({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) }, (id) => o.keys[id], { service: 'bedrock', region: o.region, now: new Date() });
      if (!verdict.ok) {
        res.writeHead(verdict.status, { 'content-type': 'application/json', 'x-amzn-errortype': `${verdict.type}:${BEDROCK_ERROR_NS}` });
        res.end(JSON.stringify({ message: verdict.message }));
        return;
      }
      res.writeHead(200, { 'content-type': EVENT_STREAM });
      const write = (i: number) => {
        if (res.destroyed) return;
        if (i >= o.parts.length) return void res.end();
        res.write(encodeEvents(o.parts[i]!));
        setTimeout(() => write(i + 1), o.pauseMs ?? 50);
      };
      write(0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
