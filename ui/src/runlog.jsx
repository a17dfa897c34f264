// A run's log, when it has the artifact logs/output.log (a job's run keeps
// its output so when the job ends, docs/JOBS.md; its page shows the job's
// log instead, live, while the jobs service has it). Its last 256 KiB are read with
// one get_artifact range (the file's size from list_artifacts); while the
// run is RUNNING (and for a minute after it ends, while the upload lands)
// the page asks again every 3 s.
import { useState } from 'preact/hooks';
import { call, tracking } from './api.js';
import { usePoll } from './hooks.js';

const TAIL = 256 << 10;
const LOG = 'logs/output.log';
const EVERY_MS = 3000;
const LATE_MS = 60000;

const art = (verb, body) => call('artifacts', verb, body);
const bytesOf = (d) => (typeof d === 'string' ? new TextEncoder().encode(d) : Uint8Array.from(atob(d?.$bin || ''), (c) => c.charCodeAt(0)));

// The run's logs/output.log entry (list_artifacts), or null.
export async function findLog(runId) {
  const root = await art('list_artifacts', { run_id: runId, max_results: 1000 });
  if (!(root.files || []).some((f) => f.is_dir && f.path === 'logs')) return null;
  const logs = await art('list_artifacts', { run_id: runId, path: 'logs', max_results: 1000 });
  return (logs.files || []).find((f) => f.path === LOG) || null;
}

// onInfo(info, hasLog): the run's info, when its status or end changed or
// its log came (the page's header and artifacts follow it).
export function RunLog({ info, onInfo }) {
  const [st, setSt] = useState({ status: info.status, end: Number(info.end_time) || 0, log: null, size: -1 });
  usePoll(
    async () => {
      // the first time, the page's own answer; then asked again
      const run = !st.asked ? info : (await tracking('get_run', { run_id: info.run_id })).run.info;
      const f = await findLog(info.run_id);
      const size = f ? Number(f.file_size) : -1;
      let log = null;
      if (f && size !== st.size) {
        const offset = Math.max(0, size - TAIL);
        const r = await art('get_artifact', { run_id: info.run_id, path: LOG, offset, length: TAIL });
        let text = new TextDecoder().decode(bytesOf(r.data));
        if (offset > 0) text = text.slice(text.indexOf('\n') + 1); // from the first whole line
        log = { text, cut: offset > 0 };
      }
      const end = Number(run.end_time) || 0;
      if (run.status !== info.status || end !== (Number(info.end_time) || 0) || (f && st.size < 0)) onInfo?.(run, !!f);
      setSt((s) => ({ status: run.status, end, log: log || s.log, size, asked: true }));
      const running = run.status === 'RUNNING' || run.status === 'SCHEDULED';
      return running || (!f && end > 0 && Date.now() - end < LATE_MS);
    },
    EVERY_MS,
    [info.run_id]
  );
  // shown once there is a log (a job's run shows the job's own, live: run.jsx)
  if (!st.log) return null;
  return (
    <section class="runlog">
      <h2>Log</h2>
      {st.log.cut && <p class="muted">The last {TAIL >> 10} KiB of {st.size.toLocaleString()} bytes.</p>}
      <pre class="preview log" data-testid="run-log" data-state="shown">{st.log.text}</pre>
    </section>
  );
}
