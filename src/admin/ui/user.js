// One user's page: editable fields, status, deletion, quota bars and the keys.
import { $, api, clearErrors, confirmed, el, key, row, setKey, showError, showKeyOnce, userOf, when } from "./api.js";

let shown = null;
let editable = false;

const LIMITS = ["requests_per_minute", "requests_per_hour"];
const QUOTAS = ["monthly_requests", "monthly_bandwidth_mb", "storage_quota_mb", "reset_day"];

/// An IPv4 or IPv6 address or network in CIDR notation; the reason when it is not one.
export function cidrProblem(entry) {
  const [address, prefix, extra] = entry.split("/");
  if (extra !== undefined) {
    return "more than one `/`";
  }
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  const v6 = !v4 && address.includes(":") && /^[0-9A-Fa-f:.]+$/.test(address) && (address.match(/::/g) || []).length <= 1;
  if (!v4 && !v6) {
    return "not an IP address";
  }
  if (v4 && v4.slice(1).some((part) => Number(part) > 255)) {
    return "an IPv4 part is above 255";
  }
  if (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= (v4 ? 32 : 128))) {
    return "the prefix must be 0-" + (v4 ? 32 : 128);
  }
  return null;
}

function whitelistEntries() {
  return $("u-ip_whitelist").value.split(/[\s,]+/).filter((s) => s.length > 0);
}

/// Checks the whitelist as it is typed; whether it is valid.
export function checkWhitelist() {
  const problems = whitelistEntries()
    .map((entry) => [entry, cidrProblem(entry)])
    .filter(([, problem]) => problem);
  $("uerr-ip_whitelist").textContent = problems.map(([entry, problem]) => "`" + entry + "`: " + problem).join("; ");
  $("u-ip_whitelist").setAttribute("aria-invalid", problems.length ? "true" : "false");
  return problems.length === 0;
}

function numbers(prefix, names) {
  const out = {};
  for (const name of names) {
    const value = $("u-" + prefix + name).value.trim();
    if (value !== "") {
      out[name] = Number(value);
    }
  }
  return Object.keys(out).length ? out : null;
}

function fill(user) {
  shown = user;
  $("user-title").textContent = "User " + user.id;
  $("u-name").value = user.name;
  $("u-email").value = user.email;
  $("u-role").value = user.role;
  $("u-status").textContent = user.status;
  $("u-created").textContent = when(user.created_at);
  $("u-ip_whitelist").value = (user.ip_whitelist || []).join("\n");
  for (const name of LIMITS) {
    const value = user.rate_limits && user.rate_limits[name];
    $("u-rate_limits." + name).value = value === null || value === undefined ? "" : value;
  }
  for (const name of QUOTAS) {
    const value = user.quotas && user.quotas[name];
    $("u-quotas." + name).value = value === null || value === undefined ? "" : value;
  }
  $("u-suspend").textContent = user.status === "suspended" ? "Reactivate" : "Suspend";
  // A deleted user stays on record for the audit; nothing about it changes any more.
  const changeable = editable && user.status !== "deleted";
  for (const input of $("user-form").querySelectorAll("input, select, textarea, button")) {
    input.disabled = !changeable;
  }
}

function bar(label, item, unit) {
  const box = el("div", "", { class: "quota" });
  const limit = item.limit;
  const used = item.used;
  const scale = unit === "MiB" ? (n) => (n / 1048576).toFixed(1) + " MiB" : (n) => String(n);
  const text = limit === null ? scale(used) + " used (unlimited)" : scale(used) + " of " + scale(limit);
  const id = "quota-" + label.toLowerCase();
  box.append(el("label", label + ": " + text, { for: id }));
  const meter = el("meter", "", { id, min: 0, max: limit || 1, value: limit === null ? 0 : used,
    high: (limit || 1) * 0.8, optimum: 0 });
  box.append(meter);
  return box;
}

async function quota(id) {
  try {
    const q = await api("/api/v1/users/" + encodeURIComponent(id) + "/quota");
    $("quota-bars").replaceChildren(bar("Requests", q.requests, ""), bar("Bandwidth", q.bandwidth_bytes, "MiB"),
      bar("Storage", q.storage_bytes, "MiB"));
    $("quota-reset-at").textContent = "Period " + when(q.period_start) + " to " + when(q.resets_at) + "; resets " + when(q.resets_at) + ".";
    $("quota-error").textContent = "";
  } catch (e) {
    $("quota-error").textContent = e.message;
  }
}

