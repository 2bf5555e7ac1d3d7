// The admin UI's entry: login, the page for the address's #fragment, and the controls' wiring.
// Every call goes to this server's JSON API with the key kept in sessionStorage; everything
// shown is set as text, never as HTML.
import { $, api, copyFrom, forgetKey, key, personFields, setKey, userOf } from "./api.js";
import { audit, backends, configuration } from "./lists.js";
import { overview } from "./overview.js";
import * as user from "./user.js";
import { createUser, users } from "./users.js";

const PAGES = ["login", "overview", "users", "user", "backends", "audit", "config"];
let caller = null;
let timer = null;

let moved = false;

function show(page) {
  for (const id of PAGES) {
    $(id).hidden = id !== page;
  }
  // After a move to another page, its heading takes the focus, so keyboard and screen reader
  // users land on it (the browser would leave it on the page's body).
  if (moved) {
    const heading = $(page).querySelector("h2");
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
    moved = false;
  }
  for (const link of $("nav").querySelectorAll("a")) {
    const current = link.getAttribute("href") === "#" + page || (page === "user" && link.getAttribute("href") === "#users");
    if (current) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
}

async function login(k) {
  setKey(k);
  try {
    caller = await api("/api/v1/users/" + encodeURIComponent(userOf(k)));
    $("who").textContent = caller.id + " (" + caller.role + ")";
    // Edit controls only for admins (the server refuses everyone else anyway).
    for (const control of document.querySelectorAll(".admin-only")) {
      control.hidden = caller.role !== "admin";
    }
    // A `user` sees only its own record.
    for (const link of document.querySelectorAll(".staff-only")) {
      link.hidden = caller.role === "user";
    }
    $("nav").hidden = false;
    $("login-error").textContent = "";
    route();
  } catch (e) {
    forgetKey();
    caller = null;
    $("login-error").textContent = e.status === 401 ? "This key is not valid." : e.message;
  }
}

function logout() {
  forgetKey();
  caller = null;
  $("nav").hidden = true;
  $("key").value = "";
  location.hash = "";
  route();
}

function every(refresh) {
  refresh();
  timer = setInterval(refresh, 5000);
}

function route() {
  clearInterval(timer);
  if (!key() || !caller) {
    show("login");
    return;
  }
  const hash = location.hash;
  if (hash.startsWith("#user/")) {
    show("user");
    user.user(decodeURIComponent(hash.slice(6)), caller.role, caller.id);
    return;
  }
  const own = caller.role === "user";
  const page = own ? "user" : { "#backends": "backends", "#users": "users", "#audit": "audit", "#config": "config" }[hash] || "overview";
  show(page);
  switch (page) {
    case "user":
      return user.user(caller.id, caller.role, caller.id);
    case "users":
      return users(false);
    case "audit":
      return audit(false);
    case "config":
      return configuration();
    case "backends":
      return every(backends);
    default:
      return every(overview);
  }
}

personFields();

function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
}

onSubmit("login-form", () => login($("key").value.trim()));
onSubmit("users-search", () => users(false));
onSubmit("create-user", createUser);
onSubmit("audit-filter", () => audit(false));
onSubmit("user-form", user.save);
onSubmit("key-form", user.createKey);
onSubmit("rotate-form", user.rotateKey);
$("logout").addEventListener("click", logout);
$("users-next").addEventListener("click", () => users(true));
$("audit-older").addEventListener("click", () => audit(true));
$("u-ip_whitelist").addEventListener("input", user.checkWhitelist);
$("u-suspend").addEventListener("click", user.suspend);
$("u-delete").addEventListener("click", user.remove);
$("quota-reset").addEventListener("click", user.resetQuota);
for (const button of document.querySelectorAll("button.copy")) {
  button.addEventListener("click", () => copyFrom(button.dataset.panel));
}
window.addEventListener("hashchange", () => {
  moved = true;
  route();
});
if (key()) {
  login(key());
} else {
  route();
}
