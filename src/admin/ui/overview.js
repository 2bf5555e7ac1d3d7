// The overview: live request rate, error rate and p95 latency (differences between polls of
// /api/v1/metrics), backends, database and Redis, and the latest quota threshold events.
import { $, api, row, when } from "./api.js";
import { draw, windowQuantile } from "./chart.js";

const SAMPLES = 60;
const series = { rate: [], errors: [], p95: [] };
let previous = null;

function push(list, value) {
  list.push(value);
  if (list.length > SAMPLES) {
    list.shift();
  }
}

function percent(x) {
  return (100 * x).toFixed(2) + " %";
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "–" : (1000 * seconds).toFixed(1) + " ms";
}

function sample(m) {
  const now = { at: performance.now(), total: m.requests.total, failed: m.requests.by_class["5xx"] || 0,
    latency: m.latency_seconds };
  if (previous) {
    const seconds = (now.at - previous.at) / 1000;
    const requests = now.total - previous.total;
    push(series.rate, seconds > 0 ? requests / seconds : null);
    push(series.errors, requests > 0 ? (now.failed - previous.failed) / requests : 0);
    push(series.p95, windowQuantile(previous.latency, now.latency, 0.95));
  }
  previous = now;
  draw($("chart-rate"), series.rate, (v) => v.toFixed(1) + " req/s", 1);
  draw($("chart-errors"), series.errors, percent, 0.01);
  draw($("chart-p95"), series.p95, ms, 0.001);
}

export async function overview() {
  try {
    const m = await api("/api/v1/metrics");
    const healthy = m.backends.filter((b) => b.healthy).length;
    $("m-total").textContent = String(m.requests.total);
    $("m-errors").textContent = percent(m.requests.error_rate);
    $("m-p95").textContent = ms(m.latency_seconds.p95);
    $("m-backends").textContent = healthy + " / " + m.backends.length;
    $("m-database").textContent = String(m.database);
    $("m-redis").textContent = String(m.limits.redis);
    $("m-uptime").textContent = m.uptime_seconds + " s";
    sample(m);
    const events = m.quotas.recent_events.map((e) =>
      row([when(e.at), e.user_id, e.quota, e.percent + " %", e.used + " of " + e.limit, when(e.resets_at)]));
    $("threshold-rows").replaceChildren(...events);
    $("thresholds-none").hidden = events.length > 0;
    $("overview-error").textContent = "";
  } catch (e) {
    $("overview-error").textContent = e.message;
  }
}
