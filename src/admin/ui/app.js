// The admin UI: every call goes to this server's JSON API with the key from session storage.
// Everything shown is set as text, never as HTML.
const KEY = "imgproxy-gateway.key";
const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY);
}

async function api(path, method = "GET", body = undefined) {
  const headers = { "X-API-Key": key() || "" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let answer;
  try {
    answer = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error("the gateway cannot be reached: " + e.message);
  }
  const answered = await answer.json().catch(() => null);
  if (!answer.ok) {
    const problem = answered && answered.error;
    const error = new Error(problem ? problem.message : "HTTP " + answer.status);
    error.status = answer.status;
    error.field = problem ? problem.field : undefined;
    throw error;
  }
  return answered;
}

/// The user a key belongs to: `imgproxy_<user>_<secret>`, or the legacy key's user.
function userOf(k) {
  const m = /^imgproxy_(.+)_[A-Za-z0-9]+$/.exec(k);
  return m ? m[1] : "legacy";
}

function show(page) {
  for (const id of ["login", "overview", "users", "backends", "audit"]) {
    $(id).hidden = id !== page;
  }
}

async function login(k) {
  sessionStorage.setItem(KEY, k);
  try {
    const user = await api("/api/v1/users/" + encodeURIComponent(userOf(k)));
    $("who").textContent = user.id + " (" + user.role + ")";
    // Edit controls only for admins (the server refuses everyone else anyway).
    for (const control of document.querySelectorAll(".admin-only")) {
      control.hidden = user.role !== "admin";
    }
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

/// A table row of text cells.
function row(values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const td = document.createElement("td");
    td.textContent = String(value);
    tr.append(td);
  }
  return tr;
}

async function backends() {
  try {
    const { backends } = await api("/api/v1/backends");
    const rows = backends.map((b) => row([b.url, b.weight, b.healthy ? "yes" : "no", b.requests]));
    $("backend-rows").replaceChildren(...rows);
    $("backends-error").textContent = "";
  } catch (e) {
    $("backends-error").textContent = e.message;
  }
}

const USERS_PAGE = 20;
let usersNext = null;

/// The first page of users matching the search, or (`more`) the next one.
async function users(more) {
  const q = $("users-q").value.trim();
  let path = "/api/v1/users?limit=" + USERS_PAGE + "&q=" + encodeURIComponent(q);
  if (more && usersNext) {
    path += "&after=" + encodeURIComponent(usersNext);
  }
  try {
    const page = await api(path);
    const rows = page.users.map((u) => row([u.id, u.name, u.email, u.role, u.status]));
    if (more) {
      $("user-rows").append(...rows);
    } else {
      $("user-rows").replaceChildren(...rows);
    }
    usersNext = page.next;
    $("users-next").hidden = !usersNext;
    $("users-error").textContent = "";
  } catch (e) {
    $("users-error").textContent = e.message;
  }
}

const AUDIT_PAGE = 50;
let auditBefore = null;

/// The newest audit entries matching the filter, or (`more`) the page before them.
async function audit(more) {
  let path = "/api/v1/audit?limit=" + AUDIT_PAGE;
  for (const field of ["actor", "action", "target"]) {
    const value = $("audit-" + field).value.trim();
    if (value) {
      path += "&" + field + "=" + encodeURIComponent(value);
    }
  }
  if (more && auditBefore !== null) {
    path += "&before=" + auditBefore;
  }
  try {
    const { entries } = await api(path);
    const rows = entries.map((e) => row([e.at, e.actor, e.action, e.target, e.request_id || ""]));
    if (more) {
      $("audit-rows").append(...rows);
    } else {
      $("audit-rows").replaceChildren(...rows);
    }
    auditBefore = entries.length ? entries[entries.length - 1].id : null;
    $("audit-older").hidden = entries.length < AUDIT_PAGE;
    $("audit-error").textContent = "";
  } catch (e) {
    $("audit-error").textContent = e.message;
  }
}

const FIELDS = ["id", "name", "email", "role"];

async function createUser() {
  for (const field of FIELDS) {
    $("err-" + field).textContent = "";
  }
  $("create-error").textContent = "";
  const user = {};
  for (const field of FIELDS) {
    user[field] = $("new-" + field).value.trim();
  }
  try {
    const created = await api("/api/v1/users", "POST", user);
    $("new-key-value").value = created.api_key.key;
    $("copied").textContent = "";
    $("new-key").hidden = false;
    $("create-user").reset();
    users(false);
  } catch (e) {
    const at = e.field && FIELDS.includes(e.field) ? $("err-" + e.field) : $("create-error");
    at.textContent = e.message;
  }
}

async function copyKey() {
  const field = $("new-key-value");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    $("copied").textContent = "Copied.";
  } catch (e) {
    $("copied").textContent = "Select the key and copy it (the browser refused the clipboard).";
  }
}

let timer = null;

function route() {
  clearInterval(timer);
  if (!key()) {
    show("login");
    return;
  }
  const page =
    { "#backends": "backends", "#users": "users", "#audit": "audit" }[location.hash] || "overview";
  show(page);
  if (page === "users" || page === "audit") {
    (page === "users" ? users : audit)(false);
    return;
  }
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
$("users-search").addEventListener("submit", (event) => {
  event.preventDefault();
  users(false);
});
$("users-next").addEventListener("click", () => users(true));
$("create-user").addEventListener("submit", (event) => {
  event.preventDefault();
  createUser();
});
$("copy-key").addEventListener("click", copyKey);
$("audit-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  audit(false);
});
$("audit-older").addEventListener("click", () => audit(true));
window.addEventListener("hashchange", route);
if (key()) {
  login(key());
} else {
  route();
}
