// The contrast of the text a page shows, measured in the browser as a reader's eyes get it: the
// computed colour of each text against the background it is drawn on. Shared by the browser tests
// (newcomer-browser.test.ts, dashboard-journey.test.ts) so that they measure the same way.
import type { Page } from 'playwright-core';

/** WCAG 2.2 SC 1.4.3 Contrast (Minimum), level AA: for text under 18pt (14pt bold). */
export const AA_TEXT = 4.5;

/** One text as measured: what it says, where, in which colours, and their ratio. */
export interface Contrast {
  /** Its first 50 characters, spaces collapsed (a filled field: its value). */
  readonly text: string;
  /** Its tag, with its id or else its classes: `p.hint`, `td`, `a#skip`. */
  readonly tag: string;
  /** Its computed `color`, as the browser reports it (`rgb(…)`, `rgba(…)` or `color(srgb …)`). */
  readonly color: string;
  /** The opaque background it is drawn on, every translucent layer composited: `rgb(r, g, b)`. */
  readonly background: string;
  /** The contrast ratio, 1 to 21, to two decimals (WCAG 2.2 relative luminance). */
  readonly ratio: number;
}

/**
 * Runs in the page (`page.evaluate(CONTRASTS)` answers `Contrast[]`): for every visible element
 * with text of its own (and every filled field), the contrast ratio (WCAG 2.2, relative
 * luminance) between its computed colour and the background it is drawn on, found by walking up
 * the ancestors and compositing their background colours until one is opaque (the canvas, white,
 * underneath all). Background images are not looked at: the pages use none under text. Only the
 * top document is measured, not a frame's (an email's html part is its author's).
 */
export const CONTRASTS = `(() => {
  const parse = (c) => {
    let m = /^rgba?\\(([^)]+)\\)$/.exec(c);
    if (m) {
      const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p[3] === undefined ? 1 : p[3]];
    }
    m = /^color\\(srgb ([^)]+)\\)$/.exec(c);
    if (m) {
      const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number);
      return [p[0] * 255, p[1] * 255, p[2] * 255, p[3] === undefined ? 1 : p[3]];
    }
    throw new Error('unknown colour ' + c);
  };
  const over = (top, below) => [0, 1, 2].map((i) => top[i] * top[3] + below[i] * (1 - top[3])).concat(1);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const luminance = (rgb) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(rgb[0]) + 0.7152 * f(rgb[1]) + 0.0722 * f(rgb[2]);
  };
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const visible = (el) => {
    const s = getComputedStyle(el);
    if (s.visibility !== 'visible' || Number(s.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1 && r.bottom + scrollY > 0 && r.right + scrollX > 0;
  };
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
    const field = el.matches('input:not([type=hidden]), textarea') && el.value.trim() !== '';
    if (!(own || field) || !visible(el)) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    found.push({
      text: (field ? el.value : el.textContent).trim().replace(/\\s+/g, ' ').slice(0, 50),
      tag: el.tagName.toLowerCase() + (el.id ? '#' + el.id : el.className ? '.' + el.className : ''),
      color: style.color,
      background: 'rgb(' + bg.slice(0, 3).map(Math.round).join(', ') + ')',
      ratio: Math.round(ratio(fg, bg) * 100) / 100,
    });
  }
  return found;
})()`;

/**
 * Runs in the page (`page.evaluate(RATIO_OF(a, b))` answers a number): the contrast ratio of two
 * CSS colours as the page resolves them, such as a focus ring's against the page behind it
 * (WCAG 2.2 SC 1.4.11 Non-text Contrast asks 3:1).
 */
export const RATIO_OF = (a: string, b: string): string => `(() => {
  const probe = (c) => { const d = document.createElement('div'); d.style.color = c; document.body.append(d);
    const v = getComputedStyle(d).color; d.remove(); return v.match(/[\\d.]+/g).slice(0, 3).map(Number)
      .map((x) => (/^color/.test(v) ? x * 255 : x)); };
  const lum = (rgb) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(rgb[0]) + 0.7152 * f(rgb[1]) + 0.0722 * f(rgb[2]); };
  const [x, y] = [lum(probe(${JSON.stringify(a)})), lum(probe(${JSON.stringify(b)}))].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
})()`;

/** Every visible text of the page as it is now (see `CONTRASTS`), in document order. */
export const textContrasts = async (page: Page): Promise<Contrast[]> =>
  (await page.evaluate(CONTRASTS)) as Contrast[];
