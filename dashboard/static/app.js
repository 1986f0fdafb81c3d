// Parafoudre weather page: refreshes itself from the JSON API without reloading.
// Every value is put in the page with textContent or as an attribute, never as HTML, so a
// hostile query name stays text. No inline script: the page's CSP allows only this file.
"use strict";

(function () {
  const body = document.body;
  const lang = body.dataset.lang === "en" ? "en" : "fr";
  const refreshMs = Math.max(5, parseInt(body.dataset.refresh, 10) || 30) * 1000;
  let page = Math.max(1, parseInt(body.dataset.page, 10) || 1);
  const token = new URLSearchParams(window.location.search).get("token");
  // Icons the page may show: the five weathers, fog (not protecting), no data (not running).
  const ICONS = ["sunny", "cloudy", "rain", "storm", "tornado", "fog", "nodata"];
  const NAME_DISPLAY = 80;
  const TEXT_DISPLAY = 60;
  // Same set as dashboard/views.py: controls, zero-width and bidi marks, BOM, lone surrogates.
  const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]/g;

  function display(value, limit) {
    const text = String(value).replace(HIDDEN, function (c) {
      const code = c.charCodeAt(0);
      return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
                          : "\\u" + code.toString(16).padStart(4, "0");
    });
    const max = limit || TEXT_DISPLAY;
    return text.length <= max ? text : text.slice(0, max - 1) + "\u2026";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = display(text);
    return node;
  }

  function weatherOf(value) {
    return ICONS.indexOf(value) >= 0 ? value : "nodata";
  }

  function icon(weather, label, size, className) {
    const img = document.createElement("img");
    img.className = className;
    img.src = "/static/" + weatherOf(weather) + ".svg";
    img.alt = display(label);
    img.width = size;
    img.height = size;
    return img;
  }

  // The name, and "×3" after it when the row stands for several identical queries.
  function nameCell(qname, times, timesTitle) {
    const span = el("span", "qname");
    span.textContent = display(qname, NAME_DISPLAY);
    span.title = display(qname, 255);
    if (!times) return span;
    const cell = document.createDocumentFragment();
    cell.appendChild(span);
    cell.appendChild(document.createTextNode(" "));
    const count = el("span", "times", times);
    count.title = display(timesTitle || "", 120);
    cell.appendChild(count);
    return cell;
  }

  function fillTable(id, rows) {
    const tbody = document.getElementById(id);
    if (!tbody) return;
    const cols = tbody.parentNode.querySelectorAll("thead th").length;
    const fresh = document.createElement("tbody");
    fresh.id = id;
    fresh.dataset.empty = tbody.dataset.empty || "";
    rows.forEach(function (cells) {
      const tr = document.createElement("tr");
      cells.forEach(function (cell) {
        const td = document.createElement("td");
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = display(cell);
        tr.appendChild(td);
      });
      fresh.appendChild(tr);
    });
    if (!rows.length) {
      const tr = el("tr", "empty");
      const td = el("td", "", fresh.dataset.empty);
      td.colSpan = cols;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    tbody.replaceWith(fresh);
  }

  // Text whose `commands` are shown as code elements, still only through textContent.
  function setRich(node, value, limit) {
    node.replaceChildren();
    display(value, limit || 400).split("`").forEach(function (part, i) {
      if (i % 2 === 1) {
        const code = document.createElement("code");
        code.textContent = part;
        node.appendChild(code);
      } else if (part) {
        node.appendChild(document.createTextNode(part));
      }
    });
  }

  function setText(id, value, limit) {
    const node = document.getElementById(id);
    if (node) node.textContent = display(value, limit || 300);
  }

  async function get(path, query) {
    const params = new URLSearchParams(query || {});
    params.set("lang", lang);
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch(path + "?" + params.toString(), {
      headers: headers, cache: "no-store", credentials: "same-origin",
    });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  function renderProtection(p) {
    if (!p) return;
    const problems = document.getElementById("problems");
    problems.replaceChildren.apply(problems, p.problems.slice(1).map(function (pr) {
      const li = el("li");
      setRich(li, pr.text, 400);
      li.dataset.code = display(pr.code);
      return li;
    }));
    problems.hidden = p.problems.length < 2;
    const checks = document.getElementById("checks");
    checks.replaceChildren.apply(checks, p.checks.map(function (c) {
      const li = el("li", "check check-" + display(c.state));
      li.dataset.check = display(c.check);
      li.appendChild(el("span", "check-label", c.label));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("b", "", c.state_text));
      return li;
    }));
  }

  // Today hour by hour: a hatched "–" where the box was not running, blank for hours to come.
  function renderHours(hours) {
    const list = document.getElementById("hours");
    if (!list) return;
    list.replaceChildren.apply(list, hours.map(function (h) {
      const li = el("li");
      const state = ["data", "nodata", "future"].indexOf(h.state) >= 0 ? h.state : "nodata";
      li.dataset.state = state;
      li.title = display(h.title, 120);
      li.appendChild(el("span", "lbl", h.hour));
      li.appendChild(el("span", "n", state === "nodata" ? "\u2013"
                                    : state === "future" ? "" : h.count));
      return li;
    }));
  }

  function renderSummary(s) {
    const weather = weatherOf(s.icon);
    const hero = document.getElementById("hero");
    hero.className = "hero weather-" + weather;
    hero.dataset.weather = weather;
    hero.dataset.protected = s.protected ? "true" : "false";
    const img = document.getElementById("weather-icon");
    img.src = "/static/" + weather + ".svg";
    img.alt = display(s.icon_label);
    setRich(document.getElementById("headline"), s.headline, 400);
    const detail = document.getElementById("headline-detail");
    detail.textContent = display(s.headline_detail || "", 400);
    detail.hidden = !s.headline_detail;
    setText("weather-sentence", s.sentence);
    const small = document.getElementById("weather-small");
    small.src = "/static/" + weatherOf(s.day_icon) + ".svg";
    small.alt = display(s.weather_label);
    document.getElementById("weather-line").hidden = s.protected;
    if (s.running_since_text) setText("since", s.running_since_text, 120);
    renderHours(s.hours || []);
    renderProtection(s.protection);
    const highlight = document.getElementById("highlight");
    highlight.textContent = display(s.highlight_text, 300);
    highlight.className = s.highlight ? "highlight alert" : "highlight";
    const losses = document.getElementById("losses");
    losses.textContent = display(s.losses_text, 300);
    losses.hidden = !s.losses_text;

    const counts = document.getElementById("counts");
    const cards = s.kinds.map(function (kind) {
      const card = el("div", "card kind-" + display(kind.kind));
      card.dataset.kind = display(kind.kind);
      card.appendChild(el("h3", "", kind.label));
      card.appendChild(el("p", "big", kind.total));
      const list = el("ul");
      kind.categories.forEach(function (c) {
        const li = el("li");
        li.appendChild(el("span", "cat", c.label));
        li.appendChild(el("b", "", c.count));
        list.appendChild(li);
      });
      if (!kind.categories.length) {
        const none = counts.querySelector("li.none");
        list.appendChild(el("li", "none", none ? none.textContent : "-"));
      }
      card.appendChild(list);
      return card;
    });
    counts.replaceChildren.apply(counts, cards);

    fillTable("top-names", s.top_names.map(function (n) {
      return [nameCell(n.qname), n.label, n.count];
    }));
    fillTable("top-clients", s.top_clients.map(function (c) {
      return [c.client_text || c.client, c.label, c.count];
    }));
    // Only when the page has the table (the config has groups).
    fillTable("groups", (s.groups || []).map(function (g) {
      return [g.label, g.count, g.bypass, g.clients];
    }));
    setText("updated", s.updated_text, 120);
  }

  function pageHref(n) {
    const params = new URLSearchParams(window.location.search);
    params.set("page", String(n));
    return "?" + params.toString();
  }

  // The operator's buttons (logged in only: the page then carries the session's CSRF token).
  function hidden(form, name, value) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }

  function allowForm(item, scope, label) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/allow?lang=" + lang;
    form.className = "allow";
    hidden(form, "csrf", body.dataset.csrf);
    hidden(form, "name", item.qname);
    hidden(form, "scope", scope);
    hidden(form, "detail", display(item.reason, 120) + " (" + display(item.category) + "), " +
           display(item.client));
    const button = el("button", "", label);
    button.type = "submit";
    button.dataset.scope = scope;
    button.title = body.dataset.allowTitle || "";
    form.appendChild(button);
    return form;
  }

  function allowCell(item) {
    const cell = document.createDocumentFragment();
    // The detector's rows show a cut name (never the payload): only their domain is allowed.
    const exfil = item.verdict === "exfiltration" || String(item.reason).indexOf("exfil:") === 0;
    // A canary is answered before any allowlist: nothing to allow (the config turns it off).
    if (String(item.reason).indexOf("canary:") === 0) return cell;
    if (!exfil) cell.appendChild(allowForm(item, "name", body.dataset.allowName || ""));
    if (item.domain) {
      const label = (body.dataset.allowDomain || "").replace("{domain}", item.domain);
      cell.appendChild(allowForm(item, "domain", label));
    }
    return cell;
  }

  function renderBlocks(b) {
    page = b.page;
    body.dataset.page = String(page);
    fillTable("blocks", b.items.map(function (item) {
      // The reason in words; the raw signal ("exfil:cooldown,names") in the tooltip.
      const reason = el("span", "reason", "");
      reason.textContent = display(item.reason_text, 120);
      reason.title = display(item.reason, 200);
      const cells = [item.time, item.client_text || item.client,
                     nameCell(item.qname, item.count_text, item.count_title),
                     item.qtype_name, item.category_label, reason];
      if (body.dataset.csrf) cells.push(allowCell(item));
      return cells;
    }));
    setText("page-text", b.page_text, 120);
    const prev = document.getElementById("prev");
    const next = document.getElementById("next");
    prev.hidden = b.page <= 1;
    next.hidden = b.page >= b.pages;
    prev.href = pageHref(b.page - 1);
    next.href = pageHref(b.page + 1);
  }

  function strip(id, days, short) {
    const list = document.getElementById(id);
    const items = days.map(function (d) {
      const li = el("li");
      li.dataset.weather = weatherOf(d.icon);
      li.title = display(d.title, 200);
      li.appendChild(icon(d.icon, d.weather_label, short ? 28 : 40, "day-icon"));
      li.appendChild(el("span", "lbl", short ? d.day_of_month : d.label));
      li.appendChild(el("span", "n", d.data ? d.count : "\u2013"));
      return li;
    });
    list.replaceChildren.apply(list, items);
  }

  function renderHistory(h) {
    strip("strip7", h.days.slice(-7), false);
    strip("strip30", h.days, true);
  }

  function renderFeeds(f) {
    fillTable("feeds", f.feeds.map(function (feed) {
      const status = el("span", "status status-" + display(feed.status), "");
      status.textContent = display(feed.status_text, 200);
      status.title = display(feed.last_error || "", 200);
      return [feed.name, feed.label, feed.entries, feed.updated_text, status];
    }));
  }

  async function refresh() {
    try {
      const results = await Promise.all([
        get("/api/summary"),
        get("/api/blocks", { page: String(page) }),
        get("/api/history", { days: "30" }),
        get("/api/feeds"),
        get("/api/health"),
      ]);
      renderSummary(results[0]);
      renderBlocks(results[1]);
      renderHistory(results[2]);
      renderFeeds(results[3]);
      setText("footer-text", results[4].footer_text, 200);
      body.classList.remove("offline");
      body.dataset.refreshed = String(Date.now());
    } catch (err) {
      // The box may be restarting: keep what is shown and try again at the next tick.
      body.classList.add("offline");
    }
  }

  function onPager(event) {
    event.preventDefault();
    page = Math.max(1, page + (event.currentTarget.id === "next" ? 1 : -1));
    window.history.replaceState(null, "", pageHref(page));
    get("/api/blocks", { page: String(page) }).then(renderBlocks).catch(function () {});
  }

  document.getElementById("prev").addEventListener("click", onPager);
  document.getElementById("next").addEventListener("click", onPager);

  function loop() {
    const wait = document.hidden ? refreshMs * 4 : refreshMs;
    window.setTimeout(function () { refresh().finally(loop); }, wait);
  }
  refresh().finally(loop);
})();
