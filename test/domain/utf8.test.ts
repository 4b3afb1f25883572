import { expect } from 'chai';
import fc from 'fast-check';
import { codePointCount, utf8Length } from '../../src/domain/utf8.js';

const encoded = (s: string): number => new TextEncoder().encode(s).length;

describe('utf8Length', () => {
  it('counts what TextEncoder writes: ASCII, 2, 3 and 4 octets, and lone surrogates as U+FFFD', () => {
    for (const s of [
      '',
      'a',
      'é',
      '€',
      '😀',
      'a😀é€',
      '\ud800',
      'x\udc00y',
      '\ud83d\ud83d\ude00',
    ]) {
      expect(utf8Length(s), JSON.stringify(s)).to.equal(encoded(s));
    }
  });

  it('agrees with TextEncoder on any string, broken UTF-16 included (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        // Any UTF-16 code unit, so surrogates come alone as often as in pairs.
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)) }),
        (a, b) => {
          expect(utf8Length(a + b)).to.equal(encoded(a + b));
          expect(utf8Length(b + a)).to.equal(encoded(b + a));
        },
      ),
    );
  });
});

describe('codePointCount', () => {
  it('counts as [...s].length does, on any string, broken UTF-16 included (property)', () => {
    for (const s of ['', 'a', '😀', 'a😀é', '\ud800', 'x\udc00y', '\ud83d\ud83d\ude00']) {
      expect(codePointCount(s), JSON.stringify(s)).to.equal([...s].length);
    }
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)) }),
        (a, b) => {
          expect(codePointCount(a + b)).to.equal([...(a + b)].length);
          expect(codePointCount(b + a)).to.equal([...(b + a)].length);
        },
      ),
    );
  });
});
