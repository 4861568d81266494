/**
 * Prices one request in integer nano-USD (see money.ts for the representation and THE rounding
 * rule: Σ tokens × nano-USD-per-million, exact, then ÷ 1e6 once, half up).
 *
 * Where prices come from, in order:
 *  1. The target's `pricing` override from the ModelRoute (decimal strings, parsed exactly).
 *     Long-context tiers: the highest tier whose `aboveInputTokens` is below the prompt's
 *     inputTokens replaces the prices it names; cachedInput and cacheWrite default to the
 *     (tier-resolved) input price.
 *  2. The bundled catalog of `@pydantic/genai-prices` (never updated at runtime: `updatePrices`
 *     is not called, the machine may be offline): the model's catalog prices as the snapshot
 *     carries them (`usePushedPrices`; resolved by the operator, or in file mode by a child
 *     process), else looked up in the catalog when it is loaded (time-dependent prices; mapping
 *     in crds/src/catalog.ts). The catalog is used only to MATCH the model and
 *     to pick its price set for the request time (`calcPrice` resolves start-date and
 *     time-of-day prices, e.g. DeepSeek's off-peak discount); the float dollars it computes are
 *     ignored. Its per-million prices are read as decimals (`usdNumberToNano`) and the cost is
 *     computed here with integers, mirroring the catalog's semantics:
 *       - input_tokens is the whole prompt; cache_read / cache_write tokens are parts of it,
 *         priced at cache_read_mtok / cache_write_mtok when the model has those prices and
 *         otherwise left in the input part (priced as input);
 *       - a tiered price uses the last tier whose `start` is below the whole prompt
 *         (input_tokens, cache included) for ALL tokens of that kind (not marginal);
 *       - output_reasoning_mtok (rare) prices the reasoning part of the output; requests_kcount
 *         adds a per-request fee.
 *  3. Otherwise the cost is unknown: `{ known: false, costNano: 0n, source: 'unknown' }`;
 *     callers report it as unknown, never as $0.
 *
 * Provider mapping (paygo → catalog provider id):
 *   openai → openai, anthropic → anthropic, gemini → google, deepseek → deepseek,
 *   mistral → mistral, openrouter → openrouter;
 *   qwen → the catalog (v0.1.8) has no Alibaba/DashScope provider; Qwen's own models are looked
 *     up in OpenRouter's table as "qwen/<model>" (OpenRouter lists Alibaba-served Qwen models at
 *     the DashScope international list price, e.g. qwen/qwen-plus $0.40/$1.20);
 *   openai-compatible → no provider id: the catalog matches the model name against every
 *     provider's model pattern (gpt-* → openai, claude* → anthropic, deepseek* → deepseek, ...);
 *     self-hosted models should carry a pricing override (e.g. "0") to avoid list prices;
 *   simulate → unknown unless overridden.
 *
 * Limits: paygo's Usage does not split cache writes by TTL, so Anthropic 1-hour cache writes
 * are priced at the 5-minute cache_write_mtok rate; audio/image/web-search units are not metered.
 * Inconsistent usage (cache parts larger than inputTokens) charges the parts as reported and the
 * uncached remainder as 0.
 */
import type { ModelInfo, ModelPrice } from '@pydantic/genai-prices';
import { awaitsCatalogPrice, catalogued, matchCatalog, type CatalogMatch, type CatalogPrice } from '../../crds/src/catalog.js';
import { targetName, type Pricing, type ProviderName } from '../../crds/src/modelroute.js';

import type { Usage } from '../usage.js';
import { costFromPerMillion, parsePerMillionUsd, tokenCount, usdNumberToNano, type PricedQuantity } from '../../crds/src/money.js';

/** What pricing needs of a snapshot route: its targets and the catalog prices pushed for them. */
export interface PricedRoute {
  spec: { targets: ReadonlyArray<{ name?: string | undefined; provider: ProviderName; model: string; pricing?: Pricing | undefined }> };
  catalogPrices?: Record<string, CatalogPrice | null> | undefined;
}

