/** `npm run migrate`: applies pending migrations to DATABASE_URL. */
import { loadConfigOrExit, requireSetting } from '../config.js';
import { migrate } from './migrate.js';

const config = loadConfigOrExit();
const applied = await migrate(requireSetting(config, 'DATABASE_URL'));
process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'schema up to date\n');
