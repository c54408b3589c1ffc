// A progress line for long imports and exports, drawn only on a terminal.
import cliProgress from 'cli-progress';

/** What `createProgress` returns. Both methods are safe to call any number of times. */
export interface Progress {
  /** Sets the number of records done so far. */
  update(done: number): void;
  /** Draws the final state and ends the line; later updates are ignored. */
  stop(): void;
}

export interface ProgressOptions {
  /** Records expected, when known: the line then shows a bar, a percentage and an ETA. */
  total?: number;
  /** Shown first, for example `importing proxies.csv`. */
  label: string;
  /** Where to draw (usually `process.stderr`); nothing is drawn unless it is a TTY. */
  stream: NodeJS.WriteStream;
}

const NOTHING: Progress = Object.freeze({
  update() {},
  stop() {},
});

/**
 * A progress line on `stream` with the count, the rate per second and, when `total` is known, a
 * bar, a percentage and the ETA; redrawn at most 10 times a second. When `stream` is not a TTY
 * (a pipe, a file, CI logs) it is a no-op and prints nothing.
 */
export function createProgress(options: ProgressOptions): Progress {
  const { total, label, stream } = options;
  if (stream.isTTY !== true) return NOTHING;
  const known = total !== undefined && Number.isFinite(total) && total > 0;
  const bar = new cliProgress.SingleBar({
    stream,
    format: known
      ? '{label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}'
      : '{label} {value} records | {rate}/s | {duration_formatted}',
    fps: 10,
    // Narrow enough that the rate and ETA fit an 80-column terminal.
    barsize: 20,
    etaBuffer: 50,
    // cli-progress's SIGINT handler would swallow the first Ctrl-C; the cursor is left visible
    // so that nothing needs restoring when the process is interrupted.
    gracefulExit: false,
    hideCursor: false,
    linewrap: true,
  });
  const started = Date.now();
  const rate = (done: number): string => {
    const seconds = (Date.now() - started) / 1000;
    return seconds <= 0 ? '0' : Math.round(done / seconds).toLocaleString('en-US');
  };
  bar.start(known ? total : 0, 0, { label, rate: '0' });
  let stopped = false;
  return {
    update(done: number): void {
      if (!stopped) bar.update(done, { rate: rate(done) });
    },
    stop(): void {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
