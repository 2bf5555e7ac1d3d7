// The admin UI: every call goes to this server's JSON API with the key from session storage.
// Everything shown is set as text, never as HTML.
const KEY = "imgproxy-gateway.key";
const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY);
}

async function api(path) {
  let answer;
  try {
    answer = await fetch(path, { headers: { "X-API-Key": key() || "" } });
  } catch (e) {
    throw new Error("the gateway cannot be reached: " + e.message);
  }
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const message = body && body.error ? body.error.message : "HTTP " + answer.status;
    const error = new Error(message);
    error.status = answer.status;
    throw error;
  }
  return body;
}

/// The user a key belongs to: `imgproxy_<user>_<secret>`, or the legacy key's user.
function userOf(k) {
  const m = /^imgproxy_(.+)_[A-Za-z0-9]+$/.exec(k);
  return m ? m[1] : "legacy";
}

function show(page) {
  for (const id of ["login", "overview", "backends"]) {
    $(id).hidden = id !== page;
  }
}

async function login(k) {
  sessionStorage.setItem(KEY, k);
  try {
    const user = await api("/api/v1/users/" + encodeURIComponent(userOf(k)));
    $("who").textContent = user.id + " (" + user.role + ")";
    $("nav").hidden = false;
    $("login-error").textContent = "";
    route();
  } catch (e) {
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = e.status === 401 ? "This key is not valid." : e.message;
  }
}

function percent(x) {
  return (100 * x).toFixed(2) + " %";
}

async function overview() {
  try {
    const m = await api("/api/v1/metrics");
    const healthy = m.backends.filter((b) => b.healthy).length;
    $("m-total").textContent = String(m.requests.total);
    $("m-errors").textContent = percent(m.requests.error_rate);
    $("m-p95").textContent = (1000 * m.latency_seconds.p95).toFixed(1) + " ms";
    $("m-backends").textContent = healthy + " / " + m.backends.length;
    $("m-redis").textContent = String(m.limits.redis);
    $("m-uptime").textContent = m.uptime_seconds + " s";
    $("overview-error").textContent = "";
  } catch (e) {
    $("overview-error").textContent = e.message;
  }
}

async function backends() {
  try {
    const { backends } = await api("/api/v1/backends");
    const rows = backends.map((b) => {
      const tr = document.createElement("tr");
      for (const value of [b.url, b.weight, b.healthy ? "yes" : "no", b.requests]) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.append(td);
      }
      return tr;
    });
    $("backend-rows").replaceChildren(...rows);
    $("backends-error").textContent = "";
  } catch (e) {
    $("backends-error").textContent = e.message;
  }
}

let timer = null;

function route() {
  clearInterval(timer);
  if (!key()) {
    show("login");
    return;
  }
  const page = location.hash === "#backends" ? "backends" : "overview";
  show(page);
  const refresh = page === "backends" ? backends : overview;
  refresh();
  timer = setInterval(refresh, 5000);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  login($("key").value.trim());
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  $("nav").hidden = true;
  $("key").value = "";
  route();
});
window.addEventListener("hashchange", route);
if (key()) {
  login(key());
} else {
  route();
}
