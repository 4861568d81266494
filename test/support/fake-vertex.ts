import { createHash, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { anthropicResponder } from './fake-anthropic.js';
import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';
import { geminiResponder } from './fake-gemini.js';

/**
 * Fakes of Google Cloud for the vertex and vertex-anthropic providers, all on 127.0.0.1:
 *
 * - startFakeTokenEndpoint: Google's OAuth 2.0 token endpoint for service accounts
 *   (developers.google.com/identity/protocols/oauth2/service-account, "Preparing to make an
 *   authorized API call" → HTTP/REST): POST application/x-www-form-urlencoded with
 *   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and the signed JWT as `assertion`. It
 *   verifies the RS256 signature with the service account's public key (node:crypto verify) and the
 *   claims (iss = the account's email, scope = cloud-platform, aud = this endpoint's URL, iat/exp
 *   at most an hour apart and about now), then answers {"access_token","expires_in","token_type"};
 *   a bad assertion gets 400 {"error":"invalid_grant","error_description":"Invalid JWT Signature."}.
 * - startFakeMetadataServer: the GCE/GKE metadata server as google-auth-library reaches it through
 *   GCE_METADATA_HOST: GET /computeMetadata/v1/instance (probe), /project/project-id and
 *   /instance/service-accounts/default/token, every request and answer with `Metadata-Flavor: Google`.
 * - vertexResponder: Vertex AI's publisher endpoints, POST /v1/projects/{p}/locations/{l}/publishers/
 *   google/models/{m}:generateContent|streamGenerateContent?alt=sse (the Gemini API's bodies, plus
 *   the fields Vertex adds: createTime, usageMetadata.trafficType) and .../publishers/anthropic/
 *   models/{m}:rawPredict|streamRawPredict (the Messages API's bodies; ids msg_vrtx_...). It accepts
 *   only a Bearer token one of the fakes issued, the configured project and location, and for
 *   Claude a body with anthropic_version vertex-2023-10-16, without model, whose stream flag matches
 *   the method. The bodies come from the Gemini and Anthropic fakes (fake-gemini.ts,
 *   fake-anthropic.ts); errors are Google's {"error":{"code","message","status"}}.
 */

export const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

interface Listening {
  url: string;
  close(): Promise<void>;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Listening> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
};

/** Google's error body (google.rpc.Status as JSON). */
export function googleError(code: number, status: string, message: string): string {
  return JSON.stringify({ error: { code, message, status } });
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0 token endpoint

export interface TokenGrant {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  assertion: string;
  token: string;
}

export interface FakeTokenEndpoint extends Listening {
  /** The token_uri to put in the service-account key. */
  tokenUri: string;
  /** Successful grants, in order. */
  grants: TokenGrant[];
  /** Every request, refused ones included. */
  requests: number;
  /** Tokens issued so far (by this endpoint). */
  issued: Set<string>;
  /** Lifetime given to new tokens, seconds (default 3599). */
  expiresIn: number;
  /** Answer the next n requests with this status and body instead. */
  fail(n: number, status: number, body: unknown): void;
}

function b64json(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A token endpoint that trusts one service account: its email and public key. */
export async function startFakeTokenEndpoint(account: { email: string; publicKey: KeyObject }, path = '/token'): Promise<FakeTokenEndpoint> {
  const grants: TokenGrant[] = [];
  const issued = new Set<string>();
  const failures: Array<{ status: number; body: unknown }> = [];
  let requests = 0;
  let tokenUri = '';
  const invalidGrant = (res: ServerResponse, description: string) => json(res, 400, { error: 'invalid_grant', error_description: description });
  const server = await listen((req, res, raw) => {
    requests++;
    if (req.method !== 'POST' || req.url !== path) return json(res, 404, { error: 'not_found' });
    const failure = failures.shift();
    if (failure) return json(res, failure.status, failure.body);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return json(res, 400, { error: 'invalid_request', error_description: 'Invalid content type' });
    }
    const form = new URLSearchParams(raw);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
    const assertion = form.get('assertion') ?? '';
    const [h = '', c = '', s = ''] = assertion.split('.');
    const header = b64json(h);
    const claims = b64json(c);
    if (!header || !claims || !s) return invalidGrant(res, 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe');
    if (header.alg !== 'RS256') return invalidGrant(res, 'Invalid JWT Signature.');
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${c}`), account.publicKey, Buffer.from(s, 'base64url'))) return invalidGrant(res, 'Invalid JWT Signature.');
    const now = Math.floor(Date.now() / 1000);
    const iat = Number(claims.iat);
    const exp = Number(claims.exp);
    if (!(Math.abs(iat - now) < 300 && exp > iat && exp - iat <= 3600)) {
      return invalidGrant(res, 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
    }
    if (claims.iss !== account.email) return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid grant: account not found' });
    if (claims.aud !== tokenUri) return invalidGrant(res, 'Invalid JWT: Failed audience check.');
    if (typeof claims.scope !== 'string' || !claims.scope.split(' ').includes(CLOUD_PLATFORM)) {
      return json(res, 400, { error: 'invalid_scope', error_description: 'Invalid OAuth scope or ID token audience provided.' });
    }
    const token = `ya29.fake-${randomBytes(24).toString('base64url')}`;
    issued.add(token);
    grants.push({ header, claims, assertion, token });
    json(res, 200, { access_token: token, expires_in: endpoint.expiresIn, token_type: 'Bearer' });
  });
  tokenUri = `${server.url}${path}`;
  const endpoint: FakeTokenEndpoint = {
    ...server,
    tokenUri,
    grants,
    issued,
    expiresIn: 3599,
    get requests() {
      return requests;
    },
    fail: (n, status, body) => {
      for (let i = 0; i < n; i++) failures.push({ status, body });
    },
  };
  return endpoint;
}

/** A service-account JSON key (the format of `gcloud iam service-accounts keys create`). */
export function serviceAccountKey(o: { email: string; privateKeyPem: string; projectId?: string; tokenUri: string }): string {
  return JSON.stringify({
    type: 'service_account',
    ...(o.projectId ? { project_id: o.projectId } : {}),
    private_key_id: createHash('sha1').update(o.privateKeyPem).digest('hex'),
    private_key: o.privateKeyPem,
    client_email: o.email,
    client_id: '113355779911224466880',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: o.tokenUri,
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(o.email)}`,
    universe_domain: 'googleapis.com',
  });
}

// ---------------------------------------------------------------------------------------------
// Metadata server

export interface FakeMetadataServer extends Listening {
  /** host:port, the value of GCE_METADATA_HOST. */
  host: string;
  issued: Set<string>;
  /** Paths (with query) requested, in order. */
  paths: string[];
}

export async function startFakeMetadataServer(projectId: string): Promise<FakeMetadataServer> {
  const issued = new Set<string>();
  const paths: string[] = [];
  const flavor = { 'metadata-flavor': 'Google' };
  const server = await listen((req, res) => {
    paths.push(req.url ?? '');
    if (req.headers['metadata-flavor'] !== 'Google') {
      res.writeHead(403, { 'content-type': 'text/html', ...flavor });
      return res.end('Missing required header: Metadata-Flavor');
    }
    const url = new URL(req.url ?? '/', 'http://metadata');
    if (url.pathname === '/computeMetadata/v1/instance' || url.pathname === '/computeMetadata/v1/instance/') {
      res.writeHead(200, { 'content-type': 'application/text', ...flavor });
      return res.end('attributes/\nhostname\nid\nservice-accounts/\nzone\n');
    }
    if (url.pathname === '/computeMetadata/v1/project/project-id') {
      res.writeHead(200, { 'content-type': 'application/text', ...flavor });
      return res.end(projectId);
    }
    if (url.pathname === '/computeMetadata/v1/instance/service-accounts/default/token') {
      const scopes = (url.searchParams.get('scopes') ?? '').split(',');
      if (!scopes.includes(CLOUD_PLATFORM)) {
        res.writeHead(400, { 'content-type': 'text/plain', ...flavor });
        return res.end('scopes must include cloud-platform in this fake');
      }
      const token = `ya29.metadata-${randomBytes(24).toString('base64url')}`;
      issued.add(token);
      return json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' }, flavor);
    }
    res.writeHead(404, { 'content-type': 'text/html', ...flavor });
    res.end('Not Found');
  });
  return { ...server, host: server.url.replace(/^http:\/\//, ''), issued, paths };
}

// ---------------------------------------------------------------------------------------------
// Vertex AI

const ROUTE = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/(google|anthropic)\/models\/([^/:?]+):(generateContent|streamGenerateContent|rawPredict|streamRawPredict)(?:\?(.*))?$/;

function errorReply(code: number, status: string, message: string): Reply {
  return { kind: 'json', status: code, body: { error: { code, message, status } } };
}

/** Google's SSE payloads are single-line JSON with `": "` after keys and bare commas. */
function googleJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(googleJson).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}: ${googleJson(x)}`).join(',') + '}';
  }
  return JSON.stringify(v);
}

const CREATE_TIME = '2025-06-12T09:30:11.824563Z';

/** A Gemini API response object as Vertex sends it: trafficType in usageMetadata, createTime. */
function asVertex(body: Record<string, unknown>): Record<string, unknown> {
  const { usageMetadata, modelVersion, responseId, ...rest } = body;
  if (!('candidates' in body)) return body;
  return { ...rest, usageMetadata: { ...(usageMetadata as object), trafficType: 'ON_DEMAND' }, modelVersion, createTime: CREATE_TIME, responseId };
}

function geminiOnVertex(req: RecordedRequest, model: string, method: string, query: string): Reply {
  const reply = geminiResponder({ ...req, url: `/v1beta/models/${model}:${method}${query ? `?${query}` : ''}`, headers: { ...req.headers, 'x-goog-api-key': 'vertex' } });
  if (reply.kind === 'json' && (reply.status ?? 200) === 200) return { ...reply, body: asVertex(reply.body as Record<string, unknown>) };
  if (reply.kind === 'sse') {
    const frames = reply.frames.map((f) => `data: ${googleJson(asVertex(JSON.parse(f.slice('data: '.length)) as Record<string, unknown>))}\r\n\r\n`);
    return { ...reply, frames };
  }
  return reply;
}

function anthropicOnVertex(req: RecordedRequest, model: string, method: string): Reply {
  const body = req.body as Record<string, unknown> | undefined;
  const invalid = (message: string): Reply => ({ kind: 'json', status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message } } });
  if (!body || typeof body !== 'object') return invalid('Request body must be a JSON object');
  if (body.anthropic_version !== 'vertex-2023-10-16') return invalid('anthropic_version: Input should be \'vertex-2023-10-16\'');
  if ('model' in body) return invalid('model: Extra inputs are not permitted');
  if ((body.stream === true) !== (method === 'streamRawPredict')) return invalid(`stream: must be ${method === 'streamRawPredict'} for ${method}`);
  const { anthropic_version: _v, ...messages } = body;
  const reply = anthropicResponder({
    ...req,
    url: '/v1/messages',
    headers: { ...req.headers, 'x-api-key': 'vertex', 'anthropic-version': '2023-06-01' },
    body: { model, ...messages },
  });
  const vrtx = (s: string) => s.replace(/"msg_/g, '"msg_vrtx_');
  if (reply.kind === 'json') return { ...reply, headers: {}, body: JSON.parse(vrtx(JSON.stringify(reply.body))) as unknown };
  if (reply.kind === 'sse') return { ...reply, headers: {}, frames: reply.frames.map(vrtx) };
  return reply;
}

/** Vertex AI for one project and location, accepting the tokens the given sources issued. */
export function vertexResponder(o: { project: string; location: string; tokens: () => Iterable<string> }): Responder {
  return (req) => {
    const route = ROUTE.exec(req.url);
    if (req.method !== 'POST' || !route) return errorReply(404, 'NOT_FOUND', `fake vertex: no route for ${req.method} ${req.url.split('?')[0]}`);
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
    if (!token || ![...o.tokens()].includes(token)) {
      return errorReply(
        401,
        'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      );
    }
    const [, project = '', location = '', publisher, model = '', method = '', query = ''] = route;
    if (project !== o.project) return errorReply(403, 'PERMISSION_DENIED', `Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/${project}/locations/${location}/publishers/${publisher}/models/${model}' (or it may not exist).`);
    if (location !== o.location) return errorReply(400, 'FAILED_PRECONDITION', `fake vertex: this endpoint serves location ${o.location}, not ${location}`);
    const decoded = decodeURIComponent(model);
    if (publisher === 'google') {
      if (method !== 'generateContent' && method !== 'streamGenerateContent') return errorReply(404, 'NOT_FOUND', `fake vertex: ${method} is not a Gemini method`);
      return geminiOnVertex(req, decoded, method, query);
    }
    if (method !== 'rawPredict' && method !== 'streamRawPredict') return errorReply(404, 'NOT_FOUND', `fake vertex: ${method} is not a Claude method`);
    return anthropicOnVertex(req, decoded, method);
  };
}
