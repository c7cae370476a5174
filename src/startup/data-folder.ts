/**
 * `npm start`'s data folder: made if missing, checked writable, and claimed by one process at a
 * time through a pid file (two servers writing one SQLite file and one PostgreSQL cluster would
 * corrupt both). A pid file left by a process that is gone (killed, machine rebooted) is taken over.
 */
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { StartupError } from './failure.js';

const LOCK_FILE = 'npm-start.pid';

function whoami(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

function notWritable(dir: string, err: NodeJS.ErrnoException): StartupError {
  return new StartupError(
    `the data folder ${dir}`,
    `not writable by user ${whoami()} (${err.code ?? err.message})`,
    'give that user write access to it, or set CUSTODY_DATA_DIR to a folder it can write',
  );
}

/** Whether `pid` is a live process that could be an `npm start` (not a reused pid of something else). */
function aliveAsNode(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user, still a live claim.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return /node|tsx|custody/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    // No /proc (not Linux): trust the pid.
    return true;
  }
}

/**
 * Makes the folder, checks that this user can write it, and claims it for this process. Returns
 * the release, which removes the pid file if it is still ours.
 */
export function claimDataFolder(dir: string): () => void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw notWritable(dir, err as NodeJS.ErrnoException);
  }
  const file = join(dir, LOCK_FILE);
  const mine = String(process.pid);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw notWritable(dir, err as NodeJS.ErrnoException);
      let holder = NaN;
      try {
        holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
      } catch {
        // Removed meanwhile (the holder stopped): try again.
      }
      if (Number.isInteger(holder) && holder !== process.pid && aliveAsNode(holder)) {
        throw new StartupError(
          `the data folder ${dir}`,
          `already in use by another npm start (pid ${holder})`,
          'stop that one first (Ctrl-C), or set CUSTODY_DATA_DIR to another folder',
        );
      }
      if (attempt >= 3) throw notWritable(dir, err as NodeJS.ErrnoException);
      // Left by a process that is gone: take it over.
      rmSync(file, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${mine}\n`);
    } finally {
      closeSync(fd);
    }
    break;
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === mine) rmSync(file, { force: true });
    } catch {
      // Already gone.
    }
  };
}
