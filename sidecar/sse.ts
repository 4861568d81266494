/**
 * Incremental Server-Sent Events parser (WHATWG HTML "event stream" rules): accepts bytes in
 * arbitrary pieces, handles \n, \r\n and \r line endings, multi-line data, comments and a
 * UTF-8 character split across pieces.
 */
export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private data: string[] = [];
  private event: string | undefined;
  private id: string | undefined;
  private sawCR = false;

  /** Feeds bytes; returns the events completed by them. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.sawCR && text.startsWith('\n')) text = text.slice(1); // \r\n split across chunks
    this.sawCR = text.endsWith('\r');
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i), events);
      if (c === 13 && this.buffer.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Flushes at end of stream. A trailing event without its blank line is dropped, as the spec says. */
  end(): SseEvent[] {
    const tail = this.decoder.decode();
    if (tail) this.buffer += tail;
    this.buffer = '';
    this.data = [];
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
      this.event = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

/** Encodes one SSE data frame. */
export function sseData(data: string): string {
  return `data: ${data}\n\n`;
}
