// A small uPlot chart of polled samples over time: made once per set of
// series, then given new data (setData) as samples arrive.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// series: [{label, stroke, dash}]; data: [[t (s)], [y]...]
export function LiveChart({ title, unit, series, data, height = 220, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  const key = series.map((s) => s.label).join('|');
  useEffect(() => {
    const axis = { stroke: cssVar('--fg'), grid: { stroke: cssVar('--grid') }, ticks: { stroke: cssVar('--grid') } };
    plot.current?.destroy();
    plot.current = new uPlot(
      {
        width: Math.max(300, box.current.clientWidth || 600),
        height,
        scales: { x: { time: true } },
        axes: [axis, { ...axis, label: unit, size: 60 }],
        series: [{ label: 'time' }, ...series.map((s) => ({ label: s.label, stroke: s.stroke, dash: s.dash, width: 1.5, spanGaps: true, points: { show: false } }))],
      },
      data,
      box.current
    );
    return () => (plot.current?.destroy(), (plot.current = null));
  }, [key, height]);
  useEffect(() => {
    plot.current?.setData(data);
    box.current.dataset.samples = data[0].length;
  }, [data]);
  return (
    <figure class="chart">
      <figcaption><strong>{title}</strong></figcaption>
      <div ref={box} class="live" data-testid={testid} role="img" aria-label={`chart of ${title}`} />
    </figure>
  );
}