/**
 * The catalog module, loaded on first need: its bundled data costs ≈ 3 MB of heap and ≈ 10 MB
 * of RSS in every pod, and a config whose targets all carry a `pricing` override (or are
 * `simulate`) never needs it. Callers load it before applying a config that does
 * (`Pricer.needsCatalog`, `loadCatalog`); until then catalog prices are unknown.
 */
type Catalog = typeof import('@pydantic/genai-prices');
let catalog: Catalog | undefined;
let catalogLoading: Promise<Catalog> | undefined;

export function loadCatalog(): Promise<Catalog> {
  catalogLoading ??= import('@pydantic/genai-prices').then((m) => (catalog = m));
  return catalogLoading;
}

export function catalogLoaded(): boolean {
  return catalog !== undefined;
}

export type PriceSource = 'override' | 'catalog' | 'unknown';

/** What one line of the bill is for. `request` is a per-request fee (quantity 1). */
export type PriceLineKind = 'input' | 'cacheRead' | 'cacheWrite' | 'output' | 'reasoning' | 'request';

export interface PriceLine {
  kind: PriceLineKind;
  /** Tokens (requests for `request`) billed on this line. */
  quantity: number;
  /** Applied price in nano-USD per million tokens (per million requests for `request`). */
  nanoPerMillion: bigint;
}

export interface PriceBreakdown {
  /** Catalog provider id and model id that matched (catalog source only). */
  catalogProvider?: string;
  catalogModel?: string;
  /** The long-context threshold that applied (prompt above this many tokens); absent at base prices. */
  tierAboveInputTokens?: number;
  /** The lines whose exact sum, ÷ 1e6 and rounded half up, is costNano. */
  lines: PriceLine[];
}

export interface PriceQuote {
  /** Whole nano-USD; 0n when !known (which means unknown, not free). */
  costNano: bigint;
  known: boolean;
  source: PriceSource;
  breakdown?: PriceBreakdown;
}

/** Base (shortest-prompt) unit prices in nano-USD per million tokens. */
export interface UnitPrices {
  input: bigint;
  output: bigint;
  cachedInput: bigint;
  cacheWrite: bigint;
  source: Exclude<PriceSource, 'unknown'>;
}

export interface PricerOptions {
  /** Time used when `at` is not given (start-date and time-of-day prices). */
  clock?: () => Date;
  /** Bound on cached catalog look-ups (model names come from configuration). Default 2048. */
  maxCacheEntries?: number;
}

/** Flat per-million rates for one request after tier and time resolution. */
interface Rates {
  input: bigint;
  output: bigint;
  /** undefined: cache reads are not priced separately (they stay in the input part). */
  cacheRead?: bigint;
  cacheWrite?: bigint;
  reasoning?: bigint;
  /** Per-request fee, nano-USD per million requests. */
  request?: bigint;
  tierAbove?: number;
}

interface Tiered {
  base: bigint;
  /** ascending by start */
  tiers: Array<{ start: number; price: bigint }>;
}

/** Catalog price keys paygo can meter, with the factor to nano-USD per million units. */
const CATALOG_KEYS: Record<string, { kind: PriceLineKind; toPerMillion: bigint }> = {
  input_mtok: { kind: 'input', toPerMillion: 1n },
  cache_read_mtok: { kind: 'cacheRead', toPerMillion: 1n },
  cache_write_mtok: { kind: 'cacheWrite', toPerMillion: 1n },
  output_mtok: { kind: 'output', toPerMillion: 1n },
  output_reasoning_mtok: { kind: 'reasoning', toPerMillion: 1n },
  requests_kcount: { kind: 'request', toPerMillion: 1000n },
};

type RateCard = Partial<Record<PriceLineKind, Tiered>> & { meterable: boolean };

/** A catalog model's prices: pushed by the operator, or matched in the loaded catalog. */
interface CatalogEntry {
  providerId: string;
  modelId: string;
  prices: ModelInfo['prices'];
  /** Catalog matches only: what time-dependent prices are resolved with. */
  match?: CatalogMatch;
}