async function keys(id) {
  try {
    const { keys } = await api("/api/v1/users/" + encodeURIComponent(id) + "/keys");
    const live = keys.filter((k) => k.state === "active" || k.state === "expiring");
    const rows = keys.map((k) => {
      const actions = el("span");
      if (editable && live.includes(k)) {
        const revoke = el("button", "Revoke", { type: "button", class: "revoke", "data-key": k.id });
        revoke.addEventListener("click", () => revokeKey(k));
        actions.append(revoke);
      }
      return row([k.label, el("code", k.id), k.state, when(k.created_at), when(k.expires_at), when(k.last_used_at), actions]);
    });
    $("key-rows").replaceChildren(...rows);
    $("rotate-key").replaceChildren(...live.map((k) => el("option", k.label + " (" + k.id + ")", { value: k.id })));
    $("keys-error").textContent = "";
  } catch (e) {
    $("keys-error").textContent = e.message;
  }
}

/// The user page of `id`; `role` and `self` are the caller's.
export async function user(id, role, self) {
  editable = role === "admin";
  $("user-key").hidden = true;
  clearErrors($("user"));
  for (const control of $("user").querySelectorAll(".admin-only")) {
    control.hidden = !editable;
  }
  // A user may rotate its own keys; a viewer changes nothing.
  $("rotate-form").hidden = !(editable || (role === "user" && self === id));
  try {
    fill(await api("/api/v1/users/" + encodeURIComponent(id)));
    $("user-error").textContent = "";
  } catch (e) {
    $("user-title").textContent = "User " + id;
    $("user-error").textContent = e.message;
    return;
  }
  await Promise.all([quota(id), keys(id)]);
}

function patch() {
  return {
    name: $("u-name").value.trim(),
    email: $("u-email").value.trim(),
    role: $("u-role").value,
    ip_whitelist: whitelistEntries(),
    rate_limits: numbers("rate_limits.", LIMITS),
    quotas: numbers("quotas.", QUOTAS),
  };
}

async function change(body, done) {
  clearErrors($("user-form"));
  $("user-saved").textContent = "";
  try {
    fill(await api("/api/v1/users/" + encodeURIComponent(shown.id), "PUT", body));
    $("user-saved").textContent = done;
  } catch (e) {
    showError(e, "uerr-", "user-form-error");
  }
}

export async function save() {
  if (checkWhitelist()) {
    await change(patch(), "Saved.");
    await quota(shown.id);
  }
}

export async function suspend() {
  const suspended = shown.status === "suspended";
  await change({ status: suspended ? "active" : "suspended" }, suspended ? "Reactivated." : "Suspended.");
}

export async function remove() {
  if (!(await confirmed("Delete user " + shown.id + "? Its keys stop working at once.", "Delete user"))) {
    return;
  }
  try {
    await api("/api/v1/users/" + encodeURIComponent(shown.id), "DELETE");
    location.hash = "#users";
  } catch (e) {
    $("user-form-error").textContent = e.message;
  }
}

export async function resetQuota() {
  if (!(await confirmed("Reset the quota of " + shown.id + " for this period?", "Reset quota"))) {
    return;
  }
  try {
    await api("/api/v1/users/" + encodeURIComponent(shown.id) + "/quota/reset", "POST");
    await quota(shown.id);
  } catch (e) {
    $("quota-error").textContent = e.message;
  }
}

async function revokeKey(k) {
  if (!(await confirmed("Revoke key " + k.label + " (" + k.id + ")? It stops working at once.", "Revoke key"))) {
    return;
  }
  try {
    await api("/api/v1/users/" + encodeURIComponent(shown.id) + "/keys/" + encodeURIComponent(k.id), "DELETE");
    await keys(shown.id);
  } catch (e) {
    $("keys-error").textContent = e.message;
  }
}

export async function createKey() {
  clearErrors($("key-form"));
  const body = {};
  const label = $("k-label").value.trim();
  if (label) {
    body.label = label;
  }
  try {
    const created = await api("/api/v1/users/" + encodeURIComponent(shown.id) + "/keys", "POST", body);
    showKeyOnce("user-key", created.key);
    $("key-form").reset();
    await keys(shown.id);
  } catch (e) {
    showError(e, "kerr-", "key-form-error");
  }
}

export async function rotateKey() {
  clearErrors($("rotate-form"));
  const body = { grace_seconds: Number($("rotate-grace").value) };
  if ($("rotate-key").value) {
    body.key_id = $("rotate-key").value;
  }
  try {
    const rotated = await api("/api/v1/users/" + encodeURIComponent(shown.id) + "/keys/rotate", "POST", body);
    showKeyOnce("user-key", rotated.new.key);
    // Rotating one's own key: this tab goes on with the new one.
    if (userOf(key()) === shown.id) {
      setKey(rotated.new.key);
    }
    $("rotate-done").textContent = "The old key works until " + when(rotated.old.expires_at) + ".";
    await keys(shown.id);
  } catch (e) {
    showError(e, "rerr-", "rotate-error");
  }
}
