/** Explanations of a classifier's predictions (`"explain": true` on predict). */

export interface TokenAttribution {
  token: string;
  /** Character offsets (Unicode code points) in the text, `end` exclusive. */
  start: number;
  end: number;
  attribution: number;
}

export interface Explanation {
  method: "exact" | "integrated-gradients" | "occlusion";
  target: string;
  score: number;
  base: number;
  /** integrated-gradients: how far the attributions' sum is from `score - base`. */
  completeness_gap?: number;
  tokens: TokenAttribution[];
}

/** A run of the text: explained tokens carry a weight in [-1, 1] (their attribution over
 * the largest absolute one), the text between them none. */
export interface Segment {
  text: string;
  weight: number | null;
  attribution: number | null;
}

/** Cut `text` into runs for highlighting. Offsets count code points, as the server's do
 * (a JavaScript string indexes UTF-16 units, so the text is split into code points first);
 * overlapping or out-of-range tokens are skipped. */
export function highlightSegments(text: string, tokens: TokenAttribution[]): Segment[] {
  const chars = Array.from(text);
  const largest = Math.max(0, ...tokens.map((t) => Math.abs(t.attribution)));
  const out: Segment[] = [];
  let at = 0;
  for (const t of [...tokens].sort((a, b) => a.start - b.start)) {
    if (t.start < at || t.end > chars.length || t.end <= t.start) continue;
    if (t.start > at) out.push({ text: chars.slice(at, t.start).join(""), weight: null, attribution: null });
    out.push({
      text: chars.slice(t.start, t.end).join(""),
      weight: largest > 0 ? t.attribution / largest : 0,
      attribution: t.attribution,
    });
    at = t.end;
  }
  if (at < chars.length) out.push({ text: chars.slice(at).join(""), weight: null, attribution: null });
  return out;
}
