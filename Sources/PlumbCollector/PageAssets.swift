import PlumbDiagram

/// The page's stylesheet and script, compiled into the binary (no Node build, no CDN: the page works offline).
enum PageAssets {
    static let css =
        #"""
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px system-ui, -apple-system, Segoe UI, sans-serif; color: #1d2433; background: #f3f5f9; }
        header { display: flex; gap: 16px; align-items: center; padding: 8px 16px; background: #1f3a5f; color: #fff; }
        header h1 { font-size: 18px; margin: 0; }
        header form { margin-left: auto; }
        header button { background: transparent; color: #fff; border: 1px solid #fff8; border-radius: 4px; padding: 2px 10px; cursor: pointer; }
        #live.ok { color: #9fe09f; } #live.stale { color: #ffcf70; } #live.error { color: #ff9a9a; }
        main { display: flex; height: calc(100vh - 42px); }
        main.empty, main.login { display: block; height: auto; max-width: 420px; margin: 80px auto; background: #fff; padding: 24px; border-radius: 8px; }
        main.login form { display: flex; flex-direction: column; gap: 10px; }
        main.login input { font-size: 16px; padding: 6px; }
        .error { color: #b00; } .hint { color: #667; font-size: 12px; }
        #diagram { flex: 1; overflow: auto; background: #fff; border-right: 1px solid #d5dbe5; }
        #diagram svg { display: block; max-width: none; }
        #diagram:not(.actual) svg { width: 100%; height: auto; }
        #zoom { background: transparent; color: #fff; border: 1px solid #fff8; border-radius: 4px; padding: 2px 10px; cursor: pointer; }
        #diagram .box { cursor: pointer; } #diagram .box.vpc, #diagram .box.zone, #diagram .box.internet { cursor: default; }
        #panel { width: 430px; overflow: auto; padding: 0 12px 24px; }
        #panel h2 { font-size: 14px; margin: 16px 0 6px; text-transform: uppercase; letter-spacing: .04em; color: #445; }
        #alert-list { list-style: none; padding: 0; margin: 0; }
        #alert-list li { padding: 6px 8px; margin-bottom: 4px; background: #fff; border-left: 4px solid #999; border-radius: 3px; cursor: pointer; }
        #alert-list li.critical { border-color: #d11; } #alert-list li.warning { border-color: #e08a00; } #alert-list li.info { border-color: #3b6fb6; }
        #alert-list li.none { cursor: default; color: #667; border-color: #9c9; }
        #alert-list li.selected { outline: 2px solid #1f3a5f; }
        #alert-list .kind { font-weight: 600; } #alert-list .component { font-family: ui-monospace, monospace; }
        #selection-body, #ask-result { background: #fff; padding: 8px; border-radius: 4px; }
        #selection-body ul { padding-left: 18px; margin: 4px 0; }
        table { border-collapse: collapse; width: 100%; font-size: 12px; background: #fff; }
        td, th { border: 1px solid #e0e4ea; padding: 3px 5px; text-align: left; vertical-align: top; }
        td.pass { color: #2a7a2a; } td.fail { color: #b00; font-weight: 600; } td.info { color: #667; }
        tr.disagreeing td { background: #fff1e6; }
        #ask-form { display: flex; flex-wrap: wrap; gap: 6px; align-items: end; margin-bottom: 6px; }
        #ask-form select, #ask-form input { max-width: 140px; }
        .verdict-allowed { color: #2a7a2a; font-weight: 600; } .verdict-blocked { color: #b00; font-weight: 600; }
        code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
        """# + "\n" + SVGRenderer.style

    static let script =
        #"""
        "use strict";
        // Plumb's page: polls /v1/overview every second and marks the drawing; the panel asks the API on selection.
        (() => {
          const POLL_MS = 1000;
          const $ = (selector, root = document) => root.querySelector(selector);
          const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
          const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
          const pageVersion = Number($("#version").dataset.version);
          let overview = null;
          let selected = null; // {type: "component"|"alert", id}
          let firstPick = null;

          async function api(path) {
            const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
            if (response.status === 401 || response.status === 403) { window.location.assign("/"); throw new Error("signed out"); }
            const body = await response.json();
            if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
            return body;
          }

          function elementsOf(id) { return $$(`#vpc [data-component~="${CSS.escape(id)}"]`); }
          function boxOf(id) { return elementsOf(id).find((element) => element.classList.contains("box")); }

          function paint(view) {
            overview = view;
            if (view.topologyVersion != null && view.topologyVersion !== pageVersion) { window.location.reload(); return; }
            const blamed = new Set(Object.keys(view.blamed));
            for (const element of $$("#vpc [data-component]")) {
              const ids = element.dataset.component.split(" ");
              element.classList.toggle("blamed", ids.some((id) => blamed.has(id)));
              const state = ids.map((id) => view.instances[id]).find((s) => s);
              element.classList.toggle("silent", state === "silent");
              element.classList.toggle("no-agent", state === "no-agent");
            }
            // Subnets with a disagreeing pair from or to them.
            const disagreeing = new Set();
            for (const pair of view.subnetPairs) if (pair.disagreeing > 0) { disagreeing.add(pair.source); disagreeing.add(pair.target); }
            for (const box of $$("#vpc .box.subnet")) box.classList.toggle("disagreeing", disagreeing.has(box.dataset.component));
            // Collapsed subnets: counts of their members.
            for (const box of $$("#vpc .box.collapsed")) {
              const members = (box.dataset.members || "").split(" ").filter(Boolean);
              const live = members.filter((m) => view.instances[m] === "live").length;
              const silent = members.filter((m) => view.instances[m] === "silent").length;
              const hit = members.filter((m) => blamed.has(m)).length;
              box.classList.toggle("blamed", hit > 0);
              const counts = $("text.counts", box); if (counts) counts.textContent = `live ${live}, silent ${silent}`;
              const count = $("text.blamed-count", box); if (count) count.textContent = `blamed ${hit}`;
            }
            for (const edge of $$("#vpc path.edge")) edge.classList.toggle("blamed", blamed.has(edge.dataset.from) || blamed.has(edge.dataset.to));
            paintAlerts(view.alerts);
            paintPairs(view);
            const live = $("#live");
            live.className = "ok";
            live.textContent = `live · ${view.role} · ${new Date(view.generatedAtMs).toLocaleTimeString()}`;
          }

          function paintAlerts(alerts) {
            $("#alert-count").textContent = String(alerts.length);
            const list = $("#alert-list");
            const html = alerts.length === 0 ? '<li class="none">none: the VPC matches its model</li>' : alerts.map((alert) =>
              `<li class="${esc(alert.severity)}${selected?.type === "alert" && selected.id === alert.id ? " selected" : ""}" data-alert="${esc(alert.id)}">` +
              `<span class="kind">${esc(alert.kind)}</span> on <span class="component">${esc(alert.component)}</span>` +
              `${alert.acknowledgedBy ? " · acknowledged" : ""}<br><small>${esc(alert.summary)}</small></li>`).join("");
            if (list.dataset.html !== html) { list.innerHTML = html; list.dataset.html = html; }
          }

          function paintPairs(view) {
            $("#pair-totals").textContent = `${view.agreeing} agreeing, ${view.disagreeing} disagreeing, ${view.unknown} not yet observed`;
            const rows = view.subnetPairs.map((p) =>
              `<tr class="${p.disagreeing > 0 ? "disagreeing" : ""}" data-source="${esc(p.source)}" data-target="${esc(p.target)}">` +
              `<td class="mono">${esc(p.source)}</td><td class="mono">${esc(p.target)}</td><td>${p.agreeing}</td><td>${p.disagreeing}</td><td>${p.unknown}</td></tr>`).join("");
            const html = "<tr><th>from</th><th>to</th><th>agree</th><th>disagree</th><th>unknown</th></tr>" + rows;
            const table = $("#subnet-matrix");
            if (table.dataset.html !== html) { table.innerHTML = html; table.dataset.html = html; }
          }

          function hopsTable(explanation) {
            if (!explanation) return "";
            const rows = (explanation.hops || []).map((hop) =>
              `<tr><td>${esc(hop.direction)}</td><td class="mono">${esc(hop.component)}</td><td>${esc(hop.check)}</td>` +
              `<td class="${esc(hop.outcome)}">${esc(hop.outcome)}</td><td>${esc(hop.detail)}</td></tr>`).join("");
            return `<p>Intended path <span class="mono">${esc(explanation.source)}</span> → <span class="mono">${esc(explanation.destination)}</span> ` +
              `${esc(explanation.protocol)} ${esc(explanation.port)}: <span class="verdict-${esc(explanation.verdict)}">${esc(explanation.verdict)}</span>` +
              `${explanation.blockedBy ? ` by <span class="mono">${esc(explanation.blockedBy.component)}</span>` : ""}</p>` +
              `<table class="hops"><tr><th>dir</th><th>component</th><th>check</th><th></th><th>detail</th></tr>${rows}</table>`;
          }

          function select(type, id) {
            selected = { type, id };
            for (const element of $$("#vpc .selected")) element.classList.remove("selected");
            if (type === "component") for (const element of elementsOf(id)) element.classList.add("selected");
            if (overview) paintAlerts(overview.alerts);
            return type === "alert" ? showAlert(id) : showComponent(id);
          }

          async function showAlert(id) {
            const body = $("#selection-body");
            body.innerHTML = "<p>Loading…</p>";
            try {
              const detail = await api(`/v1/alerts/${encodeURIComponent(id)}`);
              const alert = detail.alert;
              for (const element of elementsOf(alert.component)) element.classList.add("selected");
              body.innerHTML =
                `<p><strong>${esc(alert.severity)} ${esc(alert.kind)}</strong> blaming ${esc(alert.componentType)} ` +
                `<span class="mono">${esc(alert.component)}</span> since ${new Date(alert.startsAtMs).toLocaleTimeString()}</p>` +
                `<p>${esc(alert.summary)}</p>` +
                `<h3>Evidence</h3><ul class="evidence">${alert.evidence.map((line) => `<li>${esc(line)}</li>`).join("")}</ul>` +
                `<h3>Pairs (${alert.pairs.length})</h3><ul class="pairs mono">${alert.pairs.slice(0, 30).map((p) => `<li>${esc(p)}</li>`).join("")}</ul>` +
                `<h3>Explanation</h3><div class="explanation">${hopsTable(detail.explanation) || "<p>No path to explain for this alert.</p>"}</div>`;
            } catch (error) { body.innerHTML = `<p class="error">${esc(error.message)}</p>`; }
          }

          async function showComponent(id) {
            const body = $("#selection-body");
            const alerts = (overview?.alerts || []).filter((alert) => alert.component === id || elementsOf(id).some((e) => e.dataset.component.split(" ").includes(alert.component)));
            const state = overview?.instances[id];
            let html = `<p><strong class="mono">${esc(id)}</strong>${state ? ` · agent ${esc(state)}` : ""}</p>`;
            html += alerts.length ? `<h3>Firing alerts</h3><ul>${alerts.map((a) => `<li><a href="#alert=${encodeURIComponent(a.id)}" data-alert="${esc(a.id)}">${esc(a.kind)} on ${esc(a.component)}</a>: ${esc(a.summary)}</li>`).join("")}</ul>` : "<p>No firing alert blames it.</p>";
            body.innerHTML = html + "<p>Loading pairs…</p>";
            try {
              const matrix = await api("/v1/matrix");
              const rows = matrix.pairs.filter((p) => p.source === id || p.target === id);
              html += rows.length ? `<h3>Pairs (${rows.length})</h3><table><tr><th>from</th><th>to</th><th>probe</th><th>expected</th><th>observed</th><th>last result</th></tr>` +
                rows.slice(0, 60).map((p) => `<tr class="${esc(p.status)}"><td class="mono">${esc(p.source)}</td><td class="mono">${esc(p.target)}</td>` +
                  `<td>${esc(p.kind)}${p.port != null ? ":" + esc(p.port) : ""}</td><td>${esc(p.expected)}</td><td>${esc(p.observed)}</td><td><small>${esc(p.lastResult)}</small></td></tr>`).join("") + "</table>"
                : "<p>No planned pair starts or ends here.</p>";
              if (alerts[0]) {
                const detail = await api(`/v1/alerts/${encodeURIComponent(alerts[0].id)}`);
                html += `<h3>Explanation</h3><div class="explanation">${hopsTable(detail.explanation) || "<p>No path to explain.</p>"}</div>`;
              }
              if (selected?.id === id) body.innerHTML = html;
            } catch (error) { body.innerHTML = html + `<p class="error">${esc(error.message)}</p>`; }
          }

          async function ask(from, to, port, protocol) {
            const result = $("#ask-result");
            result.innerHTML = "<p>Asking…</p>";
            try {
              const query = new URLSearchParams({ from, to, port: String(port), protocol });
              const [explanation, matrix] = await Promise.all([api(`/v1/explain?${query}`), api("/v1/matrix")]);
              const observed = matrix.pairs.filter((p) => p.source === from && p.target === to && (p.port == null || Number(p.port) === Number(port)));
              const observedAny = observed.length ? observed : matrix.pairs.filter((p) => p.source === from && p.target === to);
              const observedHtml = observedAny.length
                ? `<table><tr><th>probe</th><th>expected</th><th>observed</th><th>status</th><th>last result</th></tr>` + observedAny.map((p) =>
                    `<tr class="${esc(p.status)}"><td>${esc(p.kind)}${p.port != null ? ":" + esc(p.port) : ""}</td><td>${esc(p.expected)}</td><td>${esc(p.observed)}</td><td>${esc(p.status)}</td><td><small>${esc(p.lastResult)}</small></td></tr>`).join("") + "</table>"
                : "<p>No agent probes this pair: the model's answer is all there is.</p>";
              result.innerHTML = `<h3>The model says</h3>${hopsTable(explanation)}<h3>The agents observed</h3>${observedHtml}`;
              result.dataset.verdict = explanation.verdict;
            } catch (error) { result.innerHTML = `<p class="error">${esc(error.message)}</p>`; }
          }

          $("#vpc").addEventListener("click", (event) => {
            const box = event.target.closest("[data-component]");
            if (!box || box.classList.contains("vpc") || box.classList.contains("zone") || box.classList.contains("internet")) return;
            const ref = event.target.closest("tspan.ref");
            const id = (ref || box).dataset.component.split(" ")[0];
            if (event.shiftKey && box.classList.contains("instance")) {
              if (!firstPick) { firstPick = id; box.classList.add("selected"); return; }
              $("#ask-from").value = firstPick; $("#ask-to").value = id; firstPick = null;
              $("#ask-form").requestSubmit(); return;
            }
            window.location.hash = `select=${encodeURIComponent(id)}`;
          });
          $("#zoom").addEventListener("click", () => {
            const actual = $("#diagram").classList.toggle("actual");
            $("#zoom").textContent = actual ? "Fit to width" : "Actual size";
          });
          $("#alert-list").addEventListener("click", (event) => {
            const item = event.target.closest("[data-alert]");
            if (item) window.location.hash = `alert=${encodeURIComponent(item.dataset.alert)}`;
          });
          $("#selection-body").addEventListener("click", (event) => {
            const link = event.target.closest("a[data-alert]");
            if (link) { event.preventDefault(); window.location.hash = `alert=${encodeURIComponent(link.dataset.alert)}`; }
          });
          $("#ask-form").addEventListener("submit", (event) => {
            event.preventDefault();
            const form = new FormData(event.target);
            window.location.hash = `ask=${[form.get("from"), form.get("to"), form.get("port"), form.get("protocol")].map(encodeURIComponent).join(",")}`;
          });

          // The address says what is selected (#select=ID, #alert=ID, #ask=FROM,TO,PORT,PROTOCOL): links and kiosks.
          function route() {
            const hash = decodeURIComponent(window.location.hash.slice(1));
            const [key, value] = [hash.split("=")[0], hash.slice(hash.indexOf("=") + 1)];
            if (key === "select" && value) select("component", value);
            else if (key === "alert" && value) select("alert", value);
            else if (key === "ask" && value) {
              const [from, to, port, protocol] = value.split(",");
              $("#ask-from").value = from; $("#ask-to").value = to; $("#ask-port").value = port; $("#ask-protocol").value = protocol || "tcp";
              ask(from, to, Number(port), protocol || "tcp");
            }
          }
          window.addEventListener("hashchange", route);

          async function poll() {
            try { paint(await api("/v1/overview")); }
            catch (error) { const live = $("#live"); live.className = "error"; live.textContent = `not updating: ${error.message}`; }
            finally { setTimeout(poll, POLL_MS); }
          }
          poll().then(route);
        })();
        """#
}
