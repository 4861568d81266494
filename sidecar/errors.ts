/**
 * Every error the sidecar returns has OpenAI's shape: {"error":{"message","type","param","code"}}.
 * Messages never contain keys or prompt text.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'upstream_error'
  | 'timeout_error'
  | 'server_error';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    /** paygo's ErrorType, or a provider's own error type passed on (providers/redact.ts safeCode). */
    readonly type: ErrorType | (string & {}),
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code = 'invalid_request') =>
  new ApiError(400, 'invalid_request_error', code, message, param);

export const modelNotFound = (model: string) =>
  new ApiError(404, 'not_found_error', 'model_not_found', `The model "${model}" does not exist or you do not have access to it.`, 'model');

export const bodyTooLarge = (limit: number) =>
  new ApiError(413, 'invalid_request_error', 'request_too_large', `Request body exceeds the limit of ${limit} bytes.`);
