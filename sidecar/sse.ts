import { isAscii } from 'node:buffer';
import { UpstreamProtocolError } from './providers/errors.js';

/**
 * Incremental Server-Sent Events parser (WHATWG HTML "event stream" rules): accepts bytes in
 * arbitrary pieces, handles \n, \r\n and \r line endings, multi-line data, comments and a
 * UTF-8 character split across pieces. Invalid UTF-8 becomes U+FFFD. Memory is bounded: a line
 * or an event's data over MAX_SSE_LINE characters is refused with UpstreamProtocolError, and
 * each character is scanned and copied a bounded number of times however the stream is cut.
 */
export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

/** Longest line, and longest event data, accepted (UTF-16 code units): 8 Mi. */
export const MAX_SSE_LINE = 8 * 1024 * 1024;

export class SseParser {
  /** Made at the first piece that is not ASCII; until then pieces are ASCII text as they are (no pending UTF-8 bytes to carry). */
  private decoder: InstanceType<typeof TextDecoder> | undefined;
  /** The pieces of a line not yet ended (kept apart: concatenating them per piece would copy the line again and again). */
  private partial: string[] = [];
  private partialLength = 0;
  private data: string[] = [];
  private event: string | undefined;
  private id: string | undefined;
  private dataLength = 0;
  private sawCR = false;

  /** Feeds bytes; returns the events completed by them. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoded(chunk);
    // A CR ended the last piece: an LF opening this one completes that CRLF. Empty pieces (or a
    // UTF-8 character still incomplete) leave the question open.
    if (text.length === 0) return [];
    if (this.sawCR && text.charCodeAt(0) === 10) text = text.slice(1);
    this.sawCR = text.endsWith('\r');
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      let line = text.slice(start, i);
      if (this.partial.length > 0) {
        // The line began in earlier pieces: joined once, when it is complete.
        this.partial.push(line);
        line = this.partial.join('');
        this.partial = [];
        this.partialLength = 0;
      }
      this.line(line, events);
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    if (start < text.length) {
      const rest = start === 0 ? text : text.slice(start);
      this.partialLength += rest.length;
      if (this.partialLength > MAX_SSE_LINE) {
        this.partial = [];
        this.partialLength = 0;
        throw new UpstreamProtocolError(`upstream sent an SSE line or event over ${MAX_SSE_LINE} characters`);
      }
      this.partial.push(rest);
    }
    return events;
  }

  /**
   * A piece as text. Provider streams are mostly ASCII (JSON escapes most of what is not): those
   * pieces skip the TextDecoder, which per stream and piece cost a stream's first byte more than
   * the copy (test/bench/README.md).
   */
  private decoded(chunk: Uint8Array): string {
    if (this.decoder === undefined) {
      if (isAscii(chunk)) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
      this.decoder = new TextDecoder('utf-8');
    }
    return this.decoder.decode(chunk, { stream: true });
  }

  /** Flushes at end of stream. A trailing event without its blank line is dropped, as the spec says. */
  end(): SseEvent[] {
    this.decoder?.decode();
    this.partial = [];
    this.partialLength = 0;
    this.data = [];
    this.dataLength = 0;
    return [];
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      // Per spec an event whose data is the empty string is not dispatched.
      if (this.data.length > 1 || (this.data.length === 1 && this.data[0] !== '')) {
        const ev: SseEvent = { data: this.data.join('\n') };
        if (this.event !== undefined) ev.event = this.event;
        if (this.id !== undefined) ev.id = this.id;
        events.push(ev);
      }
      this.data = [];
      this.dataLength = 0;
      this.event = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      this.dataLength += value.length + 1;
      if (this.dataLength > MAX_SSE_LINE) {
        this.data = [];
        this.dataLength = 0;
        throw new UpstreamProtocolError(`upstream sent an SSE line or event over ${MAX_SSE_LINE} characters`);
      }
      this.data.push(value);
    }
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

/** Encodes one SSE data frame. */
export function sseData(data: string): string {
  return `data: ${data}\n\n`;
}

/** An event as SSE text again (data lines split where the parser joined them). */
export function sseEvent(ev: SseEvent): string {
  const data = ev.data.includes('\n') ? ev.data.split('\n').join('\ndata: ') : ev.data;
  return ev.event === undefined ? `data: ${data}\n\n` : `event: ${ev.event}\ndata: ${data}\n\n`;
}