const UNKNOWN: PriceQuote = Object.freeze({ costNano: 0n, known: false, source: 'unknown' as const });

export class Pricer {
  private readonly clock: () => Date;
  private readonly maxCacheEntries: number;
  private readonly catalogCache = new Map<string, CatalogEntry | null>();
  /** Catalog prices the snapshot carries, by paygo provider and model (null: none); replaced per snapshot. */
  private pushed = new Map<string, CatalogEntry | null>();
  private readonly rateCards = new WeakMap<ModelPrice, RateCard>();
  private readonly overrides = new WeakMap<Pricing, ParsedOverride>();

  constructor(opts: PricerOptions = {}) {
    this.clock = opts.clock ?? (() => new Date());
    this.maxCacheEntries = opts.maxCacheEntries ?? 2048;
  }

  /** Cost of one finished request. */
  price(provider: ProviderName, model: string, usage: Usage, override?: Pricing, at?: Date): PriceQuote {
    const input = tokenCount(usage.inputTokens);
    const cacheRead = tokenCount(usage.cacheReadTokens);
    const cacheWrite = tokenCount(usage.cacheWriteTokens);
    const output = tokenCount(usage.outputTokens);
    const reasoning = minBig(tokenCount(usage.reasoningTokens), output);
    // The tier is chosen by the whole prompt; never smaller than its reported parts.
    const prompt = maxBig(input, cacheRead + cacheWrite);

    let rates: Rates | undefined;
    let source: PriceSource;
    let breakdown: PriceBreakdown;
    if (override) {
      rates = this.parsedOverride(override).resolve(prompt);
      source = 'override';
      breakdown = { lines: [] };
    } else {
      const entry = this.lookup(provider, model);
      const card = entry && this.cardAt(entry, this.time(at));
      if (!entry || !card?.meterable) return UNKNOWN;
      rates = resolveCard(card, prompt);
      source = 'catalog';
      breakdown = { catalogProvider: entry.providerId, catalogModel: entry.modelId, lines: [] };
    }

    const lines: Array<PricedQuantity & { kind: PriceLineKind }> = [];
    let uncached = input;
    if (rates.cacheRead !== undefined) {
      lines.push({ kind: 'cacheRead', quantity: cacheRead, nanoPerMillion: rates.cacheRead });
      uncached -= cacheRead;
    }
    if (rates.cacheWrite !== undefined) {
      lines.push({ kind: 'cacheWrite', quantity: cacheWrite, nanoPerMillion: rates.cacheWrite });
      uncached -= cacheWrite;
    }
    lines.unshift({ kind: 'input', quantity: maxBig(uncached, 0n), nanoPerMillion: rates.input });
    if (rates.reasoning !== undefined) {
      lines.push({ kind: 'output', quantity: output - reasoning, nanoPerMillion: rates.output });
      lines.push({ kind: 'reasoning', quantity: reasoning, nanoPerMillion: rates.reasoning });
    } else {
      lines.push({ kind: 'output', quantity: output, nanoPerMillion: rates.output });
    }
    if (rates.request !== undefined) lines.push({ kind: 'request', quantity: 1n, nanoPerMillion: rates.request });

    breakdown.lines = lines.map((l) => ({ kind: l.kind, quantity: Number(l.quantity), nanoPerMillion: l.nanoPerMillion }));
    if (rates.tierAbove !== undefined) breakdown.tierAboveInputTokens = rates.tierAbove;
    return { costNano: costFromPerMillion(lines), known: true, source, breakdown };
  }

