// N runs side by side: the params that differ (or all), the latest metrics,
// one metric's histories overlaid, a metric against a param (scatter) and
// parallel coordinates (explore.jsx).
import { useEffect, useState } from 'preact/hooks';
import { fmtNum, kv, tracking } from './api.js';
import { Link } from './router.jsx';
import { MetricChart } from './chart.jsx';
import { Parallel, Scatter } from './explore.jsx';
import { useLiveRuns } from './events.js';

export function Compare({ runIds, initialMetric }) {
  const [runs, setRuns] = useState(null);
  const [error, setError] = useState('');
  const [all, setAll] = useState(false);
  const [metric, setMetric] = useState(initialMetric);
  const [gen, setGen] = useState(0);
  useEffect(() => {
    Promise.all(runIds.map((id) => tracking('get_run', { run_id: id }).then((r) => r.run)))
      .then((rs) => {
        setRuns(rs);
        setMetric((m) => m || (rs[0]?.data.metrics || [])[0]?.key || '');
      })
      .catch((e) => setError(e.message));
  }, [runIds.join(','), gen]);
  // the running ones live: the chart follows their metrics, and the tables
  // are asked again when one's status changes
  const running = (runs || []).filter((r) => r.info.status === 'RUNNING' || r.info.status === 'SCHEDULED').map((r) => r.info.run_id);
  const live = useLiveRuns(running, () => setGen((g) => g + 1));
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!runs) return <p aria-busy="true">Loading runs…</p>;
  const params = runs.map((r) => kv(r.data.params));
  const metrics = runs.map((r) => kv(r.data.metrics));
  const keys = (maps) => [...new Set(maps.flatMap(Object.keys))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const differs = (maps, k) => new Set(maps.map((m) => String(m[k]))).size > 1;
  const pkeys = keys(params).filter((k) => all || differs(params, k));
  const mkeys = keys(metrics);
  // the params that differ first (the likelier x axes), then the rest
  const xkeys = [...keys(params).filter((k) => differs(params, k)), ...keys(params).filter((k) => !differs(params, k))];
  const head = (
    <thead>
      <tr>
        <th scope="col">key</th>
        {runs.map((r) => (
          <th scope="col" key={r.info.run_id}><Link href={`/runs/${encodeURIComponent(r.info.run_id)}`}>{r.info.run_name || r.info.run_id}</Link></th>
        ))}
      </tr>
    </thead>
  );
  return (
    <section class="compare">
      <h1>Compare {runs.length} runs</h1>
      {mkeys.length > 0 && (
        <>
          <label for="chart-metric">Metric to chart</label>{' '}
            <select id="chart-metric" value={metric} onChange={(e) => setMetric(e.target.value)}>
              {mkeys.map((k) => <option key={k}>{k}</option>)}
            </select>
          <MetricChart runs={runs.map((r) => ({ id: r.info.run_id, name: r.info.run_name }))} metric={metric} tick={live.tick} live={running.length ? live.state : undefined} />
        </>
      )}
      {mkeys.length > 0 && runs.length > 1 && (
        <div class="columns">
          <section>
            <h2>Metric against param</h2>
            <Scatter runs={runs} metrics={metrics} params={params} mkeys={mkeys} pkeys={xkeys} />
          </section>
          <section>
            <h2>Parallel coordinates</h2>
            <Parallel runs={runs} metrics={metrics} params={params} mkeys={mkeys} pkeys={xkeys} />
          </section>
        </div>
      )}
      <h2>Params</h2>
      <label><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> show params that are the same</label>
      <table class="plain" data-testid="param-diff">
        {head}
        <tbody>
          {pkeys.map((k) => (
            <tr key={k} class={differs(params, k) ? 'diff' : ''}>
              <th scope="row">{k}</th>
              {params.map((p, i) => <td key={i}>{p[k] ?? ''}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
      {!pkeys.length && <p class="muted">No param differs.</p>}
      <h2>Metrics (latest)</h2>
      <table class="plain">
        {head}
        <tbody>
          {mkeys.map((k) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              {metrics.map((m, i) => <td class="num" key={i}>{fmtNum(m[k])}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
