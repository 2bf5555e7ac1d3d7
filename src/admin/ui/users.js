// The users list (searched and paged on the server) and the create form.
import { $, api, clearErrors, el, row, showError, showKeyOnce } from "./api.js";

const PAGE = 20;
let next = null;

function link(id) {
  return el("a", id, { href: "#user/" + encodeURIComponent(id) });
}

/// The first page of users matching the search and filters, or (`more`) the next one.
export async function users(more) {
  let path = "/api/v1/users?limit=" + PAGE + "&q=" + encodeURIComponent($("users-q").value.trim());
  for (const filter of ["status", "role"]) {
    const value = $("users-" + filter).value;
    if (value) {
      path += "&" + filter + "=" + value;
    }
  }
  if (more && next) {
    path += "&after=" + encodeURIComponent(next);
  }
  try {
    const page = await api(path);
    const rows = page.users.map((u) => row([link(u.id), u.name, u.email, u.role, u.status]));
    if (more) {
      $("user-rows").append(...rows);
    } else {
      $("user-rows").replaceChildren(...rows);
    }
    next = page.next;
    $("users-next").hidden = !next;
    $("users-error").textContent = "";
  } catch (e) {
    $("users-error").textContent = e.message;
  }
}

const FIELDS = ["id", "name", "email", "role"];

export async function createUser() {
  const form = $("create-user");
  clearErrors(form);
  const user = {};
  for (const field of FIELDS) {
    user[field] = $("new-" + field).value.trim();
  }
  try {
    const created = await api("/api/v1/users", "POST", user);
    showKeyOnce("new-key", created.api_key.key);
    form.reset();
    users(false);
  } catch (e) {
    showError(e, "err-", "create-error");
  }
}
