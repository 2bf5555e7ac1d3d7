// The backends, audit and configuration pages: server-side filters and paging, text only.
import { $, api, el, row, when } from "./api.js";

function yes(flag) {
  return flag ? "yes" : "no";
}

export async function backends() {
  try {
    const { backends } = await api("/api/v1/backends");
    const rows = backends.map((b) =>
      row([b.url, b.weight, yes(b.healthy), b.passively_down ? "marked down" : "–",
        b.last_check ? when(b.last_check) + (b.last_check_ok ? " (ok)" : " (failed)") : "not yet",
        b.response_time_ms === null ? "–" : b.response_time_ms.toFixed(1) + " ms",
        b.requests, b.connect_failures]));
    $("backend-rows").replaceChildren(...rows);
    $("backends-error").textContent = "";
  } catch (e) {
    $("backends-error").textContent = e.message;
  }
}

const AUDIT_PAGE = 50;
let auditBefore = null;

/// The newest audit entries matching the filter, or (`more`) the page before them.
export async function audit(more) {
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
    const rows = entries.map((e) =>
      row([when(e.at), e.actor, e.action, e.target, e.detail ? JSON.stringify(e.detail) : "", e.request_id || ""]));
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

/// Whether `path` (e.g. `rate_limits.user_level`) is at or under a reloadable setting.
function reloads(path, reloadable) {
  return reloadable.some((live) => path === live || path.startsWith(live + ".") || path.startsWith(live + "["));
}

/// The leaves of the configuration as `[path, value]`.
function leaves(value, path, out) {
  if (value !== null && typeof value === "object" && Object.keys(value).length > 0) {
    for (const [name, inner] of Object.entries(value)) {
      const next = Array.isArray(value) ? path + "[" + name + "]" : path ? path + "." + name : name;
      leaves(inner, next, out);
    }
  } else {
    out.push([path, value]);
  }
  return out;
}

export async function configuration() {
  try {
    const { config, reloadable } = await api("/api/v1/config");
    const rows = leaves(config, "", []).map(([path, value]) =>
      row([el("code", path), JSON.stringify(value), reloads(path, reloadable) ? "reloads" : "restart"]));
    $("config-rows").replaceChildren(...rows);
    $("config-reloadable").textContent = reloadable.join(", ");
    $("config-error").textContent = "";
  } catch (e) {
    $("config-error").textContent = e.message;
  }
}