  /**
   * Upper bound of a request's cost, for budget reservations: every input token at the highest
   * input-side price applicable to a prompt of `inputTokens` (uncached input, cache write and
   * cache read prices of every tier up to that size), `maxOutputTokens` at the highest output
   * price, plus any per-request fee. For catalog models with time-of-day prices, every
   * time-of-day price is a candidate too (a request may finish in another window).
   */
  worstCaseCost(provider: ProviderName, model: string, inputTokens: number, maxOutputTokens: number, override?: Pricing, at?: Date): PriceQuote {
    const input = tokenCount(inputTokens);
    const output = tokenCount(maxOutputTokens);
    let candidates: Rates[];
    let source: PriceSource;
    let breakdown: PriceBreakdown;
    if (override) {
      candidates = this.parsedOverride(override).candidates(input);
      source = 'override';
      breakdown = { lines: [] };
    } else {
      const entry = this.lookup(provider, model);
      if (!entry) return UNKNOWN;
      const cards = this.worstCaseCards(entry, this.time(at));
      if (cards.length === 0) return UNKNOWN;
      candidates = cards.flatMap((c) => cardCandidates(c, input));
      source = 'catalog';
      breakdown = { catalogProvider: entry.providerId, catalogModel: entry.modelId, lines: [] };
    }
    let inRate = 0n;
    let outRate = 0n;
    let request: bigint | undefined;
    for (const r of candidates) {
      inRate = maxBig(inRate, r.input, r.cacheRead ?? 0n, r.cacheWrite ?? 0n);
      outRate = maxBig(outRate, r.output, r.reasoning ?? 0n);
      if (r.request !== undefined) request = maxBig(request ?? 0n, r.request);
    }
    const lines: Array<PricedQuantity & { kind: PriceLineKind }> = [
      { kind: 'input', quantity: input, nanoPerMillion: inRate },
      { kind: 'output', quantity: output, nanoPerMillion: outRate },
    ];
    if (request !== undefined) lines.push({ kind: 'request', quantity: 1n, nanoPerMillion: request });
    breakdown.lines = lines.map((l) => ({ kind: l.kind, quantity: Number(l.quantity), nanoPerMillion: l.nanoPerMillion }));
    return { costNano: costFromPerMillion(lines), known: true, source, breakdown };
  }

  /** Base-tier unit prices at `at` (for the "cheapest" strategy); undefined when unknown. */
  unitPrices(provider: ProviderName, model: string, override?: Pricing, at?: Date): UnitPrices | undefined {
    let r: Rates;
    let source: UnitPrices['source'];
    if (override) {
      r = this.parsedOverride(override).resolve(0n);
      source = 'override';
    } else {
      const entry = this.lookup(provider, model);
      const card = entry && this.cardAt(entry, this.time(at));
      if (!card?.meterable) return undefined;
      r = resolveCard(card, 0n);
      source = 'catalog';
    }
    return { input: r.input, output: r.output, cachedInput: r.cacheRead ?? r.input, cacheWrite: r.cacheWrite ?? r.input, source };
  }

  /**
   * One comparable number for the "cheapest" strategy: base input + output price, nano-USD per
   * million tokens (i.e. per million input plus million output tokens); undefined when unknown.
   */
  unitPrice(provider: ProviderName, model: string, override?: Pricing, at?: Date): bigint | undefined {
    const u = this.unitPrices(provider, model, override, at);
    return u && u.input + u.output;
  }

  private time(at: Date | undefined): Date {
    return at && !Number.isNaN(at.getTime()) ? at : this.clock();
  }

  private parsedOverride(p: Pricing): ParsedOverride {
    let parsed = this.overrides.get(p);
    if (!parsed) {
      parsed = new ParsedOverride(p);
      this.overrides.set(p, parsed);
    }
    return parsed;
  }

  /**
   * Whether pricing these routes may need the catalog: a target without `pricing` on a
   * catalogued provider for which the snapshot carries no catalog price (nor says there is none).
   */
  static needsCatalog(routes: Iterable<PricedRoute>): boolean {
    for (const r of routes) {
      for (const [i, t] of r.spec.targets.entries()) if (awaitsCatalogPrice(t, targetName(t, i), r.catalogPrices)) return true;
    }
    return false;
  }

  /** Takes the catalog prices a snapshot carries (the operator's), replacing the previous ones. */
  usePushedPrices(routes: Iterable<PricedRoute>): void {
    const pushed = new Map<string, CatalogEntry | null>();
    for (const r of routes) {
      for (const [i, t] of r.spec.targets.entries()) {
        const p = r.catalogPrices?.[targetName(t, i)];
        if (p === undefined || t.pricing) continue;
        pushed.set(`${t.provider}\u0000${t.model}`, p && { providerId: p.provider, modelId: p.model, prices: p.prices as ModelPrice });
      }
    }
    this.pushed = pushed;
  }

