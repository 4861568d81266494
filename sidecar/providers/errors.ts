/**
 * The errors adapters raise and the router classifies (router/dispatch.ts `classify`). They live
 * with the adapters so imports go one way: router → providers, never back. Their messages may
 * quote a provider, so they are built from redacted text (providers/redact.ts).
 */

/** A non-2xx answer from a provider, already reduced to a safe message. */
export class UpstreamHttpError extends Error {
  override readonly name = 'UpstreamHttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

/** An error event inside an upstream stream (e.g. Anthropic `event: error`, overloaded). */
export class UpstreamStreamError extends Error {
  override readonly name = 'UpstreamStreamError';
  constructor(
    message: string,
    readonly errorType: string,
  ) {
    super(message);
  }
}

/** The body of an upstream response could not be understood. */
export class UpstreamProtocolError extends Error {
  override readonly name = 'UpstreamProtocolError';
}
