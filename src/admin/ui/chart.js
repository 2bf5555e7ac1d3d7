// A small line chart drawn as SVG (no library): the last samples of one series.
const NS = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 80;

/// Draws `values` (numbers or null for gaps) into the <svg> `svg`, labelled with `format`; the
/// scale reaches at least `floor`, so that a flat line at zero does not fill the chart.
export function draw(svg, values, format, floor) {
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(...known, floor);
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  const points = [];
  values.forEach((v, i) => {
    if (v !== null && Number.isFinite(v)) {
      points.push((i * step).toFixed(1) + "," + (HEIGHT - (v / top) * (HEIGHT - 12)).toFixed(1));
    }
  });
  svg.setAttribute("viewBox", "0 0 " + WIDTH + " " + HEIGHT);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "series");
  const base = document.createElementNS(NS, "line");
  for (const [name, value] of [["x1", 0], ["y1", HEIGHT], ["x2", WIDTH], ["y2", HEIGHT]]) {
    base.setAttribute(name, value);
  }
  base.setAttribute("class", "axis");
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  label.setAttribute("class", "scale");
  label.textContent = "max " + format(top);
  svg.replaceChildren(base, line, label);
  const last = known.length ? format(known[known.length - 1]) : "no data yet";
  svg.setAttribute("aria-label", svg.dataset.title + ": " + last);
}

/// The quantile `q` of the requests between two polls, from cumulative `[bound, count]` buckets.
export function windowQuantile(before, after, q) {
  if (!before) {
    return null;
  }
  const previous = new Map(before.buckets.map(([bound, count]) => [bound, count]));
  const total = after.count - before.count;
  if (total <= 0) {
    return null;
  }
  const rank = q * total;
  let [lower, below] = [0, 0];
  for (const [bound, count] of after.buckets) {
    const inside = count - (previous.get(bound) || 0);
    if (inside >= rank) {
      const share = inside === below ? 1 : (rank - below) / (inside - below);
      return lower + (bound - lower) * share;
    }
    [lower, below] = [bound, inside];
  }
  return lower;
}