  /** The catalog prices of a paygo provider and model: pushed, or matched in the catalog (cached, misses too). */
  private lookup(provider: ProviderName, model: string): CatalogEntry | undefined {
    const key = `${provider}\u0000${model}`;
    const pushed = this.pushed.get(key);
    if (pushed !== undefined) return pushed ?? undefined;
    if (!catalog || !catalogued(provider)) return undefined;
    const cached = this.catalogCache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const match = matchCatalog(catalog.calcPrice, provider, model);
    const entry: CatalogEntry | null = match ? { providerId: match.providerId, modelId: match.model.id, prices: match.model.prices, match } : null;
    if (this.catalogCache.size >= this.maxCacheEntries) this.catalogCache.clear();
    this.catalogCache.set(key, entry);
    return entry ?? undefined;
  }

  /** The model's price set in force at `at`, as integer rates. */
  private cardAt(entry: CatalogEntry, at: Date): RateCard | undefined {
    const prices = entry.prices;
    if (!Array.isArray(prices)) return this.card(prices);
    if (!catalog || !entry.match) return undefined;
    const { calcPrice } = catalog;
    try {
      // Let the catalog apply its own start-date / time-of-day rules.
      const r = calcPrice({}, entry.match.lookupModel, { provider: entry.match.single, timestamp: at });
      return r ? this.card(r.model_price) : undefined;
    } catch {
      return undefined;
    }
  }

  private worstCaseCards(entry: CatalogEntry, at: Date): RateCard[] {
    const out: RateCard[] = [];
    const now = this.cardAt(entry, at);
    if (now?.meterable) out.push(now);
    const prices = entry.prices;
    if (Array.isArray(prices)) {
      for (const cp of prices) {
        if (cp.constraint && 'start_time' in cp.constraint) {
          const c = this.card(cp.prices);
          if (c.meterable) out.push(c);
        }
      }
    }
    return out;
  }

  private card(mp: ModelPrice): RateCard {
    let card = this.rateCards.get(mp);
    if (!card) {
      card = buildCard(mp);
      this.rateCards.set(mp, card);
    }
    return card;
  }
}

export function createPricer(opts: PricerOptions = {}): Pricer {
  return new Pricer(opts);
}

function buildCard(mp: ModelPrice): RateCard {
  const card: RateCard = { meterable: false };
  const present = Object.entries(mp).filter(([, v]) => v !== undefined);
  for (const [key, value] of present) {
    const spec = CATALOG_KEYS[key];
    if (!spec || value === undefined) continue;
    if (typeof value === 'number') {
      card[spec.kind] = { base: usdNumberToNano(value) * spec.toPerMillion, tiers: [] };
    } else {
      card[spec.kind] = {
        base: usdNumberToNano(value.base) * spec.toPerMillion,
        tiers: [...value.tiers].sort((a, b) => a.start - b.start).map((t) => ({ start: t.start, price: usdNumberToNano(t.price) * spec.toPerMillion })),
      };
    }
  }
  // Token-priced, or explicitly free (an empty price set, e.g. OpenRouter ":free" models).
  // A model priced only in units paygo does not meter (audio hours, ...) stays unknown.
  card.meterable = card.input !== undefined || card.output !== undefined || present.length === 0;
  return card;
}

/** Catalog semantics: the last tier whose start is below the whole prompt, for all tokens of that kind. */
function tierPrice(t: Tiered, prompt: bigint): { price: bigint; start?: number } {
  let price = t.base;
  let start: number | undefined;
  for (const tier of t.tiers) {
    if (prompt > BigInt(tier.start)) {
      price = tier.price;
      start = tier.start;
    }
  }
  return start === undefined ? { price } : { price, start };
}

