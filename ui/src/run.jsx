// A run: its info, params, latest metrics, tags, parent and children, and a
// chart of one of its metrics, its log (a job's run) and its artifacts.
import { useEffect, useState } from 'preact/hooks';
import { field, fmtDuration, fmtNum, fmtTime, tracking } from './api.js';
import { Link } from './router.jsx';
import { MetricChart } from './chart.jsx';
import { Artifacts } from './artifacts.jsx';
import { Lineage } from './lineage.jsx';
import { findLog, RunLog } from './runlog.jsx';
import { JobLog } from './jobs.jsx';
import { useLiveRuns } from './events.js';
import { usePoll } from './hooks.js';

export function KV({ title, rows, num }) {
  return (
    <section class="kv">
      <h2>{title}</h2>
      {rows.length ? (
        <table class="plain">
          <tbody>
            {rows.map((r) => (
              <tr key={r.key}>
                <th scope="row">{r.key}</th>
                <td class={num ? 'num' : ''}>{num ? fmtNum(r.value) : r.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">none</p>
      )}
    </section>
  );
}

const RUNNING = new Set(['RUNNING', 'SCHEDULED']);
const LATE_MS = 30000;

export function Run({ runId }) {
  const [run, setRun] = useState(null);
  const [children, setChildren] = useState([]);
  const [error, setError] = useState('');
  const [metric, setMetric] = useState('');
  const [lineage, setLineage] = useState(false); // asked for when opened
  const [hasLog, setHasLog] = useState(false); // RunLog found logs/output.log
  const [jobLogRefused, setJobLogRefused] = useState(false); // then the artifact
  const [logEnd, setLogEnd] = useState(0); // when a job's log was all in
  // the run; the chart shows its first metric until one is picked
  const getRun = () =>
    tracking('get_run', { run_id: runId }).then((r) => {
      setRun(r.run);
      setMetric((m) => m || (r.run.data.metrics || [])[0]?.key || '');
      return r.run;
    });
  useEffect(() => {
    getRun()
      .then((r) =>
        tracking('search_runs', {
          experiment_ids: [r.info.experiment_id],
          filter: `${field('tags', 'mlflow.parentRunId')} = '${runId.replace(/'/g, "''")}'`,
          max_results: 100,
        })
      )
      .then((c) => setChildren(c.runs || []))
      .catch((e) => setError(e.message));
  }, [runId]);
  // live while it runs: its status and latest metrics asked again as its
  // events come (or every 3 s without a stream)
  const running = RUNNING.has(run?.info.status);
  const reload = () => getRun().catch(() => {}); // the page keeps what it shows
  const live = useLiveRuns(running ? [runId] : [], reload);
  useEffect(() => void (live.tick && reload()), [live.tick]);
  usePoll(() => (running && live.state !== 'open' ? reload().then(() => true) : false), 3000, [running, live.state === 'open']);
  // the jobs plugin keeps the log as an artifact once the job ends: the
  // artifacts are listed again for a while then
  const [artGen, setArtGen] = useState(0);
  usePoll(
    async () => {
      if (!logEnd || Date.now() - logEnd > LATE_MS) return false;
      if (!(await findLog(runId))) return true;
      setArtGen((g) => g + 1);
      return false;
    },
    2000,
    [logEnd]
  );
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!run) return <p aria-busy="true">Loading run…</p>;
  const { info, data } = run;
  const metrics = data.metrics || [];
  const job = (data.tags || []).find((t) => t.key === 'cairn.job')?.value; // a job's run
  const setInfo = (i) => setRun((r) => ({ ...r, info: { ...r.info, ...i } }));
  const parent = info.parent_run_id || (data.tags || []).find((t) => t.key === 'mlflow.parentRunId')?.value;
  return (
    <section class="run">
      <p class="crumbs">
        <Link href={`/experiments/${encodeURIComponent(info.experiment_id)}`}>Experiment {info.experiment_id}</Link> / run
      </p>
      <h1>{info.run_name || info.run_id}</h1>
      <dl class="info">
        <dt>Id</dt><dd>{info.run_id}</dd>
        <dt>Status</dt><dd data-testid="run-status">{info.status}</dd>
        <dt>Started</dt><dd>{fmtTime(info.start_time)}</dd>
        <dt>Duration</dt><dd>{fmtDuration(info)}</dd>
        <dt>User</dt><dd>{info.user_id}</dd>
        {job && (<><dt>Job</dt><dd><Link href={`/jobs/${encodeURIComponent(job)}`}>{job}</Link></dd></>)}
        {parent && (<><dt>Parent</dt><dd><Link href={`/runs/${encodeURIComponent(parent)}`}>{parent}</Link></dd></>)}
        {children.length > 0 && (
          <><dt>Children</dt><dd>{children.map((c) => <Link key={c.info.run_id} href={`/runs/${encodeURIComponent(c.info.run_id)}`}>{c.info.run_name || c.info.run_id} </Link>)}</dd></>
        )}
      </dl>
      {metrics.length > 0 && (
        <>
          <label for="chart-metric">Metric to chart</label>{' '}
            <select id="chart-metric" value={metric} onChange={(e) => setMetric(e.target.value)}>
              {metrics.map((m) => <option key={m.key}>{m.key}</option>)}
            </select>
          <MetricChart
            runs={[{ id: info.run_id, name: info.run_name }]}
            metric={metric}
            tick={live.tick}
            live={running ? live.state : undefined}
          />
        </>
      )}
      <div class="columns">
        <KV title="Params" rows={data.params || []} />
        <KV title="Metrics (latest)" rows={metrics} num />
        <KV title="Tags" rows={data.tags || []} />
      </div>
      {job && !jobLogRefused ? (
        <JobLog name={job} onError={() => setJobLogRefused(true)} onDone={() => (setLogEnd(Date.now()), reload())} />
      ) : (
        <RunLog info={info} onInfo={(i, log) => (setInfo(i), setHasLog(log))} />
      )}
      <Artifacts info={info} key={`${info.status}.${hasLog}.${artGen}`} />
      <details onToggle={(e) => setLineage(e.currentTarget.open)}>
        <summary><h2 class="inline">Lineage</h2></summary>
        {lineage && <div class="scroll-x"><Lineage node={`run:${info.run_id}`} /></div>}
      </details>
    </section>
  );
}
