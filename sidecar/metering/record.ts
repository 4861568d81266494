import type { ProviderName } from '../../crds/src/index.js';
import type { Usage } from '../usage.js';
import type { ApiName } from '../apis/types.js';

export type Outcome = 'success' | 'upstream_error' | 'client_error' | 'client_aborted' | 'stream_error' | 'refused';

/** Everything known about one request once it is over: the input of metering. */
export interface RequestRecord {
  requestId: string;
  operation: 'chat' | 'embeddings';
  /** The API the request came in on: chat, responses and messages are chat operations. */
  api: ApiName | 'embeddings';
  namespace: string;
  /** ModelRoute name. */
  route: string;
  /** Model name the app sent. */
  requestModel: string;
  target: string | undefined;
  provider: ProviderName | undefined;
  /** The provider's model id the request went to. */
  providerModel: string | undefined;
  /** The model id the provider answered with. */
  responseModel: string | undefined;
  stream: boolean;
  outcome: Outcome;
  status: number;
  errorType: string | undefined;
  usage: Usage | undefined;
  /** True when usage was counted by paygo's tokenizer because the provider reported none. */
  estimated: boolean;
  attempts: number;
  durationMs: number;
  ttftMs: number | undefined;
  pricingOverride: import('../../crds/src/index.js').Pricing | undefined;
  /** On a route with a response cache: answered from it (no upstream call, no cost) or not. */
  cache?: 'hit' | 'miss';
}

export interface MeterResult {
  costNano: bigint;
  /** False when the model has no known price: the cost is unknown, not zero. */
  priced: boolean;
}

/** Turns a finished request into cost, metrics and a usage log line. */
export interface Meter {
  /** Prices the request at once; may publish its metrics and log line a moment later. */
  record(r: RequestRecord): MeterResult;
  /** Publishes everything recorded so far (before a scrape, at shutdown). */
  flush(): void;
}
