// GitWeave web UI: live updates and the log viewer. Plain script, no dependencies.
// Pages work without it (server-rendered); this adds what needs a live connection.
"use strict";

(function () {
  // ---- A run page: follow the run's event stream, swap in the fresh part on news. ----
  function followRun(live) {
    const id = live.dataset.run;
    const names = (live.dataset.events || "").split(" ").filter(Boolean);
    let es = null;
    let timer = null;
    let busy = false;
    async function refresh() {
      if (busy) { timer = setTimeout(refresh, 200); return; }
      busy = true;
      try {
        const r = await fetch("/runs/" + encodeURIComponent(id) + "/frag", { credentials: "same-origin" });
        if (r.ok && (r.headers.get("content-type") || "").startsWith("text/html")) {
          const focused = document.activeElement && document.activeElement.id;
          const box = document.getElementById("run-live");
          const tpl = document.createElement("template");
          tpl.innerHTML = await r.text();
          const fresh = tpl.content.firstElementChild;
          if (fresh.dataset.sig === box.dataset.sig) { busy = false; return; }
          // Keep what a reader is typing into an approval reason.
          box.querySelectorAll("input[name=reason]").forEach(function (old) {
            const same = fresh.querySelector("#" + CSS.escape(old.id));
            if (same) same.value = old.value;
          });
          fresh.dataset.events = box.dataset.events;
          box.replaceWith(fresh);
          if (focused) { const f = document.getElementById(focused); if (f) f.focus(); }
          if (fresh.dataset.ended === "true" && es) { es.close(); es = null; }
        }
      } catch (_) { /* the next event tries again */ }
      busy = false;
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 150); }
    if (live.dataset.ended === "true") return;
    es = new EventSource("/runs/" + encodeURIComponent(id) + "/events");
    names.forEach(function (n) { es.addEventListener(n, schedule); });
    es.onmessage = schedule;
    // The stream ends with the run; the last refresh closes it. A reconnect resumes from
    // Last-Event-ID, and the refresh after it catches up.
    es.onerror = schedule;
  }

  // ---- A repo page: while a run on it is active, refresh the table on its events; on the
  // first page, also look for new runs every few seconds (no event stream tells of them). ----
  const NEW_RUNS_MS = 3000;
  function followRuns(box) {
    const streams = new Map();
    let timer = null;
    let busy = false;
    let again = false;
    const names = (document.body.dataset.events || "").split(" ").filter(Boolean);
    function sync() {
      const rows = document.querySelectorAll("#runs tr[data-run]");
      const active = new Set();
      rows.forEach(function (tr) {
        const s = tr.dataset.status;
        if (s === "queued" || s === "running" || s === "blocked") active.add(tr.dataset.run);
      });
      streams.forEach(function (es, id) { if (!active.has(id)) { es.close(); streams.delete(id); } });
      active.forEach(function (id) {
        if (streams.has(id)) return;
        const es = new EventSource("/runs/" + encodeURIComponent(id) + "/events");
        names.forEach(function (n) { es.addEventListener(n, schedule); });
        es.onerror = schedule;
        streams.set(id, es);
      });
    }
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      const cur = document.getElementById("runs");
      const q = cur.dataset.cursor ? "?cursor=" + encodeURIComponent(cur.dataset.cursor) : "";
      try {
        const r = await fetch("/repos/" + encodeURIComponent(cur.dataset.repo) + "/runs.frag" + q, { credentials: "same-origin" });
        if (r.ok) {
          const tpl = document.createElement("template");
          tpl.innerHTML = await r.text();
          const fresh = tpl.content.firstElementChild;
          if (fresh.dataset.sig !== cur.dataset.sig) cur.replaceWith(fresh);
        }
      } catch (_) { /* next event */ }
      busy = false;
      sync();
      if (again) { again = false; schedule(); }
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
    sync();
    if (!box.dataset.cursor) {
      setInterval(function () {
        if (document.visibilityState === "visible") refresh();
      }, NEW_RUNS_MS);
    }
  }

  // ---- The log viewer: a window of pages, loaded as the reader scrolls. ----
  const MAX_PAGES = 12;
  function logViewer(log) {
    const job = log.dataset.job;
    const base = "/jobs/" + encodeURIComponent(job) + "/log/";
    const top = document.getElementById("log-top");
    const bottom = document.getElementById("log-bottom");
    const follow = document.getElementById("log-follow");
    const bar = document.querySelector(".log-bar");
    let running = log.dataset.running === "true";
    let loading = false;
    let pollTimer = null;

    function pages() { return log.querySelectorAll(".page"); }
    function lastPage() { const p = pages(); return p[p.length - 1]; }
    function firstPage() { return pages()[0]; }

    async function getJson(url) {
      const r = await fetch(url, { credentials: "same-origin" });
      const ct = r.headers.get("content-type") || "";
      if (!ct.startsWith("application/json")) { location.reload(); throw new Error("signed out"); }
      const body = await r.json();
      if (!r.ok) throw new Error((body.error && body.error.message) || ("HTTP " + r.status));
      return body;
    }

    function makePage(p) {
      const div = document.createElement("div");
      div.className = "page";
      div.dataset.offset = p.offset;
      div.dataset.line = p.line;
      div.dataset.nextOffset = p.next_offset;
      div.dataset.nextLine = p.next_line;
      div.dataset.partial = p.partial;
      div.dataset.complete = p.complete;
      div.dataset.fg = p.fg === null || p.fg === undefined ? "" : p.fg;
      div.dataset.bold = p.bold;
      // Rows rendered and escaped by the gateway (ANSI to spans); nothing of the log is markup.
      div.innerHTML = p.html;
      return div;
    }

    function setStatus(text) { bottom.textContent = text; }

    function atEnd() { const l = lastPage(); return l && l.dataset.complete === "true"; }

    function trimTop() {
      while (pages().length > MAX_PAGES) {
        const first = firstPage();
        const h = first.getBoundingClientRect().height;
        first.remove();
        window.scrollBy(0, -h);
      }
      top.hidden = !(firstPage() && Number(firstPage().dataset.offset) > 0);
    }

    function trimBottom() {
      while (pages().length > MAX_PAGES) lastPage().remove();
    }

    async function loadNext() {
      if (loading || atEnd()) return;
      const last = lastPage();
      if (!last) return;
      loading = true;
      let again = false;
      let wait = false;
      const q = new URLSearchParams({
        offset: last.dataset.nextOffset, line: last.dataset.nextLine,
        cont: last.dataset.partial, bold: last.dataset.bold, head: running,
      });
      if (last.dataset.fg !== "") q.set("fg", last.dataset.fg);
      try {
        const p = await getJson(base + "lines?" + q);
        if (p.html) {
          last.after(makePage(p));
          trimTop();
          again = true;
        } else {
          // Nothing new yet: keep what the last page says about the end.
          last.dataset.complete = p.complete;
        }
        if (p.head) {
          const head = document.getElementById("job-head");
          const tpl = document.createElement("template");
          tpl.innerHTML = p.head;
          if (head) head.replaceWith(tpl.content.firstElementChild);
        }
        if (p.complete) {
          running = false;
          again = false;
          setStatus("End of log");
        } else if (!p.html) {
          setStatus("Waiting for more output…");
          wait = true;
        } else {
          setStatus(running ? "Waiting for more output…" : "Loading…");
        }
        if (p.html && follow && follow.checked) bottom.scrollIntoView({ block: "end" });
      } catch (e) {
        setStatus("Could not load more: " + e.message);
        wait = true;
      } finally {
        loading = false;
      }
      clearTimeout(pollTimer);
      if (wait) {
        // A running job: ask again in a second while the end is in view (or followed).
        pollTimer = setTimeout(function () {
          if (visible(bottom) || (follow && follow.checked)) loadNext();
        }, 1000);
      } else if (again && visible(bottom)) {
        setTimeout(loadNext, 0);
      }
    }

    async function loadPrevious() {
      const first = firstPage();
      if (loading || !first || Number(first.dataset.offset) === 0) return;
      loading = true;
      try {
        const at = await getJson(base + "locate?before=" + first.dataset.offset);
        const p = await getJson(base + "lines?" + new URLSearchParams({ offset: at.offset, line: at.line, end: first.dataset.offset }));
        const before = document.documentElement.scrollHeight;
        first.before(makePage(p));
        window.scrollBy(0, document.documentElement.scrollHeight - before);
        trimBottom();
        bottom.textContent = atEnd() ? "End of log" : "Loading…";
      } catch (e) {
        top.textContent = "Could not load earlier lines: " + e.message;
      } finally {
        loading = false;
      }
      top.hidden = Number(firstPage().dataset.offset) === 0;
    }

    // Start over at a line start (jump to the end, to a line, to a search hit).
    async function startAt(at, then) {
      clearTimeout(pollTimer);
      pollTimer = null;
      loading = true;
      try {
        const p = await getJson(base + "lines?" + new URLSearchParams({ offset: at.offset, line: at.line }));
        pages().forEach(function (x) { x.remove(); });
        top.after(makePage(p));
        top.hidden = at.offset === 0;
        setStatus(p.complete ? "End of log" : "Loading…");
      } catch (e) {
        setStatus("Could not load: " + e.message);
      } finally {
        loading = false;
      }
      if (then) then();
      if (visible(bottom)) loadNext();
    }

    function visible(el) {
      const r = el.getBoundingClientRect();
      return r.top < window.innerHeight && r.bottom > 0;
    }

    function showLine(n) {
      const el = document.getElementById("L" + n);
      if (!el) return false;
      log.querySelectorAll(".l.hit").forEach(function (x) { x.classList.remove("hit"); });
      el.classList.add("hit");
      el.scrollIntoView({ block: "center" });
      // Not under the sticky tools (and search results): just below them.
      const under = bar ? bar.getBoundingClientRect().bottom : 0;
      const at = el.getBoundingClientRect().top;
      if (at < under + 8) window.scrollBy(0, at - under - 8);
      return true;
    }

    async function goToLine(n) {
      if (showLine(n)) return;
      try {
        const at = await getJson(base + "locate?line=" + Math.max(1, n - 20));
        await startAt(at, function () { showLine(n); });
      } catch (e) { setStatus("Could not find line " + n + ": " + e.message); }
    }

    function fromHash() {
      const m = /^#L(\d+)$/.exec(location.hash);
      if (m) goToLine(Number(m[1]));
    }

    new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (!e.isIntersecting) return;
        if (e.target === bottom) loadNext();
        if (e.target === top && !top.hidden) loadPrevious();
      });
    }, { rootMargin: "600px 0px" }).observe(bottom);
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; }) && !top.hidden) loadPrevious();
    }, { rootMargin: "400px 0px" }).observe(top);

    document.getElementById("log-end").addEventListener("click", async function () {
      try {
        const at = await getJson(base + "locate?tail=300");
        await startAt(at, function () { bottom.scrollIntoView({ block: "end" }); });
      } catch (e) { setStatus("Could not jump to the end: " + e.message); }
    });

    if (follow) follow.addEventListener("change", function () {
      if (follow.checked) { bottom.scrollIntoView({ block: "end" }); loadNext(); }
    });

    const form = document.getElementById("log-search");
    const results = document.getElementById("search-results");
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const q = document.getElementById("log-q").value;
      results.hidden = false;
      results.textContent = "Searching…";
      try {
        const r = await getJson(base + "search?" + new URLSearchParams({ q: q }));
        results.textContent = "";
        const close = document.createElement("button");
        close.type = "button";
        close.className = "close";
        close.textContent = "Close";
        close.addEventListener("click", function () { results.hidden = true; document.getElementById("log-q").focus(); });
        results.appendChild(close);
        const head = document.createElement("p");
        head.textContent = r.hits.length === 0 ? "No line contains “" + q + "”."
          : r.hits.length + (r.capped ? "+" : "") + " line(s) contain “" + q + "”:";
        results.appendChild(head);
        const ol = document.createElement("ol");
        r.hits.forEach(function (h) {
          const li = document.createElement("li");
          const a = document.createElement("a");
          a.href = "#L" + h.line;
          a.textContent = "L" + h.line;
          li.appendChild(a);
          li.appendChild(document.createTextNode("  " + h.text));
          ol.appendChild(li);
        });
        results.appendChild(ol);
      } catch (e) { results.textContent = "Search failed: " + e.message; }
    });

    window.addEventListener("hashchange", fromHash);
    fromHash();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const live = document.getElementById("run-live");
    if (live) { live.dataset.events = document.body.dataset.events || ""; followRun(live); }
    const runs = document.getElementById("runs");
    if (runs) followRuns(runs);
    const log = document.getElementById("log");
    if (log) logViewer(log);
  });
})();
