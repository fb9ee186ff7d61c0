// The admin's forms on the dashboard: members, new users, import. Every call goes to the JSON API
// with the session's CSRF token; answers are shown with textContent only.
"use strict";

(function () {
  const root = document.getElementById("admin");
  if (!root) return;
  const project = root.dataset.project;
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const api = "/api/v1";

  // Every API error is {detail: "text", errors?: [...]}: detail alone says what went wrong.
  function detail(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    return "request failed (HTTP " + status + ")";
  }

  async function call(method, path, body, isForm) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (!isForm) headers["Content-Type"] = "application/json";
    const response = await fetch(api + path, {
      method: method, headers: headers, credentials: "same-origin",
      body: isForm ? body : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  function say(el, text, isError) {
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
    el.classList.toggle("ok", !isError);
  }

  function upsertMember(username, role) {
    const body = document.querySelector("#members-table tbody");
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    let row = Array.from(body.querySelectorAll("tr[data-member]")).find((r) => r.dataset.member === username);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.member = username;
      for (const cls of ["", "member-role", ""]) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        row.appendChild(td);
      }
      row.cells[0].textContent = username;
      body.appendChild(row);
    }
    row.querySelector(".member-role").textContent = role;
  }

  const memberForm = document.getElementById("member-form");
  const memberResult = document.getElementById("member-result");
  memberForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = document.getElementById("member-username").value.trim();
    const role = document.getElementById("member-role").value;
    const r = await call("POST", "/projects/" + encodeURIComponent(project) + "/members",
                         { username: username, role: role });
    if (r.ok) {
      upsertMember(r.data.username, r.data.role);
      say(memberResult, (r.status === 201 ? "Added " : "Updated ") + r.data.username + " as " + r.data.role + ".");
      memberForm.reset();
    } else {
      say(memberResult, detail(r.data, r.status), true);
    }
  });

  const userForm = document.getElementById("user-form");
  if (userForm) {
    const userResult = document.getElementById("user-result");
    userForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const r = await call("POST", "/users", {
        username: document.getElementById("user-username").value.trim(),
        password: document.getElementById("user-password").value,
        role: document.getElementById("user-role").value,
      });
      if (r.ok) {
        say(userResult, "Created user " + r.data.username + " (" + r.data.role + "). Add them to the project above.");
        userForm.reset();
      } else {
        say(userResult, detail(r.data, r.status), true);
      }
    });
  }

  const importForm = document.getElementById("import-form");
  const importResult = document.getElementById("import-result");
  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) { say(importResult, "Choose a file first.", true); return; }
    const form = new FormData();
    form.append("file", file, file.name);
    const format = document.getElementById("import-format").value;
    if (format) form.append("format", format);
    for (const meta of document.getElementById("import-meta").value.split(",")) {
      if (meta.trim()) form.append("meta", meta.trim());
    }
    if (document.getElementById("import-skip").checked) form.append("skip_invalid", "true");
    say(importResult, "Importing " + file.name + "…");
    const r = await call("POST", "/projects/" + encodeURIComponent(project) + "/import", form, true);
    if (r.ok) {
      say(importResult, JSON.stringify(r.data, null, 2));
    } else {
      let text = detail(r.data, r.status);
      if (r.data && Array.isArray(r.data.errors) && r.data.errors.length) {
        text += "\n" + r.data.errors.slice(0, 20).map((e) => JSON.stringify(e)).join("\n");
      }
      say(importResult, text, true);
    }
  });
})();
