// The JSON API of this listener, with the key from session storage (never local storage, never
// a cookie), and small helpers that put text, never HTML, on the page.
const KEY = "imgproxy-gateway.key";

export const $ = (id) => document.getElementById(id);

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(k) {
  sessionStorage.setItem(KEY, k);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/// The user a key belongs to: `imgproxy_<user>_<secret>`, or the legacy key's user.
export function userOf(k) {
  const m = /^imgproxy_(.+)_[A-Za-z0-9]+$/.exec(k || "");
  return m ? m[1] : "legacy";
}

/// Calls the API; a refusal throws an Error with `status` and the API's `field`.
export async function api(path, method = "GET", body = undefined) {
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
    throw new Error("The gateway cannot be reached (" + e.message + ").");
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

/// An element with text content and attributes.
export function el(tag, text = "", attributes = {}) {
  const node = document.createElement(tag);
  node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  return node;
}

/// A table row: strings become text cells, elements are put in a cell as they are.
export function row(values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const td = document.createElement("td");
    if (value instanceof Node) {
      td.append(value);
    } else {
      td.textContent = value === null || value === undefined ? "" : String(value);
    }
    tr.append(td);
  }
  return tr;
}

/// Shows `error` at the element `prefix + error.field` when the form has one, else at `fallback`.
export function showError(error, prefix, fallback) {
  const field = error.field ? String(error.field).replace(/\[\d+\]$/, "") : "";
  const at = (field && $(prefix + field)) || $(fallback);
  at.textContent = error.message;
}

/// Empties every error line of `form`.
export function clearErrors(form) {
  for (const line of form.querySelectorAll(".error")) {
    line.textContent = "";
  }
}

/// Asks through the page's confirmation dialog; resolves true when confirmed.
export function confirmed(question, action) {
  const dialog = $("confirm");
  $("confirm-question").textContent = question;
  $("confirm-yes").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

/// Shows a key once in the panel `id` (with its `-value` field and copy button).
export function showKeyOnce(id, k) {
  $(id + "-value").value = k;
  $(id + "-copied").textContent = "";
  $(id).hidden = false;
}

export async function copyFrom(id) {
  const field = $(id + "-value");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    $(id + "-copied").textContent = "Copied.";
  } catch (e) {
    $(id + "-copied").textContent = "Select the key and copy it (the browser refused the clipboard).";
  }
}

export function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

/// The name, email and role fields (label, control, error line) of both user forms, in each
/// `.person` placeholder: ids `<data-ids>name`…, error lines `<data-errors>name`….
export function personFields() {
  for (const place of document.querySelectorAll(".person")) {
    const { ids, errors } = place.dataset;
    const fields = [];
    for (const [name, label, type] of [["name", "Name", "text"], ["email", "Email", "email"], ["role", "Role", null]]) {
      fields.push(el("label", label, { for: ids + name }));
      let control;
      if (type) {
        control = el("input", "", { id: ids + name, name, type, required: "" });
      } else {
        control = el("select", "", { id: ids + name, name });
        control.append(...["user", "viewer", "admin"].map((role) => el("option", role, { value: role })));
      }
      fields.push(control, el("p", "", { id: errors + name, class: "error" }));
    }
    place.replaceWith(...fields);
  }
}
