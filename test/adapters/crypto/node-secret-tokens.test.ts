import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { NodeSecretTokens } from '../../../src/adapters/crypto/node-secret-tokens.js';

describe('NodeSecretTokens', () => {
  const tokens = new NodeSecretTokens();

  it('makes random tokens of `bytes` bytes in base64url without padding', () => {
    for (const bytes of [1, 2, 3, 16, 24, 32, 33]) {
      const token = tokens.random(bytes);
      expect(token).to.match(/^[A-Za-z0-9_-]+$/);
      expect(token).to.have.length(Math.ceil((bytes * 4) / 3));
      expect(Buffer.from(token, 'base64url')).to.have.length(bytes);
    }
  });

  it('never makes the same token twice (1000 tokens of 32 bytes)', () => {
    const made = new Set(Array.from({ length: 1000 }, () => tokens.random(32)));
    expect(made.size).to.equal(1000);
  });

  it('refuses a number of bytes that is not a whole number ≥ 1: a bug in the caller', () => {
    for (const bytes of [0, -1, 1.5, Number.NaN]) {
      expect(() => tokens.random(bytes), String(bytes)).to.throw(/whole number of bytes/);
    }
  });

  it('digests with SHA-256 as lowercase hex (the FIPS 180-2 test vectors)', () => {
    expect(tokens.digest('abc')).to.equal(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(tokens.digest('')).to.equal(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(tokens.digest('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).to.equal(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('digests the UTF-8 bytes of the text', () => {
    // "é" (U+00E9) is C3 A9 in UTF-8 and E9 in Latin-1.
    const of = (bytes: number[]) => createHash('sha256').update(Buffer.from(bytes)).digest('hex');
    expect(tokens.digest('é')).to.equal(of([0xc3, 0xa9]));
    expect(tokens.digest('é')).not.to.equal(of([0xe9]));
  });

  it('tells equal strings from different ones, of one length or of two', () => {
    const token = tokens.random(32);
    expect(tokens.same(token, `${token}`)).to.equal(true);
    expect(tokens.same('', '')).to.equal(true);
    expect(tokens.same('pässwörd', 'pässwörd')).to.equal(true);
    const flipped = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    expect(tokens.same(token, flipped)).to.equal(false);
    expect(tokens.same(`x${token.slice(1)}`, `y${token.slice(1)}`)).to.equal(false);
    expect(tokens.same(token, token.slice(0, -1))).to.equal(false);
    expect(tokens.same(token.slice(0, -1), token)).to.equal(false);
    expect(tokens.same('', token)).to.equal(false);
    // Same number of characters, not of bytes: "é" is two bytes.
    expect(tokens.same('é', 'e')).to.equal(false);
  });
});
