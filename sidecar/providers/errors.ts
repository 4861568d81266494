/**
 * The errors adapters raise and the router classifies (router/dispatch.ts `classify`). They live
 * with the adapters so imports go one way: router → providers, never back. Their messages may
 * quote a provider, so they are built from redacted text (providers/redact.ts).
 */

/** What a provider's error answer says, reduced to what may leave the sidecar. */
export interface UpstreamErrorInfo {
  /** The provider's message, redacted (providers/redact.ts `upstreamText`). */
  message: string | undefined;
  /** The provider's own code (OpenAI `code`, Anthropic `type`, Google `status`, AWS exception name), a `safeCode`. */
  code: string | undefined;
  /** Its error type when it names one beside the code (OpenAI wire `type`), a `safeCode`. */
  type: string | undefined;
}

/** A non-2xx answer from a provider, already reduced to a safe message and safe codes. */
export class UpstreamHttpError extends Error {
  override readonly name = 'UpstreamHttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined,
    /** The provider's own code and type (safe codes), passed on to the client when its status is. */
    readonly upstream: { code?: string | undefined; type?: string | undefined } = {},
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
