// Hooks shared by the pages: a fetch that redraws, and polling.
import { useEffect, useRef, useState } from 'preact/hooks';

// {data, error, reload}: fn() once, and again when deps change or reload()
// is called. A stale answer (deps changed meanwhile) is dropped.
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: '' });
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let live = true;
    fn().then(
      (data) => live && setState({ data, error: '' }),
      (e) => live && setState((s) => ({ data: s.data, error: e.message }))
    );
    return () => (live = false);
  }, [...deps, gen]);
  return { ...state, reload: () => setGen((g) => g + 1) };
}

// Calls fn every ms (first at once) until it returns false or the component
// goes; one call at a time: the next is timed from the end of the last.
export function usePoll(fn, ms, deps) {
  const f = useRef(fn);
  f.current = fn;
  useEffect(() => {
    let timer, live = true;
    const tick = async () => {
      let more = true;
      try {
        more = (await f.current()) !== false;
      } catch {
        more = true; // the page shows the error; keep trying
      }
      if (live && more) timer = setTimeout(tick, ms);
    };
    tick();
    return () => ((live = false), clearTimeout(timer));
  }, deps);
}
