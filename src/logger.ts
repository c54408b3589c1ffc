/**
 * The logger proxytier reports through. Library code never writes to the console: it calls the
 * logger it was given, so an application can route, silence or capture every line.
 * No line at any level ever carries a credential or a key.
 */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Levels from most to least verbose; a logger prints its own level and everything after it. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A logger that drops everything. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/**
 * The default logger: one line per message on stderr, prefixed `proxytier:`, at `level` and above
 * (default `info`, or `PROXYTIER_LOG_LEVEL` when set).
 */
export function createStderrLogger(level: LogLevel = defaultLevel()): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const line =
    (at: LogLevel) =>
    (message: string): void => {
      if (LOG_LEVELS.indexOf(at) >= threshold) {
        process.stderr.write(`proxytier: ${at === 'info' ? '' : `${at}: `}${message}\n`);
      }
    };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

function defaultLevel(): LogLevel {
  const fromEnv = process.env['PROXYTIER_LOG_LEVEL'];
  return (LOG_LEVELS as readonly string[]).includes(fromEnv ?? '') ? (fromEnv as LogLevel) : 'info';
}
