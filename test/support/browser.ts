// Debian's chromium under playwright-core, as every browser test drives it.
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

/** Fails rather than skips: a missing browser must be visible in CI (apt-get install chromium). */
export async function launchChromium(): Promise<Browser> {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is needed for the browser tests`).to.equal(true);
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}

/**
 * The page's console errors and uncaught exceptions, collected as they happen. Every 4xx page
 * (and an absent favicon) is a console error too, "Failed to load resource": those are expected.
 */
export function collectProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(m.text());
    }
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}

/** What the tests read of an axe result (`@axe-core/playwright`'s `analyze()`). */
interface AxeViolation {
  readonly id: string;
  readonly help: string;
  readonly impact?: string | null;
  readonly nodes: readonly { readonly target: readonly unknown[] }[];
}

/**
 * The serious and critical violations of an axe scan, one line each (rule, help, where), for an
 * assertion that lists them all when it fails: minor and moderate ones are not the bar.
 */
export const seriousViolations = (violations: readonly AxeViolation[]): string[] =>
  violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
