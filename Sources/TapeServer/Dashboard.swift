/// The dashboard page served at `/`: one self-contained HTML document — inline CSS and JS,
/// nothing fetched from elsewhere, so it works offline.
///
/// It loads markets, candles, trades, stats and open gaps from the REST API, then follows `/ws`,
/// and polls `/health` for the status dot (green: live and ok, amber: degraded with the reasons in
/// its text and tooltip, red: not connected). Open trade gaps shade the windows they overlap;
/// candles with `"complete":false` are drawn hollow with a dashed outline (tooltip on hover). For
/// tests it writes what it drew into the DOM: `body[data-candles-drawn]` (sum over charts),
/// `body[data-live-updates]` (trade and candle events applied), `body[data-trades-shown]`,
/// `body[data-ready]`, `body[data-health]`, `body[data-gap-updates]`, and per chart
/// `canvas[data-candles-drawn]`, `canvas[data-incomplete-drawn]`, `canvas[data-gap-slots]`,
/// `[data-last-close]`, `[data-open-gaps]`; order books (the `book` channel of `/ws`, first read
/// from `/api/book`): per card `[data-best-bid]`, `[data-best-ask]`, `[data-book-sequence]`,
/// `canvas.depth[data-levels-drawn]`, and `body[data-book-updates]`.
/// The view is in the URL: `?interval=` (1m, 5m, 1h) and `?symbol=exchange:SYMBOL` (one market; none:
/// all of them), kept up to date with `history.replaceState` so a reload or a shared link shows the
/// same view. A `?token=` (or `#token=`) in the URL is taken as the bearer token, kept in the tab's
/// sessionStorage and removed from the address bar; a server that needs a token and got none shows
/// a form asking for it. Axes: prices at "nice" steps with as many decimals as the step needs
/// (`canvas[data-y-labels]`), time by the clock (a window without candles stays an empty slot, so
/// gaps in time show; `[data-empty-slots]`); `canvas[data-labels-clipped]` counts labels that would
/// not fit. The change next to the price says what it is measured over (`.chg`: "24h" when the
/// candles loaded reach back a day, else "since HH:MM", the first candle's start). When
/// `/api/stats` knows an exchange's connection (`tape up`), one status chip per venue (`#venues`, `[data-state]` ok, warn or
/// down); the market picker (`#market`) groups markets by exchange.
enum Dashboard {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Tape — live market data</title>
        <style>
          :root { --bg:#0d1117; --panel:#161b22; --line:#30363d; --text:#e6edf3; --dim:#8b949e; --up:#26a69a; --down:#ef5350; --accent:#58a6ff; --warn:#d29922; }
          * { box-sizing: border-box; }
          body { margin:0; background:var(--bg); color:var(--text); font:13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
          header { display:flex; align-items:center; flex-wrap:wrap; gap:8px 16px; padding:10px 18px; border-bottom:1px solid var(--line); background:var(--panel); }
          #market { background:var(--bg); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:3px 6px; font:inherit; max-width:100%; min-width:0; }
          #venues { display:flex; flex-wrap:wrap; gap:6px; min-width:0; }
          #venues[hidden] { display:none; }
          .chip { display:inline-flex; align-items:center; gap:5px; border:1px solid var(--line); border-radius:10px; padding:1px 8px; font-size:12px; color:var(--dim); white-space:nowrap; cursor:default; }
          .chip i { width:7px; height:7px; border-radius:50%; background:var(--up); display:inline-block; }
          .chip.warn i { background:var(--warn); } .chip.down i { background:var(--down); }
          .chip .n { color:var(--text); font-variant-numeric:tabular-nums; }
          .chip .sim { border:1px solid var(--line); border-radius:3px; padding:0 3px; font-size:10px; }
          #tokenform { display:flex; gap:6px; align-items:center; }
          #tokenform[hidden] { display:none; }
          #tokenform input { background:var(--bg); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:3px 6px; font:inherit; width:14em; max-width:40vw; }
          #tokenform button { background:var(--accent); color:#0d1117; border:0; border-radius:4px; padding:4px 10px; font:inherit; font-weight:600; cursor:pointer; }
          header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
          header h1 span { color:var(--accent); }
          .intervals button { background:transparent; color:var(--dim); border:1px solid var(--line); padding:3px 10px; cursor:pointer; font:inherit; }
          .intervals button:first-child { border-radius:4px 0 0 4px; } .intervals button:last-child { border-radius:0 4px 4px 0; }
          .intervals button.on { background:var(--accent); color:#0d1117; border-color:var(--accent); font-weight:600; }
          #status { margin-left:auto; color:var(--dim); display:flex; align-items:center; gap:6px; min-width:0; max-width:100%; }
          #status i { width:9px; height:9px; border-radius:50%; background:var(--down); display:inline-block; }
          #status.live i { background:var(--up); box-shadow:0 0 6px var(--up); }
          #status.degraded i { background:var(--warn); box-shadow:0 0 6px var(--warn); }
          #status.degraded span { color:var(--warn); }
          #status span { max-width:52vw; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
          #status i { flex:none; }
          #status { cursor:default; }
          .gapbadge { color:var(--warn); font-size:12px; font-weight:500; cursor:help; }
          main { display:grid; grid-template-columns: minmax(0, 1fr) 390px; gap:14px; padding:14px 18px; }
          @media (max-width: 900px) { main { grid-template-columns: minmax(0, 1fr); padding:10px; } header { padding:8px 10px; } }
          #charts { display:grid; grid-template-columns: repeat(auto-fit, minmax(min(420px, 100%), 1fr)); gap:14px; align-content:start; min-width:0; }
          #charts .card[hidden] { display:none; }
          .card { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:10px 12px; min-width:0; }
          .card h2 { font-size:14px; margin:0 0 6px; display:flex; flex-wrap:wrap; gap:2px 10px; align-items:baseline; }
          .card h2 small { color:var(--dim); font-weight:400; }
          .card h2 .px { margin-left:auto; font-variant-numeric:tabular-nums; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:100%; }
          .card h2 .chg { color:var(--dim); font-size:11px; font-weight:400; }
          .card canvas { width:100%; height:260px; display:block; }
          .card canvas.depth { height:90px; margin-top:6px; }
          .tob { display:flex; flex-wrap:wrap; gap:2px 12px; color:var(--dim); font-variant-numeric:tabular-nums; margin-top:6px; font-size:12px; }
          .tob .v { color:var(--text); font-weight:500; }
          .up { color:var(--up); } .down { color:var(--down); }
          aside { display:flex; flex-direction:column; gap:14px; min-width:0; }
          aside h3 { margin:0 0 8px; font-size:13px; text-transform:uppercase; letter-spacing:.8px; color:var(--dim); }
          table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
          td, th { padding:3px 4px; text-align:right; white-space:nowrap; } th { color:var(--dim); font-weight:500; }
          th { white-space:normal; vertical-align:bottom; }
          aside table { font-size:12px; }
          #tape table { font-size:12px; } #tape td, #tape th { padding:2px 3px; }
          #tape td.ex { color:var(--dim); text-align:left; max-width:6.5em; overflow:hidden; text-overflow:ellipsis; }
          #health td:first-child { white-space:normal; }
          td:first-child, th:first-child { text-align:left; }
          #tape { height:420px; overflow:hidden; }
          #tape tr.new { animation: flash 1s ease-out; }
          @keyframes flash { from { background:#1f6feb44; } to { background:transparent; } }
          .empty { color:var(--dim); padding:20px; text-align:center; }
          footer { color:var(--dim); padding:0 18px 14px; font-size:12px; overflow-wrap:anywhere; }
        </style>
        </head>
        <body data-ready="0" data-candles-drawn="0" data-live-updates="0" data-trades-shown="0" data-health="unknown" data-gap-updates="0" data-book-updates="0">
        <header>
          <h1>▮ <span>Tape</span></h1>
          <select id="market" aria-label="market"><option value="">All markets</option></select>
          <div class="intervals" id="intervals"><button data-i="1m">1m</button><button data-i="5m">5m</button><button data-i="1h">1h</button></div>
          <div id="venues" hidden data-count="0"></div>
          <form id="tokenform" hidden><input type="password" name="token" placeholder="API token" autocomplete="current-password" aria-label="API token"><button type="submit">Use token</button></form>
          <div id="status"><i></i><span>connecting…</span></div>
        </header>
        <main>
          <section id="charts"><div class="card empty" id="nomarkets">No markets yet — waiting for candles and trades.</div></section>
          <aside>
            <div class="card"><h3>Exchanges</h3>
              <table><thead><tr><th>exchange</th><th>trades/s</th><th>frames/s</th><th>lag ms</th><th>reconn.</th></tr></thead><tbody id="health"></tbody></table>
              <div id="lag" style="color:var(--dim);margin-top:6px"></div>
            </div>
            <div class="card"><h3>Trades</h3>
              <div id="tape"><table><thead><tr><th>time</th><th>exchange</th><th>market</th><th>price</th><th>qty</th></tr></thead><tbody id="trades"></tbody></table></div>
            </div>
          </aside>
        </main>
        <footer>REST: <code>/api/markets</code> · <code>/api/candles</code> · <code>/api/trades</code> · <code>/api/stats</code> · <code>/api/gaps</code> · <code>/api/book</code> · <code>/health</code> · live: <code>/ws</code> · <code>/metrics</code> · shaded: open gaps (trades may be missing) · hollow candle: incomplete</footer>
        <script>
        "use strict";
        const params = new URLSearchParams(location.search);
        // The token: ?token= or #token= (then kept in this tab's sessionStorage and taken out of the
        // address bar, so a copied link does not carry it), else what the tab stored before.
        let token = params.get("token") || new URLSearchParams(location.hash.slice(1)).get("token") || "";
        try { if (token) sessionStorage.setItem("tape.token", token); else token = sessionStorage.getItem("tape.token") || ""; } catch (e) {}
        const authHeaders = token ? { Authorization: "Bearer " + token } : {};
        const MAX_CHARTS = 8, MAX_TRADES = 60, DAY = 86400000;
        const INTERVAL_MS = { "1m": 60000, "5m": 300000, "1h": 3600000 };
        let interval = INTERVAL_MS[params.get("interval")] ? params.get("interval") : "1m";
        let selected = params.get("symbol") || "";   // "exchange:SYMBOL", or "" for every market
        const charts = new Map();   // "exchange:SYMBOL" -> {symbol, candles, gaps, canvas, card, px, badge, layout}
        let trades = [], liveUpdates = 0, gapUpdates = 0, bookUpdates = 0, ws = null, wsBackoff = 500, wasConnected = false, wsOpen = false, authFailed = false, health = null;
        let marketList = [];

        // The view (market, interval) lives in the URL: a reload or a shared link shows the same.
        function writeURL() {
          const q = new URLSearchParams();
          if (selected) q.set("symbol", selected);
          q.set("interval", interval);
          history.replaceState(null, "", location.pathname + "?" + q.toString());
        }

        async function api(path) {
          const r = await fetch(path, { headers: authHeaders, cache: "no-store" });
          if (r.status === 401) {
            authFailed = true;
            if (token) { try { sessionStorage.removeItem("tape.token"); } catch (e) {} }
            document.getElementById("tokenform").hidden = false;
            const none = document.getElementById("nomarkets"); if (none) none.textContent = "This server needs its API token: enter it above.";
            setStatus("down", token ? "the token is wrong: enter the right one" : "this server needs a token: enter it (or open /?token=…)");
          }
          if (!r.ok) { let m = r.status + ""; try { m = (await r.json()).error.message; } catch (e) {} throw new Error(path + ": " + m); }
          return r.json();
        }
        document.getElementById("tokenform").addEventListener("submit", ev => {
          ev.preventDefault();
          const v = ev.target.elements.token.value.trim(); if (!v) return;
          try { sessionStorage.setItem("tape.token", v); } catch (e) {}
          location.hash = "token=" + encodeURIComponent(v);   // read back on load (also without sessionStorage)
          location.reload();
        });
        const esc = v => String(v).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
        // Prices as the venue printed them (exact, with its decimals); computed values rounded.
        function fmtPrice(s) {
          const v = parseFloat(s); if (!isFinite(v)) return "–";
          if (typeof s === "string" && /^\d{1,12}(\.\d{1,12})?$/.test(s) && s.length <= 14) return s;
          return v >= 1000 ? v.toFixed(2) : v >= 1 ? v.toFixed(4) : v.toPrecision(6);
        }
        function fmtTime(ms, withSeconds) { const d = new Date(ms); const p = n => String(n).padStart(2, "0");
          return p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + (withSeconds ? ":" + p(d.getUTCSeconds()) : ""); }
        function fmtAxisTime(ms) { const d = new Date(ms); const p = n => String(n).padStart(2, "0");
          return interval === "1h" && d.getUTCHours() === 0 ? p(d.getUTCMonth() + 1) + "-" + p(d.getUTCDate()) : fmtTime(ms); }
        // Price axis ticks at a "nice" step (1, 2 or 5 × 10^k) with the decimals that step needs, so
        // labels differ however small the prices or their range.
        function niceTicks(lo, hi, count) {
          const raw = (hi - lo) / count; if (!(raw > 0) || !isFinite(raw)) return [];
          const p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
          const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
          const decimals = Math.max(0, Math.min(12, -Math.floor(Math.log10(step) + 1e-9)));
          const out = [];
          for (let i = Math.ceil(lo / step); i * step <= hi && out.length < 50; i++) out.push({ v: i * step, text: (i * step).toFixed(decimals) });
          return out;
        }
        function setStatus(kind, text, title) {   // kind: "live", "degraded" or "down"
          const s = document.getElementById("status");
          s.classList.toggle("live", kind === "live"); s.classList.toggle("degraded", kind === "degraded");
          s.querySelector("span").textContent = text; s.title = title || text;
        }
        // The dot: red while /ws is not connected, amber while /health says degraded, green otherwise.
        function renderStatus() {
          if (authFailed) return;
          if (!wsOpen) { setStatus("down", wasConnected ? "reconnecting…" : "connecting…"); return; }
          if (health && health.status === "degraded") {
            const r = health.reasons || [];
            setStatus("degraded", "degraded: " + (r[0] || "see /health") + (r.length > 1 ? ` (+${r.length - 1} more)` : ""), r.join("\n"));
          } else setStatus("live", "live", health ? "every health check is ok" : "");
        }
        async function loadHealth() {
          try {
            const r = await fetch("/health", { cache: "no-store" });
            health = await r.json(); document.body.dataset.health = health.status;
          } catch (e) { health = null; document.body.dataset.health = "unknown"; }
          renderStatus();
        }

        function ensureChart(symbol, force) {
          if (charts.has(symbol)) return charts.get(symbol);
          if (charts.size >= MAX_CHARTS && !force) return undefined;
          document.getElementById("nomarkets")?.remove();
          const [exchange, pair] = symbol.split(":");
          const card = document.createElement("div");
          card.className = "card"; card.dataset.symbol = symbol;
          card.innerHTML = `<h2>${esc(pair)} <small>${esc(exchange)}</small><span class="gapbadge" hidden></span><span class="px">–</span></h2>` +
            `<canvas data-candles-drawn="0" data-incomplete-drawn="0" data-gap-slots="0" data-empty-slots="0" data-labels-clipped="0" data-y-labels=""></canvas>` +
            `<div class="tob">bid <span class="v bid">–</span> ask <span class="v ask">–</span> spread <span class="v spread">–</span> mid <span class="v mid">–</span></div>` +
            `<canvas class="depth" data-levels-drawn="0"></canvas>`;
          card.dataset.openGaps = "0";
          card.hidden = !!selected && selected !== symbol;
          document.getElementById("charts").appendChild(card);
          const chart = { symbol, candles: [], gaps: new Map(), card, canvas: card.querySelector("canvas"), px: card.querySelector(".px"),
            badge: card.querySelector(".gapbadge"), layout: null, book: null, depth: card.querySelector("canvas.depth") };
          charts.set(symbol, chart);
          new ResizeObserver(() => draw(chart)).observe(chart.canvas);
          new ResizeObserver(() => drawBook(chart)).observe(chart.depth);
          chart.canvas.addEventListener("mousemove", ev => hover(chart, ev));
          return chart;
        }

        // The market picker: every market, grouped by exchange (built with DOM calls: names are data).
        function renderPicker() {
          const select = document.getElementById("market");
          const names = new Set(marketList); if (selected) names.add(selected);
          const byExchange = new Map();
          for (const s of [...names].sort()) { const [ex, pair] = s.split(":"); if (!byExchange.has(ex)) byExchange.set(ex, []); byExchange.get(ex).push([s, pair]); }
          const all = document.createElement("option"); all.value = ""; all.textContent = "All markets";
          const groups = [...byExchange].map(([ex, list]) => {
            const group = document.createElement("optgroup"); group.label = ex;
            for (const [s, pair] of list) { const o = document.createElement("option"); o.value = s; o.textContent = pair; group.append(o); }
            return group;
          });
          select.replaceChildren(all, ...groups);
          select.value = selected;
        }
        function subscribeChart(c) {
          send({ op: "subscribe", channel: "candles", symbol: c.symbol, interval }); send({ op: "subscribe", channel: "trades", symbol: c.symbol });
          send({ op: "subscribe", channel: "gaps", symbol: c.symbol }); send({ op: "subscribe", channel: "book", symbol: c.symbol });
        }
        async function select(symbol) {
          selected = symbol; writeURL();
          document.getElementById("market").value = selected;
          if (selected && !charts.has(selected)) { const c = ensureChart(selected, true); subscribeChart(c); loadBook(c); await loadCandles(c); }
          for (const c of charts.values()) c.card.hidden = !!selected && selected !== c.symbol;
          renderTrades();
        }
        document.getElementById("market").addEventListener("change", ev => select(ev.target.value));

        // Open gaps of a chart, keyed by channel, from and to (a repaired record removes its gap).
        const gapKey = g => g.channel + ":" + g.from + ":" + g.to;
        function applyGap(chart, g) { if (g.repaired) chart.gaps.delete(gapKey(g)); else chart.gaps.set(gapKey(g), g); }
        const tradeGaps = chart => [...chart.gaps.values()].filter(g => g.channel === "trades");
        function renderGapBadge(chart) {
          const open = [...chart.gaps.values()];
          chart.card.dataset.openGaps = open.length;
          chart.badge.hidden = open.length === 0;
          chart.badge.textContent = open.length ? `⚠ ${open.length} open gap${open.length > 1 ? "s" : ""}` : "";
          chart.badge.title = open.slice(0, 8).map(g => `${g.channel} ${fmtTime(g.from, true)}–${fmtTime(g.to, true)} UTC: ${g.reason}`).join("\n");
        }
        async function loadGaps() {
          try {
            const r = await api("/api/gaps?open=true&limit=1000");
            for (const c of charts.values()) c.gaps.clear();
            for (const g of r.gaps) { const c = charts.get(g.exchange + ":" + g.symbol); if (c) applyGap(c, g); }
            for (const c of charts.values()) { renderGapBadge(c); draw(c); }
          } catch (e) { console.warn(e); }
        }
        function hover(chart, ev) {
          const L = chart.layout; if (!L) return;
          const i = Math.floor((ev.clientX - chart.canvas.getBoundingClientRect().left - L.x0) / L.slot);
          if (i < 0 || i >= L.shown.length) { chart.canvas.title = ""; return; }
          const k = L.shown[i], start = L.tEnd - (L.shown.length - 1 - i) * L.ms;
          if (!k) { chart.canvas.title = `${fmtTime(start)} UTC: no trades in this ${interval} window`; return; }
          let t = `${fmtTime(k.start)} UTC  O ${fmtPrice(k.open)}  H ${fmtPrice(k.high)}  L ${fmtPrice(k.low)}  C ${fmtPrice(k.close)}  ${k.trades} trades`;
          if (k.complete === false) t += "\nIncomplete: an unrepaired gap overlaps this window, so trades may be missing from it.";
          for (const g of tradeGaps(chart)) if (g.from < k.end && g.to >= k.start) t += `\nOpen gap ${fmtTime(g.from, true)}–${fmtTime(g.to, true)}: ${g.reason}`;
          chart.canvas.title = t;
        }

        // Candles by time: slot i is the window tEnd - (n-1-i)·interval; a window without a candle stays empty.
        function slots(all, plotW, ms) {
          const tEnd = all[all.length - 1].start, span = Math.round((tEnd - all[0].start) / ms) + 1;
          const slot = Math.max(4, Math.min(16, plotW / Math.max(1, span)));
          const n = Math.max(1, Math.min(span, Math.floor(plotW / slot)));
          const shown = Array.from({ length: n });
          for (const k of all) { const i = n - 1 - Math.round((tEnd - k.start) / ms); if (i >= 0 && i < n) shown[i] = k; }
          return { tEnd, slot, n, shown, x0: plotW - n * slot };
        }
        function draw(chart) {
          const c = chart.canvas, dpr = window.devicePixelRatio || 1;
          const w = Math.max(100, c.clientWidth), h = Math.max(100, c.clientHeight);
          if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
          const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
          g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
          const ms = INTERVAL_MS[interval], all = chart.candles;
          if (!all.length) { chart.layout = null; g.fillStyle = "#8b949e"; g.fillText("no " + interval + " candles yet", 10, h / 2); c.dataset.yLabels = ""; publish(chart, 0, 0, 0, 0); return; }
          const timeH = 18, volH = Math.round((h - timeH) * 0.18), priceH = h - timeH - volH - 6;
          const last = all[all.length - 1], lastText = fmtPrice(last.close);
          // Two passes: the price axis is as wide as its widest label, which depends on the candles shown.
          let axisW = 60, L, lo, hi, ticks;
          for (let pass = 0; pass < 2; pass++) {
            L = slots(all, w - axisW, ms);
            lo = Infinity; hi = -Infinity;
            for (const k of L.shown) if (k) { lo = Math.min(lo, +k.low); hi = Math.max(hi, +k.high); }
            if (!(hi > lo)) { const d = Math.abs(hi) * 0.001 || 1; hi += d; lo -= d; }
            const pad = (hi - lo) * 0.06; hi += pad; lo -= pad;
            ticks = niceTicks(lo, hi, 4);
            const widest = Math.max(g.measureText(lastText).width, ...ticks.map(t => g.measureText(t.text).width));
            axisW = Math.min(Math.round(w * 0.45), Math.ceil(widest) + 14);
          }
          const plotW = w - axisW, { shown, slot, x0, tEnd, n } = L;
          const y = p => 10 + (hi - p) / (hi - lo) * (priceH - 10);
          const lastY = Math.round(y(+last.close)) + 0.5;
          let clipped = 0;
          // grid and price axis (labels that would sit under the last-price tag are left out)
          g.strokeStyle = "#30363d"; g.fillStyle = "#8b949e"; g.lineWidth = 1;
          const drawnLabels = [];
          for (const t of ticks) { const yy = Math.round(y(t.v)) + 0.5;
            g.beginPath(); g.moveTo(0, yy); g.lineTo(plotW, yy); g.stroke();
            if (Math.abs(yy - lastY) > 16) { g.fillText(t.text, plotW + 6, yy); drawnLabels.push(t.text); if (plotW + 6 + g.measureText(t.text).width > w) clipped++; } }
          c.dataset.yLabels = drawnLabels.join("|");
          const bw = Math.max(1, Math.floor(slot * 0.7));
          chart.layout = { x0, slot, shown, tEnd, ms, plotW, axisW };
          // open trade gaps: the windows they overlap, shaded
          let gapSlots = 0;
          const gaps = tradeGaps(chart);
          if (gaps.length) {
            g.fillStyle = "rgba(210,153,34,0.22)";
            for (let i = 0; i < n; i++) { const start = tEnd - (n - 1 - i) * ms;
              if (gaps.some(gp => gp.from < start + ms && gp.to >= start)) { g.fillRect(x0 + i * slot, 0, slot, h - timeH); gapSlots++; } }
          }
          let incomplete = 0, drawn = 0, vmax = 0;
          for (const k of shown) if (k) vmax = Math.max(vmax, +k.volume);
          shown.forEach((k, i) => {
            if (!k) return;
            drawn++;
            const o = +k.open, cl = +k.close, up = cl >= o, x = Math.round(x0 + i * slot + slot / 2);
            g.strokeStyle = g.fillStyle = up ? "#26a69a" : "#ef5350";
            g.beginPath(); g.moveTo(x + 0.5, y(+k.high)); g.lineTo(x + 0.5, y(+k.low)); g.stroke();
            const top = y(Math.max(o, cl)), bh = Math.max(1, Math.abs(y(o) - y(cl)));
            if (k.complete === false) {   // trades may be missing: hollow, dashed
              incomplete++; g.setLineDash([2, 2]); g.strokeRect(x - Math.floor(bw / 2) + 0.5, top + 0.5, Math.max(1, bw - 1), Math.max(1, bh - 1)); g.setLineDash([]);
            } else g.fillRect(x - Math.floor(bw / 2), top, bw, bh);
            const vh = vmax > 0 ? (+k.volume / vmax) * volH : 0;
            g.globalAlpha = k.complete === false ? 0.15 : 0.35; g.fillRect(x - Math.floor(bw / 2), h - timeH - vh, bw, vh); g.globalAlpha = 1;
          });
          // time labels at whole multiples of the label step (so they stay put as candles arrive), centred, kept inside
          g.fillStyle = "#8b949e";
          const labelW = g.measureText("00:00").width + 14, M = 60000;
          const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map(m => m * M).filter(d => d >= ms && d % ms === 0);
          const every = (steps.find(d => d / ms * slot >= labelW) || steps[steps.length - 1]) / ms;
          for (let i = n - 1; i >= 0; i--) {
            const start = tEnd - (n - 1 - i) * ms; if (Math.round(start / ms) % every !== 0) continue;
            const text = fmtAxisTime(start), tw = g.measureText(text).width;
            const x = Math.max(0, Math.min(plotW - tw, x0 + i * slot + slot / 2 - tw / 2));
            g.fillText(text, x, h - timeH / 2);
          }
          // last price line and tag
          g.setLineDash([3, 3]); g.strokeStyle = "#58a6ff"; g.beginPath(); g.moveTo(0, lastY); g.lineTo(plotW, lastY); g.stroke(); g.setLineDash([]);
          g.fillStyle = "#58a6ff"; g.fillRect(plotW + 2, lastY - 8, axisW - 4, 16); g.fillStyle = "#0d1117"; g.fillText(lastText, plotW + 6, lastY);
          if (plotW + 6 + g.measureText(lastText).width > w) clipped++;
          c.dataset.labelsClipped = clipped;
          publish(chart, drawn, incomplete, gapSlots, n - drawn);
        }

        // Top of book and a depth chart: cumulative quantity of bids (left) and asks (right) against price.
        function drawBook(chart) {
          const b = chart.book, c = chart.depth, dpr = window.devicePixelRatio || 1;
          const w = Math.max(100, c.clientWidth), h = Math.max(40, c.clientHeight);
          if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
          const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
          g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
          const q = s => chart.card.querySelector(s);
          if (!b) { g.fillStyle = "#8b949e"; g.fillText("no order book yet", 10, h / 2); c.dataset.levelsDrawn = 0; return; }
          q(".bid").textContent = b.bestBid ? `${fmtPrice(b.bestBid[0])} × ${b.bestBid[1]}` : "–";
          q(".ask").textContent = b.bestAsk ? `${fmtPrice(b.bestAsk[0])} × ${b.bestAsk[1]}` : "–";
          q(".spread").textContent = b.spread ?? "–"; q(".mid").textContent = b.mid ? fmtPrice(b.mid) : "–";
          chart.card.dataset.bestBid = b.bestBid ? b.bestBid[0] : ""; chart.card.dataset.bestAsk = b.bestAsk ? b.bestAsk[0] : "";
          chart.card.dataset.bookSequence = b.sequence ?? "";
          const side = levels => { let sum = 0; return levels.map(([p, s]) => [+p, sum += +s]); };
          const bids = side(b.bids), asks = side(b.asks);
          const all = bids.concat(asks); if (!all.length) { c.dataset.levelsDrawn = 0; return; }
          let lo = Math.min(...all.map(x => x[0])), hi = Math.max(...all.map(x => x[0])); if (hi === lo) { hi += 1; lo -= 1; }
          const vmax = Math.max(bids.length ? bids[bids.length - 1][1] : 0, asks.length ? asks[asks.length - 1][1] : 0) || 1;
          const x = p => (p - lo) / (hi - lo) * (w - 4) + 2, y = v => h - 2 - v / vmax * (h - 6);
          const area = (pts, color) => { if (!pts.length) return; g.beginPath(); g.moveTo(x(pts[0][0]), h - 2);
            for (const [p, v] of pts) { g.lineTo(x(p), y(v)); } g.lineTo(x(pts[pts.length - 1][0]), h - 2); g.closePath();
            g.globalAlpha = 0.35; g.fillStyle = color; g.fill(); g.globalAlpha = 1; g.strokeStyle = color; g.stroke(); };
          area(bids, "#26a69a"); area(asks, "#ef5350");
          c.dataset.levelsDrawn = bids.length + asks.length;
        }
        async function loadBook(chart) {
          try { chart.book = await api(`/api/book?symbol=${encodeURIComponent(chart.symbol)}&depth=20`); } catch (e) { chart.book = null; }
          drawBook(chart);
        }

        function publish(chart, drawn, incomplete, gapSlots, emptySlots) {
          chart.canvas.dataset.candlesDrawn = drawn;
          chart.canvas.dataset.incompleteDrawn = incomplete;
          chart.canvas.dataset.gapSlots = gapSlots;
          chart.canvas.dataset.emptySlots = emptySlots;
          const list = chart.candles, last = list[list.length - 1];
          if (last) {
            chart.card.dataset.lastClose = last.close;
            // The change over the last day when the candles loaded reach back that far, else since the first one.
            const dayAgo = last.end - DAY, first = list.find(k => k.start >= dayAgo) || last, day = list[0].start <= dayAgo;
            const ch = (last.close - first.open) / first.open * 100, label = day ? "24h" : "since " + fmtTime(first.start);
            chart.px.innerHTML = `${esc(fmtPrice(last.close))} <span class="${ch >= 0 ? "up" : "down"}">${ch >= 0 ? "+" : ""}${ch.toFixed(2)}%</span> <span class="chg">${label}</span>`;
            chart.px.title = `change from the open of the ${fmtTime(first.start)} UTC ${interval} candle to the last price`;
          }
          let sum = 0; for (const c of charts.values()) sum += +c.canvas.dataset.candlesDrawn;
          document.body.dataset.candlesDrawn = sum;
        }

        function upsertCandle(chart, k) {
          const list = chart.candles;
          let i = list.length - 1;
          while (i >= 0 && list[i].start > k.start) i--;
          if (i >= 0 && list[i].start === k.start) { if (k.revision >= list[i].revision || k.final) list[i] = k; }
          else list.splice(i + 1, 0, k);
          if (list.length > 500) list.splice(0, list.length - 500);
        }

        async function loadCandles(chart) {   // one chart's failure does not stop the others
          try {
            const r = await api(`/api/candles?symbol=${encodeURIComponent(chart.symbol)}&interval=${interval}&limit=300`);
            if (r.interval !== interval) return;
            chart.candles = r.candles; draw(chart);
          } catch (e) { console.warn(e); chart.candles = []; draw(chart); }
        }

        function renderTrades() {
          const body = document.getElementById("trades");
          const list = selected ? trades.filter(t => t.symbol === selected) : trades;
          body.innerHTML = list.map(t => `<tr class="${t.fresh ? "new" : ""}"><td>${fmtTime(t.time, true)}</td><td class="ex">${esc(t.symbol.split(":")[0])}</td>` +
            `<td>${esc(t.symbol.split(":").pop())}</td><td class="${t.side === "buy" ? "up" : "down"}">${esc(fmtPrice(t.price))}</td><td>${esc(t.quantity)}</td></tr>`).join("");
          trades.forEach(t => t.fresh = false);
          document.body.dataset.tradesShown = list.length;
        }
        function addTrade(t, fresh) { t.fresh = fresh; trades.unshift(t); if (trades.length > MAX_TRADES) trades.length = MAX_TRADES; }

        // One chip per venue of /api/stats `exchanges` (hidden when the server knows no connection).
        function renderVenues(venues) {
          const box = document.getElementById("venues");
          if (!Array.isArray(venues) || !venues.length) { box.hidden = true; box.dataset.count = 0; box.replaceChildren(); return; }
          const num = v => v === null || v === undefined || !isFinite(+v) ? "–" : String(+v);
          box.replaceChildren(...venues.map(v => {
            const state = v.connected === false ? "down" : +v.gapsOpen > 0 ? "warn" : "ok";
            const chip = document.createElement("span");
            chip.className = "chip " + state; chip.dataset.state = state; chip.dataset.exchange = String(v.exchange);
            const name = document.createElement("span"); name.textContent = String(v.exchange);
            chip.append(document.createElement("i"), name);
            if (v.simulated) { const s = document.createElement("span"); s.className = "sim"; s.textContent = "sim"; chip.append(s); }
            const rate = document.createElement("span"); rate.className = "n";
            rate.textContent = isFinite(+v.tradesPerSecond) && v.tradesPerSecond !== null ? (+v.tradesPerSecond).toFixed(1) + "/s" : "–";
            chip.append(rate);
            chip.title = `${v.exchange}${v.simulated ? " (simulated)" : ""}: ${v.connected === false ? "not connected" : "connected"}\n` +
              `trades ${num(v.tradesTotal)}, last ${v.lastTradeTime ? fmtTime(+v.lastTradeTime, true) + " UTC" : "–"}\n` +
              `reconnects ${num(v.reconnects)}, open gaps ${num(v.gapsOpen)}`;
            return chip;
          }));
          box.hidden = false; box.dataset.count = venues.length;
        }
        function renderStats(s) {
          const n = v => v === null || v === undefined ? "–" : (+v).toFixed(v % 1 ? 1 : 0);
          document.getElementById("health").innerHTML = (s.exchanges || []).map(e =>
            `<tr><td>${e.connected === false ? "⚠ " : ""}${esc(e.exchange)}</td><td>${n(e.tradesPerSecond)}</td><td>${n(e.framesPerSecond)}</td>` +
            `<td>${n(e.lagMilliseconds)}</td><td>${n(e.reconnects)}</td></tr>`).join("") || `<tr><td colspan="5" class="empty">no exchange data yet</td></tr>`;
          document.getElementById("lag").textContent = (s.consumerLag || []).map(l => `${l.topic} lag ${l.messages}`).join(" · ");
          // A chip per exchange whose connection the server knows (tape up's ingest stages).
          renderVenues((s.exchanges || []).filter(e => typeof e.connected === "boolean"));
        }
        async function loadStats() {
          try { renderStats(await api("/api/stats")); } catch (e) { console.warn(e); }
        }

        function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
        function subscribeAll(op) {
          for (const c of charts.values()) {
            send({ op, channel: "candles", symbol: c.symbol, interval });
            if (op === "subscribe" || op === "unsubscribe") { send({ op, channel: "trades", symbol: c.symbol }); send({ op, channel: "gaps", symbol: c.symbol });
              send({ op, channel: "book", symbol: c.symbol }); }
          }
        }
        function connect() {
          const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
          ws = new WebSocket(url);
          ws.onopen = () => {
            wsBackoff = 500; wsOpen = true; renderStatus(); subscribeAll("subscribe");
            if (wasConnected) { charts.forEach(c => loadCandles(c)); loadGaps(); }   // fill what was missed while away
            wasConnected = true;
          };
          ws.onclose = () => { wsOpen = false; renderStatus(); setTimeout(connect, wsBackoff); wsBackoff = Math.min(wsBackoff * 2, 10000); };
          ws.onmessage = ev => {
            const m = JSON.parse(ev.data);
            if (m.type === "candle" && m.interval === interval) {
              const chart = charts.get(m.symbol); if (!chart) return;
              upsertCandle(chart, m.data); liveUpdates++; document.body.dataset.liveUpdates = liveUpdates; draw(chart);
            } else if (m.type === "trade") {
              addTrade({ ...m.data, symbol: m.symbol }, true); liveUpdates++; document.body.dataset.liveUpdates = liveUpdates; scheduleTrades();
            } else if (m.type === "gap") {
              const chart = charts.get(m.symbol); if (!chart) return;
              applyGap(chart, m.data); gapUpdates++; document.body.dataset.gapUpdates = gapUpdates; renderGapBadge(chart); draw(chart);
            } else if (m.type === "book") {
              const chart = charts.get(m.symbol); if (!chart) return;
              chart.book = m.data; bookUpdates++; document.body.dataset.bookUpdates = bookUpdates; drawBook(chart);
            } else if (m.type === "error") { console.warn("ws:", m.message); }
          };
        }
        let tradesPending = false;
        function scheduleTrades() { if (!tradesPending) { tradesPending = true; requestAnimationFrame(() => { tradesPending = false; renderTrades(); }); } }

        function markIntervalButtons() { for (const b of document.querySelectorAll("#intervals button")) b.classList.toggle("on", b.dataset.i === interval); }
        document.getElementById("intervals").addEventListener("click", async ev => {
          const next = ev.target.dataset?.i; if (!next || next === interval) return;
          for (const c of charts.values()) send({ op: "unsubscribe", channel: "candles", symbol: c.symbol, interval });
          interval = next; markIntervalButtons(); writeURL();
          for (const c of charts.values()) { send({ op: "subscribe", channel: "candles", symbol: c.symbol, interval }); c.candles = []; }
          await Promise.all([...charts.values()].map(loadCandles));
        });

        async function start() {
          markIntervalButtons();
          writeURL();
          try {
            const m = await api("/api/markets");
            marketList = m.markets.map(x => x.symbol);
            renderPicker();
            if (selected) ensureChart(selected, true);
            marketList.forEach(s => ensureChart(s));
            const [t] = await Promise.all([api(`/api/trades?limit=${MAX_TRADES}`), ...[...charts.values()].map(loadCandles),
              ...[...charts.values()].map(loadBook), loadStats(), loadHealth()]);
            t.trades.slice().reverse().forEach(x => addTrade({ ...x, symbol: x.exchange + ":" + x.symbol }, false));
            renderTrades();
            await loadGaps();
            renderStatus();
          } catch (e) { if (!authFailed) setStatus("down", e.message); console.error(e); }
          document.body.dataset.ready = "1";
          if (authFailed) return;
          connect();
          setInterval(loadStats, 2000);
          setInterval(loadHealth, 2000);
          setInterval(async () => {   // markets that appear later get a chart too; gaps are re-read in case a message was missed
            try { const m = await api("/api/markets"); const names = m.markets.map(x => x.symbol);
              if (names.join() !== marketList.join()) { marketList = names; renderPicker(); }
              for (const s of names) if (!charts.has(s) && charts.size < MAX_CHARTS) {
                const c = ensureChart(s); await loadCandles(c); subscribeChart(c); loadBook(c); }
              await loadGaps(); } catch (e) {}
          }, 10000);
        }
        start();
        </script>
        </body>
        </html>
        """#
}

extension Dashboard {
    /// `/favicon.ico`: a 16×16 32-bit ICO drawn here (three candles on the page's background), so
    /// the browser's request for it is answered without fetching anything.
    static let favicon: [UInt8] = {
        let size = 16
        // (x range, y range from the top, colour RGB): wicks and bodies of a green, red and blue candle.
        let shapes: [(ClosedRange<Int>, ClosedRange<Int>, (UInt8, UInt8, UInt8))] = [
            (3...3, 4...13, (0x26, 0xA6, 0x9A)), (2...4, 6...11, (0x26, 0xA6, 0x9A)),
            (7...7, 2...11, (0xEF, 0x53, 0x50)), (6...8, 4...8, (0xEF, 0x53, 0x50)),
            (11...11, 1...12, (0x58, 0xA6, 0xFF)), (10...12, 3...9, (0x58, 0xA6, 0xFF)),
        ]
        var out: [UInt8] = []
        func u16(_ v: Int) { out += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int) { out += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        let pixelBytes = size * size * 4
        let maskBytes = size * 4  // 1 bit per pixel, rows padded to 32 bits
        let imageBytes = 40 + pixelBytes + maskBytes
        // ICONDIR and its one ICONDIRENTRY
        u16(0)
        u16(1)
        u16(1)
        out += [UInt8(size), UInt8(size), 0, 0]
        u16(1)
        u16(32)
        u32(imageBytes)
        u32(22)
        // BITMAPINFOHEADER (height doubled: colour rows then the AND mask)
        u32(40)
        u32(size)
        u32(size * 2)
        u16(1)
        u16(32)
        u32(0)
        u32(pixelBytes + maskBytes)
        u32(0)
        u32(0)
        u32(0)
        u32(0)
        for row in 0..<size {
            let y = size - 1 - row  // bottom-up
            for x in 0..<size {
                var rgb: (UInt8, UInt8, UInt8) = (0x0D, 0x11, 0x17)
                for (xs, ys, colour) in shapes where xs.contains(x) && ys.contains(y) { rgb = colour }
                out += [rgb.2, rgb.1, rgb.0, 0xFF]  // BGRA
            }
        }
        out += [UInt8](repeating: 0, count: maskBytes)
        return out
    }()
}
