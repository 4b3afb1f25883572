import { expect } from 'chai';
import { textAlternative } from '../../../src/adapters/mime/text-alternative.js';

const octets = (s: string | undefined): number => Buffer.byteLength(s ?? '', 'utf8');

describe('the text alternative of an html-only email', () => {
  it('keeps the text the sender gave', () => {
    expect(textAlternative({ text: 'Mine', html: '<p>Theirs</p>' })).to.equal('Mine');
  });

  it('makes text of ordinary html, links kept', () => {
    const text = textAlternative({
      html: '<p>Hello <a href="https://example.org/x">there</a></p>',
    });
    expect(text).to.contain('Hello').and.contain('https://example.org/x');
  });

  it('still makes text of html nested 3000 deep (html-to-text recurses and would overflow)', () => {
    const html = `${'<div>'.repeat(3000)}deep${'</div>'.repeat(3000)}`;
    expect(textAlternative({ html })).to.equal('deep');
    const list = `${'<ol><li>'.repeat(20_000)}item`;
    expect(textAlternative({ html: list })).to.contain('item');
  });

  it('is never larger than the html, which is what the size check counts (an <hr> bomb)', () => {
    const html = '<hr>'.repeat(124_000);
    const text = textAlternative({ html });
    expect(octets(text)).to.be.at.most(octets(html));
    const paragraphs = '<p>a</p>'.repeat(1000);
    expect(octets(textAlternative({ html: paragraphs }))).to.be.at.most(octets(paragraphs));
  });

  it('keeps the words of stripped html apart, and entities as characters', () => {
    const html = `${'<div>'.repeat(3000)}<p>Fish &amp; chips</p><p>Tea &lt;hot&gt;</p>${'</div>'.repeat(3000)}`;
    expect(textAlternative({ html })).to.equal('Fish & chips\n\nTea <hot>');
  });
});
