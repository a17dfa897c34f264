// The experiments: one page of search_experiments (1000, the verb's default).
import { useEffect, useState } from 'preact/hooks';
import { fmtTime, tracking } from './api.js';
import { Link } from './router.jsx';

export function Experiments() {
  const [exps, setExps] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => {
    tracking('search_experiments', { max_results: 1000 })
      .then((r) => setExps(r.experiments || []))
      .catch((e) => setError(e.message));
  }, []);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!exps) return <p aria-busy="true">Loading experiments…</p>;
  return (
    <section>
      <h1>Experiments</h1>
      <table class="plain">
        <thead>
          <tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Created</th></tr>
        </thead>
        <tbody>
          {exps.map((e) => (
            <tr key={e.experiment_id}>
              <td><Link href={`/experiments/${encodeURIComponent(e.experiment_id)}`}>{e.name}</Link></td>
              <td>{e.experiment_id}</td>
              <td>{fmtTime(e.creation_time)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
