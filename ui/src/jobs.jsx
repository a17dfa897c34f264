// Jobs: the queue (filtered by status, newest first, polled), and a job's
// page: its status (asked again at each of its jobs.status events, else
// polled, until it ends), its run, its log growing live
// (stream_logs from the offset reached, every second, until done) and a
// cancel button.
import { useRef, useState } from 'preact/hooks';
import { fmtTime, jobs } from './api.js';
import { usePoll } from './hooks.js';
import { useEvents } from './events.js';
import { Link } from './router.jsx';

const STATUSES = ['Queued', 'Preparing', 'Running', 'Completed', 'Failed', 'Canceled', 'TimedOut'];
const ENDED = new Set(['Completed', 'Failed', 'Canceled', 'TimedOut']);
const PAGE = 100;

function took(j) {
  const a = Number(j.started), b = Number(j.ended) || (a ? Date.now() : 0);
  if (!a || b < a) return '';
  const s = (b - a) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}
const runLink = (j) => (j.run_id ? <Link href={`/runs/${encodeURIComponent(j.run_id)}`}>{j.run_id.slice(0, 12)}</Link> : '');

export function Jobs() {
  const [status, setStatus] = useState('');
  const [list, setList] = useState(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState('');
  const [pages, setPages] = useState(1); // pages shown, asked again on each poll
  usePoll(async () => {
    let out = [], token = '';
    for (let i = 0; i < pages; i++) {
      const r = await jobs('list_jobs', { status: status || undefined, max_results: PAGE, page_token: token || undefined });
      out = out.concat(r.jobs || []);
      token = r.next_page_token || '';
      if (!token) break;
    }
    setList(out);
    setNext(token);
    setError('');
  }, 3000, [status, pages]);
  return (
    <section>
      <h1>Jobs</h1>
      <div class="toolbar">
        <label for="job-status">Status</label>
        <select id="job-status" value={status} onChange={(e) => (setStatus(e.target.value), setPages(1), setList(null))}>
          <option value="">all</option>
          {STATUSES.map((s) => <option key={s}>{s}</option>)}
        </select>
        <span class="muted" data-testid="jobs-count">{list ? `${list.length}${next ? '+' : ''} jobs` : 'loading…'}</span>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {list && (
        <table class="plain" data-testid="jobs">
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Display name</th><th scope="col">Status</th><th scope="col">Compute</th><th scope="col">Created</th><th scope="col">Duration</th><th scope="col">Experiment</th><th scope="col">Run</th></tr>
          </thead>
          <tbody>
            {list.map((j) => (
              <tr key={j.name} data-job={j.name}>
                <td><Link href={`/jobs/${encodeURIComponent(j.name)}`}>{j.name}</Link></td>
                <td>{j.display_name}</td>
                <td><span class={`status ${j.status}`}>{j.status}</span></td>
                <td>{j.compute}</td>
                <td>{fmtTime(j.created)}</td>
                <td>{took(j)}</td>
                <td>{j.experiment_id ? <Link href={`/experiments/${encodeURIComponent(j.experiment_id)}`}>{j.experiment_name || j.experiment_id}</Link> : ''}</td>
                <td>{runLink(j)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && <button onClick={() => setPages(pages + 1)}>More jobs</button>}
    </section>
  );
}

// The log: asked from the offset reached, every second, until done (a
// job's run shows it too). onError(e): stream_logs refused; onDone: the
// whole log is in.
export function JobLog({ name, onError, onDone }) {
  const [text, setText] = useState('');
  const [done, setDone] = useState(false);
  const [error, setError] = useState('');
  const offset = useRef(0);
  const pre = useRef(null);
  usePoll(async () => {
    try {
      const r = await jobs('stream_logs', { name, offset: offset.current });
      offset.current = r.offset;
      const el = pre.current;
      const atEnd = el && el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
      if (r.data) setText((t) => t + r.data);
      if (atEnd) requestAnimationFrame(() => el && (el.scrollTop = el.scrollHeight)); // follow the tail
      setError('');
      if (r.done) (setDone(true), onDone?.());
      return !r.done;
    } catch (e) {
      setError(e.message);
      if (onError && (e.status === 403 || e.status === 404)) return onError(e), false;
    }
  }, 1000, [name]);
  return (
    <section>
      <h2>Log {done ? <span class="muted">(complete)</span> : <span class="muted" aria-busy="true">(live)</span>}</h2>
      {error && <p class="error" role="alert">{error}</p>}
      <pre ref={pre} class="preview log" data-testid="job-log" data-done={done ? 'true' : 'false'} tabindex="0" aria-label="job log" aria-live="off">{text}</pre>
    </section>
  );
}

export function Job({ name }) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState('');
  const [msg, setMsg] = useState('');
  const [busy, setBusy] = useState(false);
  const [gen, setGen] = useState(0);
  // live: the job's jobs.status events ask again at once (the gateway's
  // stream, events.js); the poll is then only a fallback
  const [live, setLive] = useState('');
  const running = job && !ENDED.has(job.status);
  useEvents({ jobs: running ? [name] : [] }, (type, body) => {
    if (type === 'state') setLive(body);
    else if (type === 'jobs.status' && body.name === name) setGen((g) => g + 1);
  });
  const open = running && live === 'open';
  usePoll(async () => {
    try {
      const j = (await jobs('get_job', { name })).job;
      setJob(j);
      setError('');
      return !ENDED.has(j.status);
    } catch (e) {
      setError(e.message);
      if (e.status === 404) return false;
    }
  }, open ? 15000 : 2000, [name, gen, open]);
  const cancel = async () => {
    setBusy(true);
    try {
      setJob((await jobs('cancel_job', { name })).job);
      setMsg('Cancel requested.');
      setGen(gen + 1); // poll again until it has ended
    } catch (e) {
      setMsg(e.message);
    } finally {
      setBusy(false);
    }
  };
  if (!job) return error ? <p class="error" role="alert">{error}</p> : <p aria-busy="true">Loading job…</p>;
  const ended = ENDED.has(job.status);
  return (
    <section class="job">
      <p class="crumbs"><Link href="/jobs">Jobs</Link> / job</p>
      <h1>{job.display_name || job.name}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <dl class="info">
        <dt>Name</dt><dd>{job.name}</dd>
        <dt>Status</dt><dd><span class={`status ${job.status}`} data-testid="job-status">{job.status}</span>{job.cancel_requested && !ended ? ' (cancel requested)' : ''}{' '}
          <span class="muted" data-testid="job-live" data-live={open ? 'open' : live}>{open ? '(live)' : ''}</span></dd>
        {job.reason && (<><dt>Reason</dt><dd>{job.reason}</dd></>)}
        {job.exit_code != null && (<><dt>Exit code</dt><dd>{job.exit_code}</dd></>)}
        <dt>Compute</dt><dd>{job.compute}</dd>
        <dt>Priority</dt><dd>{job.priority}</dd>
        <dt>Created</dt><dd>{fmtTime(job.created)}</dd>
        <dt>Started</dt><dd>{fmtTime(job.started)}</dd>
        <dt>Ended</dt><dd>{fmtTime(job.ended)}</dd>
        <dt>Duration</dt><dd>{took(job)}</dd>
        <dt>Experiment</dt><dd>{job.experiment_id ? <Link href={`/experiments/${encodeURIComponent(job.experiment_id)}`}>{job.experiment_name || job.experiment_id}</Link> : ''}</dd>
        <dt>Run</dt><dd>{runLink(job)}</dd>
      </dl>
      <p class="toolbar">
        <button onClick={cancel} disabled={busy || ended || job.cancel_requested}>Cancel job</button>
        <span role="status">{msg}</span>
      </p>
      <JobLog name={job.name} />
    </section>
  );
}
