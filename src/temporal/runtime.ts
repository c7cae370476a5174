/**
 * The Temporal SDK runtime of a worker process: its logs go through our logger, and its own
 * metrics are exported in Prometheus format when a port is configured.
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Installs the runtime once; returns the URL of the SDK's metrics, if exported. */
export function installTemporalRuntime(logger: Logger, metricsPort: number | undefined): string | undefined {
  const sdkLogger = logger.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger('WARN', ({ level, message, meta }) => sdkLogger[LEVELS[level]](meta ?? {}, message)),
    ...(metricsPort
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${metricsPort}` } } } }
      : {}),
  });
  return metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : undefined;
}
