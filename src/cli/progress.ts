// Progress for long commands: a bar on a terminal, only for big jobs, never with --quiet.
import { createProgress, type Progress } from '../io/progress.js';

/** Jobs under this many records finish too fast for a progress bar to help. */
export const PROGRESS_THRESHOLD = 5_000;

/**
 * A progress line on standard error for a job of `total` records (an estimate is fine; `done` is
 * capped to it), drawn only when standard error is a terminal, the job is bigger than
 * {@link PROGRESS_THRESHOLD} and `quiet` is off. With `total` unknown (standard input), the line
 * appears once that many records are done and shows the count and rate.
 */
export function jobProgress(options: {
  label: string;
  total: number | undefined;
  quiet: boolean;
}): Progress {
  const { label, total, quiet } = options;
  const stream = process.stderr;
  if (quiet || stream.isTTY !== true) return NO_PROGRESS;
  if (total !== undefined) {
    if (total <= PROGRESS_THRESHOLD) return NO_PROGRESS;
    const bar = createProgress({ total, label, stream });
    return {
      update: (done) => bar.update(Math.min(done, total)),
      stop: () => bar.stop(),
    };
  }
  let bar: Progress | undefined;
  return {
    update(done) {
      if (bar === undefined && done >= PROGRESS_THRESHOLD) {
        bar = createProgress({ label, stream });
      }
      bar?.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}

const NO_PROGRESS: Progress = Object.freeze({ update() {}, stop() {} });
