import { expect } from 'chai';
import {
  Argon2PasswordHasher,
  OWASP_ARGON2ID,
} from '../../../src/adapters/crypto/argon2-password-hasher.js';

/** `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`, salt and hash in unpadded base64. */
const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$/;

describe('Argon2PasswordHasher', function () {
  this.timeout(20_000);
  const hasher = new Argon2PasswordHasher();

  it('hashes to an argon2id PHC string with the OWASP parameters (19 MiB, t=2, p=1)', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    const parts = PHC.exec(hash);
    expect(parts, hash).not.to.equal(null);
    expect(parts!.slice(1, 4).map(Number)).to.deep.equal([19_456, 2, 1]);
    expect(OWASP_ARGON2ID).to.deep.equal({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  });

  it('verifies the password it hashed, and no other', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    expect(await hasher.verify(hash, 'correct horse battery staple')).to.equal(true);
    for (const wrong of ['Correct horse battery staple', 'correct horse battery staple ', '']) {
      expect(await hasher.verify(hash, wrong), JSON.stringify(wrong)).to.equal(false);
    }
  });

  it('salts every hash: one password hashed twice gives two hashes, both valid', async () => {
    const [a, b] = await Promise.all([hasher.hash('pässwörd ✓'), hasher.hash('pässwörd ✓')]);
    expect(a).not.to.equal(b);
    expect(PHC.exec(a)![4]).not.to.equal(PHC.exec(b)![4]);
    expect(await hasher.verify(a, 'pässwörd ✓')).to.equal(true);
    expect(await hasher.verify(b, 'pässwörd ✓')).to.equal(true);
  });

  it('answers false, without throwing, for a hash it cannot read', async () => {
    const good = await hasher.hash('secret');
    const unreadable = [
      '',
      'secret',
      '$argon2id$v=19$m=19456,t=2,p=1$$',
      good.slice(0, -10),
      good.replace('$argon2id$', '$argon2xx$'),
      '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW', // bcrypt
    ];
    for (const hash of unreadable) {
      expect(await hasher.verify(hash, 'secret'), JSON.stringify(hash)).to.equal(false);
    }
  });

  it('verifies a hash made with other parameters by the parameters it carries', async () => {
    const cheaper = new Argon2PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1 });
    const old = await cheaper.hash('secret');
    expect(PHC.exec(old)!.slice(1, 4).map(Number)).to.deep.equal([8192, 1, 1]);
    expect(await hasher.verify(old, 'secret')).to.equal(true);
    expect(await hasher.verify(old, 'Secret')).to.equal(false);
  });
});
