// Online endpoints: the list, and an endpoint's page: its deployments, the
// traffic and mirror shares (each applied at once, the whole map in one
// request), and its latency and request charts from get_endpoint_metrics,
// polled every few seconds.
import { useState } from 'preact/hooks';
import { endpoints, fmtTime } from './api.js';
import { useLoad, usePoll } from './hooks.js';
import { Link } from './router.jsx';
import { COLORS, LiveChart } from './livechart.jsx';

const POLL_MS = 3000;
const KEEP = 200; // samples kept (10 minutes at 3 s)
const fmtMs = (v) => (v == null ? '' : String(Number(v.toPrecision(3))));
const shares = (m) => Object.entries(m || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}%`).join(', ');

export function Endpoints() {
  const { data, error } = useLoad(() => endpoints('list_endpoints'), []);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!data) return <p aria-busy="true">Loading endpoints…</p>;
  const eps = data.endpoints || [];
  return (
    <section>
      <h1>Endpoints</h1>
      {!eps.length ? (
        <p class="muted">No endpoint.</p>
      ) : (
        <table class="plain" data-testid="endpoints">
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Traffic</th><th scope="col">Mirror</th><th scope="col">Auth</th><th scope="col">Scoring URI</th><th scope="col">Created</th></tr>
          </thead>
          <tbody>
            {eps.map((e) => (
              <tr key={e.name}>
                <td><Link href={`/endpoints/${encodeURIComponent(e.name)}`}>{e.name}</Link></td>
                <td>{shares(e.traffic) || <span class="muted">none</span>}</td>
                <td>{shares(e.mirror)}</td>
                <td>{e.auth_mode}</td>
                <td><code>{e.scoring_uri}</code></td>
                <td>{fmtTime(e.created)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// One share per deployment (a slider and a number, the same value), checked
// here, then applied as one request with the whole map.
function Shares({ kind, names, current, max, check, apply, done }) {
  const [draft, setDraft] = useState(() => Object.fromEntries(names.map((n) => [n, current[n] || 0])));
  const [msg, setMsg] = useState({ text: '', error: false });
  const [busy, setBusy] = useState(false);
  const set = (n, v) => setDraft({ ...draft, [n]: Math.max(0, Math.min(max, Math.round(Number(v) || 0))) });
  const sum = Object.values(draft).reduce((a, b) => a + b, 0);
  const submit = async (e) => {
    e.preventDefault();
    const refused = check(draft, sum);
    if (refused) return setMsg({ text: refused, error: true });
    setBusy(true);
    try {
      await apply(draft);
      setMsg({ text: `${kind} applied.`, error: false });
      done();
    } catch (err) {
      setMsg({ text: err.message, error: true });
    } finally {
      setBusy(false);
    }
  };
  const changed = names.some((n) => draft[n] !== (current[n] || 0));
  return (
    <form class="shares" onSubmit={submit} aria-label={kind} data-testid={`${kind.toLowerCase()}-form`}>
      <h2>{kind}</h2>
      {names.map((n) => (
        <div class="share" key={n}>
          <label for={`${kind}-${n}-r`}>{n}</label>
          <input id={`${kind}-${n}-r`} type="range" min="0" max={max} step="1" value={draft[n]} onInput={(e) => set(n, e.target.value)} aria-label={`${kind} for ${n} (slider)`} />
          <input type="number" min="0" max={max} step="1" value={draft[n]} onInput={(e) => set(n, e.target.value)} aria-label={`${kind} % for ${n}`} class="pct" />%
          <span class="muted">now {current[n] || 0}%</span>
        </div>
      ))}
      <p class="toolbar">
        <span data-testid={`${kind.toLowerCase()}-sum`}>sum {sum}%</span>
        <button type="submit" disabled={busy || !changed}>Apply {kind.toLowerCase()}</button>
        <button type="button" disabled={busy || !changed} onClick={() => (setDraft(Object.fromEntries(names.map((n) => [n, current[n] || 0]))), setMsg({ text: '' }))}>Reset</button>
        <span role={msg.error ? 'alert' : 'status'} class={msg.error ? 'error' : ''} data-testid={`${kind.toLowerCase()}-msg`}>{msg.text}</span>
      </p>
    </form>
  );
}

// The polled samples as uPlot's columns: latency by percentile, and the
// requests and errors each second between two samples.
function columns(samples, names) {
  const t = samples.map((s) => s.t);
  const lat = [], rate = [];
  names.forEach((n) => {
    // no latency before a deployment's first request (not 0)
    for (const p of ['p50', 'p90', 'p99']) lat.push(samples.map((s) => (s.m[n]?.requests || s.m[n]?.mirrored ? s.m[n].latency_ms?.[p] ?? null : null)));
    for (const k of ['requests', 'errors'])
      rate.push(samples.map((s, i) => {
        const a = samples[i - 1]?.m[n], b = s.m[n];
        return a && b ? Math.max(0, (b[k] - a[k]) / (s.t - samples[i - 1].t)) : null;
      }));
  });
  return [[t, ...lat], [t, ...rate]];
}

function Metrics({ name, names }) {
  const [samples, setSamples] = useState([]);
  const [error, setError] = useState('');
  usePoll(async () => {
    try {
      const r = await endpoints('get_endpoint_metrics', { endpoint: name });
      const m = Object.fromEntries((r.deployments || []).map((d) => [d.name, d]));
      setSamples((s) => [...s.slice(-(KEEP - 1)), { t: Date.now() / 1000, m }]);
      setError('');
    } catch (e) {
      setError(e.message);
    }
  }, POLL_MS, [name]);
  const [lat, rate] = columns(samples, names);
  const dash = { p50: undefined, p90: [6, 3], p99: [2, 2], requests: undefined, errors: [4, 3] };
  const latSeries = names.flatMap((n, i) => ['p50', 'p90', 'p99'].map((p) => ({ label: `${n} ${p}`, stroke: COLORS[i % COLORS.length], dash: dash[p] })));
  const rateSeries = names.flatMap((n, i) => ['requests', 'errors'].map((k) => ({ label: `${n} ${k}/s`, stroke: COLORS[i % COLORS.length], dash: dash[k] })));
  const last = samples[samples.length - 1]?.m || {};
  return (
    <section>
      <h2>Metrics <span class="muted">(polled every {POLL_MS / 1000} s; {samples.length} samples)</span></h2>
      {error && <p class="error" role="alert">{error}</p>}
      <table class="plain" data-testid="metrics">
        <thead>
          <tr><th scope="col">Deployment</th><th scope="col">Requests</th><th scope="col">Mirrored</th><th scope="col">Errors</th><th scope="col">p50 ms</th><th scope="col">p90 ms</th><th scope="col">p99 ms</th></tr>
        </thead>
        <tbody>
          {names.map((n) => {
            const d = last[n] || {};
            return (
              <tr key={n}>
                <th scope="row">{n}</th>
                <td class="num">{d.requests ?? ''}</td><td class="num">{d.mirrored ?? ''}</td><td class="num">{d.errors ?? ''}</td>
                <td class="num">{fmtMs(d.latency_ms?.p50)}</td><td class="num">{fmtMs(d.latency_ms?.p90)}</td><td class="num">{fmtMs(d.latency_ms?.p99)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <div class="columns">
        <LiveChart title="Latency (ms): p50, p90, p99" unit="ms" series={latSeries} data={lat} testid="latency-chart" />
        <LiveChart title="Requests and errors per second" unit="/s" series={rateSeries} data={rate} testid="rate-chart" />
      </div>
    </section>
  );
}

export function Endpoint({ name }) {
  const { data, error, reload } = useLoad(
    () => Promise.all([endpoints('get_endpoint', { name }), endpoints('list_deployments', { endpoint: name })]),
    [name]
  );
  if (!data) return error ? <p class="error" role="alert">{error}</p> : <p aria-busy="true">Loading endpoint…</p>;
  const [{ endpoint: ep }, { deployments: deps = [] }] = data;
  const names = deps.map((d) => d.name);
  const gen = JSON.stringify([ep.traffic, ep.mirror]); // the forms start again from what the server says
  return (
    <section class="endpoint">
      <p class="crumbs"><Link href="/endpoints">Endpoints</Link> / endpoint</p>
      <h1>{ep.name}</h1>
      <dl class="info">
        <dt>Scoring URI</dt><dd><code>{ep.scoring_uri}</code></dd>
        <dt>Auth</dt><dd>{ep.auth_mode}</dd>
        <dt>Created</dt><dd>{fmtTime(ep.created)}</dd>
        <dt>Traffic</dt><dd data-testid="traffic">{shares(ep.traffic) || 'none'}</dd>
        <dt>Mirror</dt><dd data-testid="mirror">{shares(ep.mirror) || 'none'}</dd>
      </dl>
      <h2>Deployments</h2>
      <table class="plain" data-testid="deployments">
        <thead>
          <tr><th scope="col">Name</th><th scope="col">Flavor</th><th scope="col">Model</th><th scope="col">Serving</th><th scope="col">Instances</th><th scope="col">Follows alias</th><th scope="col">Traffic</th><th scope="col">Mirror</th><th scope="col">Created</th></tr>
        </thead>
        <tbody>
          {deps.map((d) => {
            const model = d.model_ref?.match(/^model:(.*):\d+$/)?.[1];
            return (
              <tr key={d.name}>
                <th scope="row">{d.name}</th>
                <td>{d.flavor}</td>
                <td>{model ? <Link href={`/models/${encodeURIComponent(model)}`}>{d.model}</Link> : d.model}</td>
                <td>{d.model_ref}</td>
                <td class="num">{d.instance_count}</td>
                <td>{d.follow_alias ? 'yes' : 'no'}</td>
                <td class="num">{ep.traffic?.[d.name] || 0}%</td>
                <td class="num">{ep.mirror?.[d.name] || 0}%</td>
                <td>{fmtTime(d.created)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {error && <p class="error" role="alert">{error}</p>}
      {names.length > 0 && (
        <div class="columns">
          <Shares key={'t' + gen} kind="Traffic" names={names} current={ep.traffic || {}} max={100} done={reload}
            check={(m, sum) => (sum === 100 || sum === 0 ? '' : `The shares sum to ${sum}%: they must sum to 100%, or all be 0. Nothing was sent.`)}
            apply={(m) => endpoints('update_traffic', { endpoint: ep.name, traffic: m })} />
          <Shares key={'m' + gen} kind="Mirror" names={names} current={ep.mirror || {}} max={50} done={reload}
            check={() => ''}
            apply={(m) => endpoints('update_mirror', { endpoint: ep.name, mirror: Object.fromEntries(Object.entries(m).filter(([, v]) => v > 0)) })} />
        </div>
      )}
      {names.length > 0 && <Metrics name={ep.name} names={names} />}
    </section>
  );
}
