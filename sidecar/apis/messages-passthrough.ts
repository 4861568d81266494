import { isPlainObject } from '../json-values.js';
import { sseEvent, type SseEvent } from '../sse.js';
import type { Usage } from '../usage.js';
import { errorEvent } from './messages-stream.js';
import type { ApiError } from '../errors.js';
import type { ChatRequest } from '../openai-schema.js';
import { countableChatRequest } from './countable.js';
import { withUsageCost, type CallerCost, type NativeStreamEncoder, type Passthrough, type StreamFailure } from './types.js';

/**
 * A Messages request passed through to a provider that speaks the Messages API (anthropic,
 * vertex-anthropic): the client gets the provider's own answer, byte for byte but for
 * `usage.cost`, so everything the API has (thinking blocks, prompt caching, citations, stop
 * sequences…) reaches it. The stream commits with the first content block, thinking included (a
 * thinking model's first text can be seconds away; an error right after message_start still
 * fails over). Stream events are written as they came, except `message_delta` (it
 * carries the final usage) and `message_stop`: they wait until the request is metered, and the
 * `message_delta` gets `usage.cost`.
 */
export function messagesPassthrough(body: Readonly<Record<string, unknown>>, headers: Readonly<Record<string, string>>): Passthrough {
  return { api: 'messages', body, headers, respond: withUsageCost, encoder: () => new MessagesPassthroughEncoder(), opensAnswer: (ev) => ev.event === 'content_block_start' };
}

/** The Anthropic client headers a provider may see: the betas it asked for (never its key). */
export function forwardedHeaders(clientHeaders: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const beta = clientHeaders['anthropic-beta'];
  const value = Array.isArray(beta) ? beta.join(',') : beta;
  return value ? { 'anthropic-beta': value } : {};
}



class MessagesPassthroughEncoder implements NativeStreamEncoder {
  private readonly held: SseEvent[] = [];

  push(events: readonly SseEvent[]): string {
    let out = '';
    for (const ev of events) {
      if (ev.event === 'message_delta' || ev.event === 'message_stop') this.held.push(ev);
      else out += sseEvent(ev);
    }
    return out;
  }

  finish(_usage: Usage, cost: CallerCost): string {
    let out = '';
    for (const ev of this.held) {
      if (ev.event !== 'message_delta') {
        out += sseEvent(ev);
        continue;
      }
      let data: unknown;
      try {
        data = JSON.parse(ev.data);
      } catch {
        data = undefined;
      }
      out += isPlainObject(data) ? sseEvent({ event: ev.event, data: JSON.stringify(withUsageCost(data, cost)) }) : sseEvent(ev);
    }
    return out;
  }

  fail(failure: StreamFailure): string {
    return errorEvent(failure);
  }
}

/**
 * Where a refused Messages request names what only a provider speaking the Messages API can take:
 * a content block, tool or image source type it does not translate (documents, server tools,
 * Files API images), or remote MCP servers.
 */
const ONLY_NATIVE = /^(tools\.\d+\.type|messages\.\d+\.content\.\d+(\.content\.\d+)?\.type|.*\.source\.type|mcp_servers)$/;

/** True when `err` refused the request for something a Messages-speaking provider can take as is. */
export function onlyNativeCanAnswer(err: ApiError): boolean {
  return err.status === 400 && err.param !== null && ONLY_NATIVE.test(err.param);
}

/** What limits and budgets see of a Messages request that passes through (countable.ts). */
export function countableMessagesRequest(body: Readonly<Record<string, unknown>>, reason: ApiError): ChatRequest {
  return countableChatRequest(body, [body.system, body.messages], body.max_tokens, reason);
}
