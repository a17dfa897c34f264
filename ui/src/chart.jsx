// A metric's history for one or many runs, from the server's sampled history
// (get_metric_history_sampled: each bucket's min and max, so no spike is
// lost), drawn by uPlot on a canvas. Zooming (drag across the chart) asks
// the server again with more points, so the zoomed range is as fine as the
// screen; double-click zooms out. x by step or time; EMA smoothing.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { tracking } from './api.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const MAX_POINTS = 100000; // the verb's limit

async function sampled(runs, key, points) {
  return Promise.all(
    runs.map((r) =>
      tracking('get_metric_history_sampled', { run_id: r.id, keys: [key], max_points: points }).then((j) => j.series?.[0] || { metrics: [], total_points: 0 })
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

export function MetricChart({ runs, metric, height = 320 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const [byTime, setByTime] = useState(false);
  const [alpha, setAlpha] = useState(0);
  const [points, setPoints] = useState(0); // 0: the chart's width in pixels × 2
  const [info, setInfo] = useState('');
  const [error, setError] = useState('');
  const [series, setSeries] = useState(null);
  const zoom = useRef(null);
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
    let live = true;
    const t0 = performance.now();
    box.current.dataset.state = 'loading';
    sampled(runs, metric, Math.min(MAX_POINTS, points || width() * 2))
      .then((s) => live && setSeries({ s, t0 }))
      .catch((e) => live && setError(e.message));
    return () => (live = false);
  }, [runs.map((r) => r.id).join(','), metric, points]);

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
            const full = u.data[0][u.data[0].length - 1] - u.data[0][0];
            zoom.current = [lo, hi];
            // finer: as many points in the zoomed range as the screen has pixels
            const want = Math.ceil((width() * 2 * full) / Math.max(hi - lo, 1e-9));
            if (want > (points || width() * 2) && !byTime) setPoints(Math.min(MAX_POINTS, want));
          },
        ],
      },
    };
    plot.current?.destroy();
    box.current.innerHTML = '';
    plot.current = new uPlot(opts, data, box.current);
    if (zoom.current) plot.current.setScale('x', { min: zoom.current[0], max: zoom.current[1] });
    plot.current.over.addEventListener('dblclick', () => {
      zoom.current = null;
      setPoints(0);
    });
    box.current.dataset.state = 'drawn';
    box.current.dataset.scheme = matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    if (timed.current === series) return;
    timed.current = series;
    const ms = performance.now() - series.t0;
    const total = series.s.reduce((a, s) => a + (s.total_points || 0), 0);
    const drawn = series.s.reduce((a, s) => a + (s.metrics?.length || 0), 0);
    box.current.dataset.ms = ms.toFixed(0);
    setInfo(`${drawn.toLocaleString()} of ${total.toLocaleString()} points, ${ms.toFixed(0)} ms`);
  }, [series, byTime, alpha, scheme]);
  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure class="chart">
      <figcaption>
        <strong>{metric}</strong>
        <label>
          x{' '}
          <select value={byTime ? 'time' : 'step'} onChange={(e) => setByTime(e.target.value === 'time')}>
            <option value="step">step</option>
            <option value="time">time</option>
          </select>
        </label>
        <label>
          smoothing <input type="range" min="0" max="0.99" step="0.01" value={alpha} onInput={(e) => setAlpha(Number(e.target.value))} />
        </label>
        <span class="muted" data-testid="chart-info">{info}</span>
      </figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={box} class="plot" data-testid="chart" aria-label={`chart of ${metric}`} role="img" />
    </figure>
  );
}
