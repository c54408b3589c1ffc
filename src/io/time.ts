// The import/export layer reads and writes times as proxywhirl does; see src/record/time.ts.
export { formatIsoTime, parseIsoTime, parseTimeText } from '../record/time.js';
