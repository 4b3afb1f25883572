import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import type { Running } from './dev.js';

export async function startServer(_config: Config, _log: Logger): Promise<Running> {
  throw new Error('email server is not wired yet');
}
