// A metric's history for one or many runs, from the server's sampled history
// (get_metric_history_sampled: each bucket's min and max, so no spike is
// lost), drawn by uPlot on a canvas. Zooming (drag across the chart) asks
// the server for the zoomed range only, as many points as the screen has
// pixels, so a zoom is as fine as the screen; double-click zooms out. x by
// step or time; EMA smoothing. A page with running runs asks again as their
// metrics come (tick: events.js's useLiveRuns).
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { tracking } from './api.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const MAX_POINTS = 100000; // the verb's limit

// range: null (all) or [lo, hi] in the x axis' units (steps, or seconds)
function sampleBody(run, key, points, range, byTime) {
  const b = { run_id: run.id, keys: [key], max_points: points };
  if (range && byTime) Object.assign(b, { start_time: Math.floor(range[0] * 1000), end_time: Math.ceil(range[1] * 1000) });
  else if (range) Object.assign(b, { start_step: Math.floor(range[0]), end_step: Math.ceil(range[1]) });
  return b;
}

async function sampled(runs, key, points, range, byTime) {
  return Promise.all(
    runs.map((r) =>
      tracking('get_metric_history_sampled', sampleBody(r, key, points, range, byTime)).then((j) => j.series?.[0] || { metrics: [], total_points: 0 })
    )
  );
}

function ema(ys, alpha) {
  if (!alpha) return ys;
  const out = new Array(ys.length);
  let acc = null;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    acc = acc === null ? y : acc * alpha + y * (1 - alpha);
    out[i] = acc;
  }
  return out;
}

// [[x], [y]] per run, joined on one x axis (uPlot's join: nulls where a run
// has no point), and spanned over the gaps.
function tables(series, byTime, alpha) {
  return series.map((s) => {
    const pts = s.metrics || [];
    const xs = pts.map((p) => (byTime ? Number(p.timestamp) / 1000 : Number(p.step)));
    const ys = pts.map((p) => (typeof p.value === 'number' ? p.value : Number(p.value)));
    // uPlot needs increasing x: sampled history is in step order; by time,
    // sort (runs may log out of order)
    if (byTime) {
      const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
      return [idx.map((i) => xs[i]), ema(idx.map((i) => ys[i]), alpha)];
    }
    return [xs, ema(ys, alpha)];
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// runs: [{id, name}]; tick: asked again when it changes (the page's live
// updates, useLiveRuns); live: their stream's state, shown when given.
export function MetricChart({ runs, metric, height = 320, tick = 0, live }) {
  const box = useRef(null);
  const plot = useRef(null);
  const [byTime, setByTime] = useState(false);
  const [alpha, setAlpha] = useState(0);
  const [range, setRange] = useState(null); // the zoom, asked of the server
  const [info, setInfo] = useState('');
  const [error, setError] = useState('');
  const [series, setSeries] = useState(null);
  const timed = useRef(null); // the series whose fetch-to-draw time is shown
  // the axes' colours come from CSS variables: redraw when the scheme turns
  const [scheme, setScheme] = useState(0);
  useEffect(() => {
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const f = () => setScheme((n) => n + 1);
    mq.addEventListener('change', f);
    return () => mq.removeEventListener('change', f);
  }, []);

  const width = () => Math.max(300, box.current?.clientWidth || 800);
  useEffect(() => {
    if (!metric || !runs.length) return;
    let current = true;
    const t0 = performance.now();
    box.current.dataset.state = 'loading';
    sampled(runs, metric, Math.min(MAX_POINTS, width() * 2), range, byTime)
      .then((s) => current && setSeries({ s, t0, range }))
      .catch((e) => current && setError(e.message));
    return () => (current = false);
  }, [runs.map((r) => r.id).join(','), metric, range, tick]);

  useEffect(() => {
    if (!series) return;
    const data = uPlot.join(tables(series.s, byTime, alpha));
    const axis = { stroke: cssVar('--fg'), grid: { stroke: cssVar('--grid') }, ticks: { stroke: cssVar('--grid') } };
    const opts = {
      width: width(),
      height,
      scales: { x: { time: byTime } },
      axes: [axis, axis],
      series: [{ label: byTime ? 'time' : 'step' }, ...runs.map((r, i) => ({ label: r.name || r.id, stroke: COLORS[i % COLORS.length], width: 1, spanGaps: true, points: { show: false } }))],
      cursor: { drag: { x: true, y: false } },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const lo = u.posToVal(u.select.left, 'x'), hi = u.posToVal(u.select.left + u.select.width, 'x');
            setRange([lo, hi]); // the server samples this range only
          },
        ],
      },
    };
    plot.current?.destroy();
    box.current.innerHTML = '';
    plot.current = new uPlot(opts, data, box.current);
    plot.current.over.addEventListener('dblclick', () => setRange(null));
    box.current.dataset.state = 'drawn';
    box.current.dataset.scheme = matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    if (timed.current === series) return;
    timed.current = series;
    const ms = performance.now() - series.t0;
    const sum = (f) => series.s.reduce((a, s) => a + (f(s) || 0), 0);
    const total = sum((s) => s.total_points), drawn = sum((s) => s.metrics?.length);
    const inRange = series.range ? ` in the zoomed range (${sum((s) => s.range_points).toLocaleString()} there)` : '';
    box.current.dataset.ms = ms.toFixed(0);
    box.current.dataset.drawn = drawn;
    setInfo(`${drawn.toLocaleString()} of ${total.toLocaleString()} points${inRange}, ${ms.toFixed(0)} ms`);
  }, [series, byTime, alpha, scheme]);
  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure class="chart">
      <figcaption>
        <strong>{metric}</strong>
        <label>
          x{' '}
          <select value={byTime ? 'time' : 'step'} onChange={(e) => (setByTime(e.target.value === 'time'), setRange(null))}>
            <option value="step">step</option>
            <option value="time">time</option>
          </select>
        </label>
        <label>
          smoothing <input type="range" min="0" max="0.99" step="0.01" value={alpha} onInput={(e) => setAlpha(Number(e.target.value))} />
        </label>
        <span class="muted" data-testid="chart-info">{info}</span>
        {live !== undefined && (
          <span class="muted" data-testid="chart-live" data-live={live}>
            {live === 'open' ? 'live' : live && live !== 'closed' ? `live updates: ${live}` : ''}
          </span>
        )}
        {range && <button class="link" onClick={() => setRange(null)}>zoom out</button>}
      </figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={box} class="plot" data-testid="chart" aria-label={`chart of ${metric}`} role="img" />
    </figure>
  );
}
