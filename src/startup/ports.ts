/**
 * Checks, before anything is started, that every port `npm start` is about to listen on is free,
 * so a port in use stops it with the port and the setting that moves it, and nothing to clean up.
 */
import { createServer } from 'node:net';
import { StartupError } from './failure.js';

export interface PlannedPort {
  port: number;
  host: string;
  /** Who listens there: "the gateway". */
  part: string;
  /** The setting that moves it: "PORT". */
  setting: string;
}

function tryListen(port: number, host: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

export function portInUse(planned: PlannedPort, code = 'EADDRINUSE'): StartupError {
  const { port, part, setting } = planned;
  if (code === 'EACCES') {
    return new StartupError(
      part,
      `port ${port} needs privileges this user lacks`,
      `set ${setting} to a port above 1023`,
    );
  }
  return new StartupError(part, `port ${port} is in use`, `stop what listens on it, or set ${setting} to a free port`);
}

export async function assertPortsFree(ports: PlannedPort[]): Promise<void> {
  for (const planned of ports) {
    if (planned.port === 0) continue;
    const err = await tryListen(planned.port, planned.host);
    if (err?.code === 'EADDRINUSE' || err?.code === 'EACCES') throw portInUse(planned, err.code);
    // Any other error (a host that is not this machine's) is the service's own to report.
  }
}
