// The client's reading of an error response, shared by both transports (http.ts for JSON and uploads,
// body-fetcher.ts for chunk downloads): the service's JSON error shape keeps its stable code.
import { CofferError, ErrorCode } from '../errors.js';

const knownCodes = new Set<string>(Object.values(ErrorCode));
/** Statuses worth retrying unchanged: the service or a proxy in front of it is briefly unavailable. */
const TRANSIENT_STATUS = new Set([408, 429, 502, 503, 504]);

/**
 * The CofferError for an error response: the service's JSON error shape keeps its stable code; anything else
 * (a proxy's page, an empty body) is mapped from the status. Statuses in TRANSIENT_STATUS are retryable.
 */
export function errorFromResponse(status: number, text: string): CofferError {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = parsed.error?.code;
    const message = typeof parsed.error?.message === 'string' ? parsed.error.message : `HTTP ${status}`;
    if (typeof code === 'string' && knownCodes.has(code)) {
      return new CofferError(code as ErrorCode, message, { details: { status }, retryable: TRANSIENT_STATUS.has(status) });
    }
  } catch {
    /* not our JSON error shape */
  }
  const code = status === 401 ? ErrorCode.UNAUTHENTICATED : status === 403 ? ErrorCode.PERMISSION_DENIED : status === 404 ? ErrorCode.NOT_FOUND : status >= 500 ? ErrorCode.UNAVAILABLE : ErrorCode.INVALID_ARGUMENT;
  return new CofferError(code, `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`, { details: { status }, retryable: TRANSIENT_STATUS.has(status) });
}
