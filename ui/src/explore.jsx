// Compare's two small SVG views of the runs' latest values: a scatter of a
// metric against a param (categorical x with jitter unless every value is
// a number), and parallel coordinates (one axis per chosen key, one
// polyline per run). No chart library.
import { useRef, useState } from 'preact/hooks';
import { fmtNum } from './api.js';
import { COLORS } from './livechart.jsx'; // the charts' colours: a run is one colour on the page

const color = (i) => COLORS[i % COLORS.length];

// An axis over values (strings or numbers): numeric when all parse, else
// categories in order. pos(v) in [0, 1]; ticks [[label, pos]].
export function axisOf(values) {
  const present = values.filter((v) => v !== undefined && v !== null && v !== '');
  const nums = present.map(Number);
  if (present.length && nums.every(Number.isFinite)) {
    const lo = Math.min(...nums), hi = Math.max(...nums), span = hi - lo || 1;
    const pos = (v) => (v === undefined || v === null || v === '' ? null : (Number(v) - lo) / span);
    return { numeric: true, pos, ticks: hi === lo ? [[fmtNum(lo), 0.5]] : [[fmtNum(lo), 0], [fmtNum(hi), 1]], fix: hi === lo };
  }
  const cats = [...new Set(present.map(String))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  const pos = (v) => (v === undefined || v === null || v === '' ? null : at(cats.indexOf(String(v))));
  return { numeric: false, pos, ticks: cats.map((c, i) => [c, at(i)]), cats };
}

// A fixed jitter per run (its index), in [-0.5, 0.5).
const jitter = (i) => (((i * 2654435761) >>> 0) % 1000) / 1000 - 0.5;

export function Scatter({ runs, metrics, params, mkeys, pkeys }) {
  const [m, setM] = useState(mkeys[0] || '');
  const [p, setP] = useState(pkeys[0] || '');
  const W = 460, H = 260, L = 56, R = 16, T = 12, B = 40, w = W - L - R, h = H - T - B;
  const xs = axisOf(params.map((x) => x[p]));
  const ys = axisOf(metrics.map((x) => x[m]));
  const band = xs.numeric ? 0 : 0.6 / Math.max(2, xs.ticks.length);
  const px = (v) => (xs.fix ? 0.5 : v) * w + L;
  const pts = runs
    .map((r, i) => {
      const x = xs.pos(params[i][p]), y = ys.pos(metrics[i][m]);
      if (x === null || y === null) return null;
      return { i, r, x: px(xs.numeric ? x : x * (1 - band * 2) + band + jitter(i) * band), y: T + h - (ys.fix ? 0.5 : y) * h };
    })
    .filter(Boolean);
  return (
    <figure class="explore">
      <figcaption class="toolbar">
        <label>metric <select aria-label="scatter metric" value={m} onChange={(e) => setM(e.target.value)}>{mkeys.map((k) => <option key={k}>{k}</option>)}</select></label>
        <label>against param <select aria-label="scatter param" value={p} onChange={(e) => setP(e.target.value)}>{pkeys.map((k) => <option key={k}>{k}</option>)}</select></label>
        <span class="muted">{pts.length} of {runs.length} runs; x {xs.numeric ? 'numeric' : 'categorical (jittered)'}</span>
      </figcaption>
      <svg class="explore" data-testid="scatter" data-x={xs.numeric ? 'numeric' : 'categorical'} width={W} height={H} role="img" aria-label={`${m} against ${p}`}>
        <line class="axis" x1={L} y1={T + h} x2={L + w} y2={T + h} />
        <line class="axis" x1={L} y1={T} x2={L} y2={T + h} />
        {xs.ticks.map(([t, v]) => (
          <text key={'x' + t} x={xs.numeric ? px(v) : px(v * (1 - band * 2) + band)} y={T + h + 14} text-anchor="middle">{t}</text>
        ))}
        {ys.ticks.map(([t, v]) => (
          <text key={'y' + t} x={L - 4} y={T + h - (ys.fix ? 0.5 : v) * h + 4} text-anchor="end">{t}</text>
        ))}
        <text x={L + w / 2} y={H - 4} text-anchor="middle" class="muted">{p}</text>
        {pts.map(({ i, r, x, y }) => (
          <circle key={r.info.run_id} class="pt" cx={x} cy={y} r="5" fill={color(i)}>
            <title>{`${r.info.run_name || r.info.run_id}: ${p}=${params[i][p]}, ${m}=${fmtNum(metrics[i][m])}`}</title>
          </circle>
        ))}
      </svg>
    </figure>
  );
}

export function Parallel({ runs, metrics, params, mkeys, pkeys }) {
  const all = [...pkeys.map((k) => 'param:' + k), ...mkeys.map((k) => 'metric:' + k)];
  const [axes, setAxes] = useState(() => [...pkeys.slice(0, 2).map((k) => 'param:' + k), ...mkeys.slice(0, 3).map((k) => 'metric:' + k)]);
  const value = (i, a) => (a.startsWith('param:') ? params[i][a.slice(6)] : metrics[i][a.slice(7)]);
  const chosen = all.filter((a) => axes.includes(a));
  const scales = chosen.map((a) => axisOf(runs.map((_, i) => value(i, a))));
  const W = Math.max(360, chosen.length * 130), H = 260, T = 24, B = 24, X0 = 50, h = H - T - B;
  const ax = (j) => (chosen.length === 1 ? W / 2 : X0 + (j * (W - 2 * X0)) / (chosen.length - 1));
  const ay = (s, v) => T + h - (s.fix ? 0.5 : v) * h;
  // brushing: drag along an axis to keep the runs whose value lies in the
  // range (every brushed axis at once); a click on an axis clears its brush
  const [brush, setBrush] = useState({}); // axis -> [lo, hi], 0..1 up the axis
  const drag = useRef(null);
  const posOf = (i, j) => { const v = scales[j].pos(value(i, chosen[j])); return v === null ? null : scales[j].fix ? 0.5 : v; };
  const kept = runs.map((_, i) => chosen.every((a, j) => !brush[a] || (posOf(i, j) !== null && posOf(i, j) >= brush[a][0] && posOf(i, j) <= brush[a][1])));
  const vAt = (e) => Math.min(1, Math.max(0, (T + h - (e.clientY - e.currentTarget.ownerSVGElement.getBoundingClientRect().top)) / h));
  const brushing = (a) => ({
    onPointerDown: (e) => (e.currentTarget.setPointerCapture(e.pointerId), (drag.current = { a, v0: vAt(e), moved: false })),
    onPointerMove: (e) => {
      const d = drag.current;
      if (!d || d.a !== a) return;
      const v = vAt(e);
      d.moved ||= Math.abs(v - d.v0) > 0.01;
      if (d.moved) setBrush((b) => ({ ...b, [a]: [Math.min(d.v0, v), Math.max(d.v0, v)] }));
    },
    onPointerUp: () => {
      if (drag.current && !drag.current.moved) setBrush(({ [a]: _, ...rest }) => rest);
      drag.current = null;
    },
  });
  const nkept = kept.filter(Boolean).length;
  return (
    <figure class="explore">
      <figcaption>
        <details class="chooser">
          <summary>Axes ({chosen.length})</summary>
          <fieldset>
            <legend class="sr">axes</legend>
            {all.map((a) => (
              <label key={a}>
                <input type="checkbox" checked={axes.includes(a)} onChange={(e) => setAxes(e.target.checked ? [...axes, a] : axes.filter((x) => x !== a))} /> {a}
              </label>
            ))}
          </fieldset>
        </details>{' '}
        <span class="muted" data-testid="parallel-kept" role="status">
          {Object.keys(brush).some((a) => chosen.includes(a)) ? `${nkept} of ${runs.length} runs in the brushed ranges` : 'drag along an axis to brush'}
        </span>
      </figcaption>
      <svg class="explore" data-testid="parallel" width={W} height={H} role="img" aria-label={`parallel coordinates of ${chosen.join(', ')}`}>
        {runs.map((r, i) => {
          const pts = chosen.map((a, j) => { const v = scales[j].pos(value(i, a)); return v === null ? null : `${ax(j)},${ay(scales[j], v)}`; });
          return (
            <polyline key={r.info.run_id} class={kept[i] ? 'run' : 'run dim'} points={pts.filter(Boolean).join(' ')} stroke={color(i)} fill="none">
              <title>{r.info.run_name || r.info.run_id}</title>
            </polyline>
          );
        })}
        {chosen.map((a, j) => (
          <g key={a} class="axis" data-axis={a}>
            <line x1={ax(j)} y1={T} x2={ax(j)} y2={T + h} />
            <text x={ax(j)} y={T - 8} text-anchor="middle">{a.replace(/^\w+:/, '')}</text>
            {scales[j].ticks.map(([t, v]) => <text key={t} class="tick" x={ax(j) + 4} y={ay(scales[j], v) + 4}>{t}</text>)}
            {brush[a] && <rect class="brush" x={ax(j) - 8} width="16" y={T + h - brush[a][1] * h} height={(brush[a][1] - brush[a][0]) * h} />}
            <rect class="brush-area" x={ax(j) - 12} width="24" y={T} height={h} {...brushing(a)}>
              <title>drag to keep the runs in a range of {a.replace(/^\w+:/, '')}; click to clear</title>
            </rect>
          </g>
        ))}
      </svg>
    </figure>
  );
}
