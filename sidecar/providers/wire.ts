import { ApiError, invalidRequest } from '../errors.js';
import type { ChatRequest } from '../openai-schema.js';
import { isPlainObject, jsonDepth } from '../json-values.js';
import { UpstreamProtocolError, type UpstreamErrorInfo } from './errors.js';

/** Small helpers every translating adapter needs (OpenAI ⇄ native wire formats). */

export { isPlainObject, num } from '../json-values.js';

/**
 * OpenAI tool-call arguments (a JSON string) → the object native APIs want. OpenAI clients send
 * "" for a call without arguments; anything but a JSON object is the client's error (400).
 */
export function parseArguments(args: string, param: string): Record<string, unknown> {
  if (args.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw invalidRequest('Tool call arguments must be a JSON object.', param);
  }
  if (!isPlainObject(parsed)) throw invalidRequest('Tool call arguments must be a JSON object.', param);
  return parsed;
}

/**
 * A parameter this provider cannot take (a documented limitation, or a value the translation
 * cannot express): 400 `unsupported_parameter` naming it. The router treats an ApiError from an
 * adapter as "this provider cannot take the request": it moves on to the next target without
 * penalising this one, and the client gets this error only if no target could take the request.
 */
export function unsupportedParameter(provider: string, param: string, why: string): ApiError {
  return new ApiError(400, 'invalid_request_error', 'unsupported_parameter', `"${param}" is not supported by the ${provider} provider: ${why}.`, param);
}

/** Nesting deeper than this in upstream JSON is refused: provider events nest a dozen levels, and JSON.stringify overflows the stack near 5,000. */
export const MAX_JSON_DEPTH = 256;
/** Texts this short cannot nest deeper than MAX_JSON_DEPTH: not scanned (the hot path parses small events). */
const DEPTH_CHECKED_FROM = 2 * MAX_JSON_DEPTH;

/** A stream event's JSON (any value); not JSON, or nested deeper than MAX_JSON_DEPTH, is a protocol error. */
export function parseEventJson(data: string): unknown {
  if (data.length > DEPTH_CHECKED_FROM && jsonDepth(data) > MAX_JSON_DEPTH) {
    throw new UpstreamProtocolError(`upstream sent a stream event nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(data);
  } catch {
    throw new UpstreamProtocolError('upstream sent a stream event that is not JSON');
  }
}

/** One stream event's JSON object (Anthropic, Cohere, Bedrock events); anything else is a protocol error. */
export function parseStreamEvent(data: string): Record<string, unknown> {
  const parsed = parseEventJson(data);
  if (!isPlainObject(parsed)) throw new UpstreamProtocolError('upstream sent a stream event that is not an object');
  return parsed;
}

/** A request parameter a provider has no counterpart for; values `neutral` accepts ask for nothing and pass. */
export interface UnsupportedParameter {
  param: string;
  neutral: (v: unknown) => boolean;
  why: string;
}

/** 400 unsupported_parameter for the first parameter of `table` the request really asks for. */
export function rejectUnsupported(provider: string, req: ChatRequest, table: ReadonlyArray<UnsupportedParameter>): void {
  const fields = req as Record<string, unknown>;
  for (const { param, neutral, why } of table) {
    if (!neutral(fields[param])) throw unsupportedParameter(provider, param, why);
  }
}

/** An error body's JSON value; undefined when the body is not JSON (an HTML error page, nothing). */
export function errorBodyJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** What an error body that says nothing usable gives: no message, no code. */
export const noErrorInfo = (): UpstreamErrorInfo => ({ message: undefined, code: undefined, type: undefined });