function resolveCard(card: RateCard, prompt: bigint): Rates {
  let tierAbove: number | undefined;
  const get = (t: Tiered | undefined): bigint | undefined => {
    if (!t) return undefined;
    const r = tierPrice(t, prompt);
    if (r.start !== undefined) tierAbove = Math.max(tierAbove ?? 0, r.start);
    return r.price;
  };
  const rates: Rates = { input: get(card.input) ?? 0n, output: get(card.output) ?? 0n };
  const cacheRead = get(card.cacheRead);
  const cacheWrite = get(card.cacheWrite);
  const reasoning = get(card.reasoning);
  const request = get(card.request);
  if (cacheRead !== undefined) rates.cacheRead = cacheRead;
  if (cacheWrite !== undefined) rates.cacheWrite = cacheWrite;
  if (reasoning !== undefined) rates.reasoning = reasoning;
  if (request !== undefined) rates.request = request;
  if (tierAbove !== undefined) rates.tierAbove = tierAbove;
  return rates;
}

/** Every rate set a prompt of up to `prompt` tokens can be billed at: base and each tier below it. */
function cardCandidates(card: RateCard, prompt: bigint): Rates[] {
  const starts = new Set<number>();
  for (const t of Object.values(card)) {
    if (typeof t === 'object') for (const tier of t.tiers) if (prompt > BigInt(tier.start)) starts.add(tier.start);
  }
  return [resolveCard(card, 0n), ...[...starts].map((s) => resolveCard(card, BigInt(s) + 1n))];
}

interface OverrideRates {
  input?: bigint;
  output?: bigint;
  cachedInput?: bigint;
  cacheWrite?: bigint;
}

/** A ModelRoute pricing override, parsed once to integers. */
class ParsedOverride {
  private readonly base: Required<Pick<OverrideRates, 'input' | 'output'>> & OverrideRates;
  /** ascending by threshold */
  private readonly tiers: Array<OverrideRates & { above: number }>;

  constructor(p: Pricing) {
    this.base = {
      input: parsePerMillionUsd(p.input),
      output: parsePerMillionUsd(p.output),
      ...optionalRates(p),
    };
    this.tiers = (p.tiers ?? [])
      .map((t) => ({ above: t.aboveInputTokens, ...optionalRates(t) }))
      .sort((a, b) => a.above - b.above);
  }

  /** The highest tier whose threshold the prompt exceeds replaces the prices it names. */
  resolve(prompt: bigint): Rates {
    let tier: (OverrideRates & { above: number }) | undefined;
    for (const t of this.tiers) if (prompt > BigInt(t.above)) tier = t;
    return this.ratesFor(tier);
  }

  candidates(prompt: bigint): Rates[] {
    return [this.ratesFor(undefined), ...this.tiers.filter((t) => prompt > BigInt(t.above)).map((t) => this.ratesFor(t))];
  }

  private ratesFor(tier: (OverrideRates & { above: number }) | undefined): Rates {
    const input = tier?.input ?? this.base.input;
    const rates: Rates = {
      input,
      output: tier?.output ?? this.base.output,
      cacheRead: tier?.cachedInput ?? this.base.cachedInput ?? input,
      cacheWrite: tier?.cacheWrite ?? this.base.cacheWrite ?? input,
    };
    if (tier) rates.tierAbove = tier.above;
    return rates;
  }
}

function optionalRates(p: { input?: string | undefined; output?: string | undefined; cachedInput?: string | undefined; cacheWrite?: string | undefined }): OverrideRates {
  const r: OverrideRates = {};
  if (p.input !== undefined) r.input = parsePerMillionUsd(p.input);
  if (p.output !== undefined) r.output = parsePerMillionUsd(p.output);
  if (p.cachedInput !== undefined) r.cachedInput = parsePerMillionUsd(p.cachedInput);
  if (p.cacheWrite !== undefined) r.cacheWrite = parsePerMillionUsd(p.cacheWrite);
  return r;
}

function maxBig(first: bigint, ...rest: bigint[]): bigint {
  let m = first;
  for (const v of rest) if (v > m) m = v;
  return m;
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
